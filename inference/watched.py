"""The live inspector plus what watches it off the verdict path (issue 21).

:class:`WatchedInspector` stands in for :class:`inference.pipeline.Inspector` in the worker
(``inspect_frame`` and every other attribute are the live inspector's): after each live
inspection it feeds the line's :class:`inference.drift.DriftMonitor`, offers the frame to
the :class:`inference.shadow.ShadowRunner` and to the review sampler
(:class:`inference.review_sampler.ReviewSampler`: uncertain scores, drift windows). Errors of
any of them are logged, never raised, and the
live result is returned unchanged. The drift statistics cost about 2 ms of CPU per 1296 x 966
frame on the worker's thread; the shadow runs on its own thread within its budget.
"""

from __future__ import annotations

import logging
from typing import Any

from core.frame import Frame
from core.result import InspectionResult
from inference.drift import DriftMonitor
from inference.pipeline import Inspector
from inference.review_sampler import ReviewSampler
from inference.shadow import ShadowRunner

log = logging.getLogger(__name__)


def segmenter_tile(inspector: Inspector, default: int = 224) -> int:
    """Tile edge of the recipe's first segmenter (the grid of the flagged-tile share)."""
    for spec, model in inspector.models:
        if model.task == "segment" and spec.tile:
            return spec.tile
    return default


class WatchedInspector:
    """The live :class:`Inspector` with drift statistics and an optional shadow candidate."""

    def __init__(
        self,
        inspector: Inspector,
        drift: DriftMonitor | None = None,
        shadow: ShadowRunner | None = None,
        sampler: ReviewSampler | None = None,
    ) -> None:
        """Watch ``inspector``'s results with ``drift``, ``shadow`` and the review
        ``sampler`` (any may be None)."""
        self.live = inspector
        self.drift = drift
        self.shadow = shadow
        self.sampler = sampler

    def __getattr__(self, name: str) -> Any:
        return getattr(self.live, name)

    def inspect_frame(self, frame: Frame) -> InspectionResult:
        """The live inspection of ``frame``; then drift statistics, the shadow offer and the
        review sampling."""
        result = self.live.inspect_frame(frame)
        image = frame.array()
        distance = None
        if self.drift is not None:
            try:
                distance = self.drift.observe(image, result).distance
            except Exception:  # noqa: BLE001 - statistics never cost a verdict
                log.exception("drift statistics failed on frame %s", frame.frame_id)
        if self.shadow is not None:
            self.shadow.offer(image, result)
        if self.sampler is not None:
            self.sampler.consider(image, result, distance)
        return result

    def close(self) -> None:
        """Stop the shadow and sampler threads (after the frames they hold)."""
        if self.shadow is not None:
            self.shadow.close()
        if self.sampler is not None:
            self.sampler.close()
