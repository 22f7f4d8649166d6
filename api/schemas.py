"""Request models of the HTTP API: the review body and the defect-log filters."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator


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

    line_id: str | None = Field(None, max_length=64)
    verdict: Literal["OK", "NG", "UNKNOWN"] | None = None
    defect_class: str | None = Field(None, max_length=64)
    since: datetime | None = Field(None, description="inclusive; naive = UTC")
    until: datetime | None = Field(None, description="exclusive; naive = UTC")
    reviewed: bool | None = None
