"""The inspection result every later stage (storage, Redis verdict, API) works with."""

from __future__ import annotations

from datetime import UTC, datetime
from enum import IntEnum
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from core.timeutil import as_utc, iso_utc


class Verdict(IntEnum):
    """Verdict codes the PLC reads (``code``)."""

    OK = 0
    NG = 1
    UNKNOWN = 2


class Defect(BaseModel):
    """One defect found in a frame; ``bbox`` is ``[x, y, w, h]`` in frame pixels."""

    model_config = ConfigDict(populate_by_name=True)

    cls: str = Field(alias="class")
    score: float
    bbox: tuple[int, int, int, int]
    area_px: int
    #: the model whose detection named the defect (its class won the vote)
    model: str
    #: every model's detection of this region (``inference.merge``): ``{model, class,
    #: mapped, score, bbox}``; empty for defects logged before merging existed
    evidence: list[dict[str, Any]] = Field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        """JSON form with the ``class`` key."""
        return self.model_dump(by_alias=True)


class InspectionResult(BaseModel):
    """Result of inspecting one frame, before and after it is stored."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    inspection_id: int | None = None
    line_id: str
    frame_id: int
    captured_at: datetime
    verdict: str
    defects: list[Defect] = Field(default_factory=list)
    #: model name -> artifact version
    models: dict[str, str] = Field(default_factory=dict)
    #: grab (host timestamp) to verdict, milliseconds
    latency_ms: float = 0.0
    recipe: str = ""
    width: int = 0
    height: int = 0
    brightness: float = 0.0
    #: class names indexed by the values of ``mask`` (index 0 = background)
    mask_classes: list[str] = Field(default_factory=lambda: ["background"])
    #: trigger mode: the part this frame is (= ``frame_id``); None in free-run
    part_id: int | None = None
    #: why an ``UNKNOWN`` result was not inspected: ``grab_failed`` / ``part_missed`` (the
    #: part's image never arrived complete), ``overloaded`` (skipped, ``inference.backlog``);
    #: None for an inspected frame
    unknown_reason: str | None = None
    #: frame-level class-indexed mask (not serialised)
    mask: np.ndarray | None = Field(default=None, exclude=True)

    @property
    def code(self) -> int:
        """PLC code: 0 OK, 1 NG, 2 UNKNOWN."""
        return int(Verdict[self.verdict])

    def as_json(self, now: datetime | None = None) -> dict[str, Any]:
        """The inspection JSON of docs/CONTRACT.md (HTTP API) with ``age_ms`` against ``now``."""
        now = now or datetime.now(UTC)
        captured = as_utc(self.captured_at)
        return {
            "inspection_id": self.inspection_id,
            "line_id": self.line_id,
            "frame_id": self.frame_id,
            "captured_at": iso_utc(captured),
            "verdict": self.verdict,
            "code": self.code,
            "defects": [d.as_json() for d in self.defects],
            "models": self.models,
            "latency_ms": round(self.latency_ms, 3),
            "age_ms": round((now - captured).total_seconds() * 1000.0, 3),
            "recipe": self.recipe,
            "width": self.width,
            "height": self.height,
            "brightness": round(self.brightness, 3),
            "mask_classes": self.mask_classes,
            "part_id": self.part_id,
            "unknown_reason": self.unknown_reason,
        }
