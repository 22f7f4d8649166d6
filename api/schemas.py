"""Request models of the HTTP API: the review body and the defect-log filters."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Literal

from fastapi import Path
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    model_validator,
)

#: Text without control characters (PostgreSQL refuses NUL in text: a 4xx, not a 503).
_PRINTABLE = r"^[^\x00-\x1f\x7f]*$"
#: Times the log can hold on every backend and every zone offset (issue 17.6: year 1 at
#: +14:00 overflowed into a 500).
_MIN_TIME = datetime(1970, 1, 1, tzinfo=UTC)
_MAX_TIME = datetime(9999, 1, 1, tzinfo=UTC)


def _iso_only(value: object) -> object:
    """Refuse a bare number: pydantic would read ``until=0.5`` as a Unix time, the
    schema (and the log) speak ISO 8601 only."""
    if isinstance(value, str):
        try:
            float(value)
        except ValueError:
            return value
    elif not isinstance(value, int | float):
        return value
    raise ValueError("an ISO 8601 date or date-time is expected")


def _in_range(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    try:
        utc = value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)
    except OverflowError:
        raise ValueError("time out of range") from None
    if not _MIN_TIME <= utc < _MAX_TIME:
        raise ValueError("time must lie between 1970-01-01 and 9999-01-01 (UTC)")
    return value


#: A time filter (naive = UTC) within the range the log can hold.
LogTime = Annotated[datetime | None, BeforeValidator(_iso_only), AfterValidator(_in_range)]
#: A line id or class name given as a filter.
FilterText = Annotated[str | None, StringConstraints(max_length=64, pattern=_PRINTABLE)]
#: An inspection id in a path (the log's ids are 64-bit: larger is a 422, not a 503).
InspectionId = Annotated[int, Path(ge=1, le=2**63 - 1)]


class ReviewIn(BaseModel):
    """Body of ``POST /api/v1/inspections/{id}/review``.

    * ``confirm``: the machine was right (``verdict``, if given, must equal it);
    * ``correct``: QA gives the right ``verdict`` and/or defect ``classes``;
    * ``false_reject``: an NG frame is actually OK (``verdict`` omitted or ``OK``).
    """

    model_config = ConfigDict(extra="forbid")

    reviewer: str = Field(min_length=1, max_length=128)
    action: Literal["confirm", "correct", "false_reject"]
    verdict: Literal["OK", "NG"] | None = None
    classes: (
        list[Annotated[str, StringConstraints(min_length=1, max_length=64)]] | None
    ) = Field(default=None, max_length=64)
    comment: str | None = Field(default=None, max_length=2000)

    @model_validator(mode="after")
    def _rules(self) -> ReviewIn:
        if self.action == "correct" and self.verdict is None and self.classes is None:
            raise ValueError("action 'correct' needs a verdict and/or classes")
        if self.action == "false_reject" and self.verdict not in (None, "OK"):
            raise ValueError("action 'false_reject' means the frame is OK")
        if self.action == "false_reject" and self.classes:
            raise ValueError("action 'false_reject' means the frame has no defects")
        return self



class LogQuery(BaseModel):
    """The defect-log filters (query parameters) of the list, the CSV export and the
    neighbours of an inspection."""

    line_id: FilterText = None
    verdict: Literal["OK", "NG", "UNKNOWN"] | None = None
    defect_class: FilterText = None
    since: LogTime = Field(None, description="inclusive; naive = UTC")
    until: LogTime = Field(None, description="exclusive; naive = UTC")
    reviewed: bool | None = None
