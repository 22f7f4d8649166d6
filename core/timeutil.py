"""UTC helpers: every timestamp the service stores or answers with is timezone-aware UTC."""

from __future__ import annotations

from datetime import UTC, datetime


def as_utc(value: datetime) -> datetime:
    """``value`` in UTC; a naive datetime is taken to be UTC already."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def as_utc_or_none(value: datetime | None) -> datetime | None:
    """:func:`as_utc`, passing None through (optional query parameters)."""
    return None if value is None else as_utc(value)


def iso_utc(value: datetime) -> str:
    """ISO-8601 in UTC with a ``Z`` suffix (``2026-01-01T12:00:00.250000Z``)."""
    return as_utc(value).isoformat().replace("+00:00", "Z")


def parse_iso(text: str) -> datetime:
    """An ISO-8601 timestamp (``Z`` or offset; naive = UTC) as an aware UTC datetime.

    Raises ValueError when ``text`` is not ISO-8601.
    """
    return as_utc(datetime.fromisoformat(text))
