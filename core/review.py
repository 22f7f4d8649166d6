"""Sampling for QA review (issue 21.5): the record of a frame picked for a QA look, shared by
inference (which picks it, ``inference.review_sampler``) and storage (which queues it,
``storage.review_queue``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

#: Why a frame is worth a look, in the order the "to review" queue shows them.
REVIEW_REASONS = ("disagreement", "uncertain", "drift")


def reason_rank(reason: str) -> int:
    """Position of ``reason`` in :data:`REVIEW_REASONS` (unknown reasons last)."""
    return REVIEW_REASONS.index(reason) if reason in REVIEW_REASONS else len(REVIEW_REASONS)


@dataclass
class ReviewSample:
    """A frame sampled for review, named by ``(line_id, frame_id)`` like its inspection."""

    line_id: str
    frame_id: int
    captured_at: datetime
    #: one of :data:`REVIEW_REASONS`
    reason: str
    #: how worth a look within its reason, 0..1 (higher first): ``uncertain`` 1 at the
    #: threshold, 0 at the band's edge; ``disagreement`` 1 verdict, 0.5 class; ``drift`` the
    #: drift distance
    score: float
    #: the figures behind the reason (threshold, band, distance, candidate recipe, ...)
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class QueueOutcome:
    """What the review queue did with a sample."""

    #: ``queued``, ``merged`` (the frame was queued already: the reason is added),
    #: ``capped`` (the line's daily cap is reached) or ``not_logged`` (no inspection of the
    #: frame yet)
    outcome: str
    inspection_id: int | None = None
    #: whether the inspection's image is retained
    has_image: bool = False
