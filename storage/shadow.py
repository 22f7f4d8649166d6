"""Shadow results: a candidate recipe's inspection of a frame, logged beside the live one.

Table ``shadow_results`` (migration ``0005_shadow_results``), one row per ``(line_id,
frame_id, recipe)`` - the live inspection of the frame is the ``inspections`` row of the same
``(line_id, frame_id)``. A row keeps the candidate's verdict, classes, defects (JSON) and
model versions, the live verdict and classes it was compared with, its latency and the
disagreement (None, ``verdict`` or ``class``; :func:`core.lifecycle.disagreement`).

:class:`ShadowRepository` writes them idempotently (a frame re-delivered to the worker is
logged once), lists disagreements newest first (with their live inspection: the QA UI's
side-by-side view) and summarises them per UTC day.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Engine,
    Float,
    Index,
    Select,
    String,
    UniqueConstraint,
    select,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Mapped, mapped_column

from core.lifecycle import ShadowRecord
from core.timeutil import as_utc, iso_utc
from storage.db import is_sqlite, session_factory, write_engine
from storage.orm import Base, IdType, Inspection, JsonType, UTCDateTime, utcnow


class ShadowResultRow(Base):
    """A candidate's inspection of a logged frame."""

    __tablename__ = "shadow_results"

    id: Mapped[int] = mapped_column(IdType, primary_key=True, autoincrement=True)
    line_id: Mapped[str] = mapped_column(String(64))
    frame_id: Mapped[int] = mapped_column(BigInteger)
    captured_at: Mapped[datetime] = mapped_column(UTCDateTime())
    recipe: Mapped[str] = mapped_column(String(128))
    live_verdict: Mapped[str] = mapped_column(String(8))
    verdict: Mapped[str] = mapped_column(String(8))
    live_classes: Mapped[list[str]] = mapped_column(JsonType, default=list)
    classes: Mapped[list[str]] = mapped_column(JsonType, default=list)
    defects: Mapped[list[dict[str, Any]]] = mapped_column(JsonType, default=list)
    models: Mapped[dict[str, str]] = mapped_column(JsonType, default=dict)
    latency_ms: Mapped[float] = mapped_column(Float, default=0.0)
    disagreement: Mapped[str | None] = mapped_column(String(16), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    __table_args__ = (
        UniqueConstraint("line_id", "frame_id", "recipe"),
        Index("ix_shadow_results_line_id_captured_at", "line_id", "captured_at"),
    )


@dataclass(frozen=True)
class DaySummary:
    """Shadow runs and disagreements of one line on one UTC day."""

    day: str
    runs: int
    verdict: int
    classes: int

    def as_json(self) -> dict[str, Any]:
        """JSON form."""
        return asdict(self)


@dataclass(frozen=True)
class ShadowBeside:
    """A shadow result (id ``shadow_id``) beside its live inspection (None: not logged)."""

    shadow_id: int
    record: ShadowRecord
    inspection_id: int | None
    image_path: str | None


def _record(row: ShadowResultRow) -> ShadowRecord:
    return ShadowRecord(
        line_id=row.line_id, frame_id=row.frame_id, captured_at=as_utc(row.captured_at),
        recipe=row.recipe, live_verdict=row.live_verdict, verdict=row.verdict,
        live_classes=list(row.live_classes or []), classes=list(row.classes or []),
        defects=list(row.defects or []), models=dict(row.models or {}),
        latency_ms=row.latency_ms, disagreement=row.disagreement,
    )


def _newest_first(
    stmt: Select[Any], line_id: str | None, since: datetime | None, until: datetime | None,
    disagreeing: bool,
) -> Select[Any]:
    """``stmt`` filtered by line, capture time window and disagreement, newest first."""
    if line_id is not None:
        stmt = stmt.where(ShadowResultRow.line_id == line_id)
    if since is not None:
        stmt = stmt.where(ShadowResultRow.captured_at >= as_utc(since))
    if until is not None:
        stmt = stmt.where(ShadowResultRow.captured_at < as_utc(until))
    if disagreeing:
        stmt = stmt.where(ShadowResultRow.disagreement.is_not(None))
    return stmt.order_by(ShadowResultRow.captured_at.desc(), ShadowResultRow.id.desc())


def _page(limit: int) -> int:
    return max(1, min(int(limit), 1000))


def record_json(record: ShadowRecord) -> dict[str, Any]:
    """JSON form of a shadow record."""
    out = asdict(record)
    out["captured_at"] = iso_utc(record.captured_at)
    return out


class ShadowRepository:
    """Reads and writes ``shadow_results`` (thread-safe)."""

    def __init__(self, engine: Engine) -> None:
        """Use ``engine`` (migrated with :func:`storage.db.migrate`)."""
        self.engine = engine
        self._sqlite = is_sqlite(engine)
        self._read = session_factory(engine)
        self._write = session_factory(write_engine(engine))

    def save_shadow(self, record: ShadowRecord) -> bool:
        """Log ``record`` once per (line, frame, recipe); True when it was new."""
        values = asdict(record)
        values["captured_at"] = as_utc(record.captured_at)
        values["created_at"] = utcnow()
        insert = sqlite.insert if self._sqlite else postgresql.insert
        stmt = (
            insert(ShadowResultRow).values(**values)
            .on_conflict_do_nothing(index_elements=["line_id", "frame_id", "recipe"])
            .returning(ShadowResultRow.id)
        )
        with self._write.begin() as session:
            return session.execute(stmt).scalar_one_or_none() is not None

    def results(
        self,
        line_id: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        disagreeing: bool = False,
        limit: int = 100,
    ) -> list[ShadowRecord]:
        """Shadow results newest first (``disagreeing``: only those that disagree)."""
        stmt = _newest_first(select(ShadowResultRow), line_id, since, until, disagreeing)
        with self._read() as session:
            rows = session.scalars(stmt.limit(_page(limit)))
            return [_record(r) for r in rows]

    def _joined(self) -> Select[tuple[ShadowResultRow, int | None, str | None]]:
        return select(ShadowResultRow, Inspection.id, Inspection.image_path).outerjoin(
            Inspection, (Inspection.line_id == ShadowResultRow.line_id)
            & (Inspection.frame_id == ShadowResultRow.frame_id))

    def disagreements(
        self,
        line_id: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = 50,
    ) -> list[ShadowBeside]:
        """Disagreeing shadow results newest first, each with its live inspection (QA UI)."""
        stmt = _newest_first(self._joined(), line_id, since, until, disagreeing=True)
        with self._read() as session:
            rows = session.execute(stmt.limit(_page(limit))).all()
        return [ShadowBeside(row.id, _record(row), iid, path) for row, iid, path in rows]

    def beside(self, shadow_id: int) -> ShadowBeside | None:
        """One shadow result with its live inspection; None when unknown."""
        with self._read() as session:
            found = session.execute(
                self._joined().where(ShadowResultRow.id == shadow_id)).first()
        if found is None:
            return None
        row, iid, path = found
        return ShadowBeside(row.id, _record(row), iid, path)

    def lines(self) -> list[str]:
        """Lines with shadow results."""
        with self._read() as session:
            return sorted(session.scalars(select(ShadowResultRow.line_id).distinct()))

    def daily_summary(
        self, line_id: str, since: datetime | None = None, until: datetime | None = None
    ) -> list[DaySummary]:
        """Per UTC day (oldest first): shadow runs, verdict and class disagreements."""
        stmt = select(ShadowResultRow.captured_at, ShadowResultRow.disagreement).where(
            ShadowResultRow.line_id == line_id
        )
        if since is not None:
            stmt = stmt.where(ShadowResultRow.captured_at >= as_utc(since))
        if until is not None:
            stmt = stmt.where(ShadowResultRow.captured_at < as_utc(until))
        days: dict[str, list[int]] = {}
        with self._read() as session:
            for captured_at, kind in session.execute(stmt):
                counts = days.setdefault(as_utc(captured_at).strftime("%Y-%m-%d"), [0, 0, 0])
                counts[0] += 1
                counts[1] += kind == "verdict"
                counts[2] += kind == "class"
        return [DaySummary(d, *c) for d, c in sorted(days.items())]
