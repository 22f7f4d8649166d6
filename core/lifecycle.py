"""Model lifecycle records shared by inference (which produces them) and storage (which logs
them): the shadow (candidate) inspection of a frame beside its live inspection (issue 21)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from core.result import InspectionResult

#: Kinds of disagreement between a live and a candidate inspection of one frame.
DISAGREEMENT_KINDS = ("verdict", "class")


def defect_classes(result: InspectionResult) -> list[str]:
    """The sorted distinct defect classes of an inspection."""
    return sorted({d.cls for d in result.defects})


def disagreement(live: InspectionResult, candidate: InspectionResult) -> str | None:
    """``verdict`` when the verdicts differ, ``class`` when they agree but the defect classes
    found differ, None when both say the same."""
    if live.verdict != candidate.verdict:
        return "verdict"
    if defect_classes(live) != defect_classes(candidate):
        return "class"
    return None


@dataclass
class ShadowRecord:
    """A candidate's inspection of a frame, logged beside the live inspection of that frame
    (joined on ``line_id``, ``frame_id``)."""

    line_id: str
    frame_id: int
    captured_at: datetime
    #: the candidate recipe's name
    recipe: str
    live_verdict: str
    verdict: str
    live_classes: list[str]
    classes: list[str]
    #: candidate's defects (``Defect.as_json``)
    defects: list[dict[str, Any]] = field(default_factory=list)
    #: candidate's model name -> version
    models: dict[str, str] = field(default_factory=dict)
    #: candidate inspection time, milliseconds
    latency_ms: float = 0.0
    #: None, ``verdict`` or ``class`` (:func:`disagreement`)
    disagreement: str | None = None

    @classmethod
    def of(
        cls, live: InspectionResult, candidate: InspectionResult, latency_ms: float
    ) -> ShadowRecord:
        """The record of ``candidate`` beside ``live``."""
        return cls(
            line_id=live.line_id,
            frame_id=int(live.frame_id),
            captured_at=live.captured_at,
            recipe=candidate.recipe,
            live_verdict=live.verdict,
            verdict=candidate.verdict,
            live_classes=defect_classes(live),
            classes=defect_classes(candidate),
            defects=[d.as_json() for d in candidate.defects],
            models=dict(candidate.models),
            latency_ms=float(latency_ms),
            disagreement=disagreement(live, candidate),
        )
