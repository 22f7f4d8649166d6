"""Sampling for QA review (issue 21.5): pick the frames worth a QA look, off the verdict path.

Reasons (recipe ``review:``, :class:`core.recipe.ReviewSpec`):

* ``uncertain`` - the frame's highest defect score lies within ``uncertain_band`` above the
  threshold of the model that named it (:func:`uncertainty`). Scores below a threshold are
  not kept by the pipeline, so the uncertain frames seen are the narrowly NG ones;
* ``disagreement`` - the shadow candidate disagrees with the live verdict or classes
  (:meth:`ReviewSampler.disagreement`, called by :class:`inference.shadow.ShadowRunner`);
* ``drift`` - every ``drift_every``-th frame while the line's drift distance is above
  ``drift_distance`` (the condition of the ``LineinspectFrameDrift`` alert).

:class:`ReviewSampler` decides on the worker's thread (a few comparisons) and hands the frame
to its own thread through a bounded queue: :meth:`~ReviewSampler.offer` never blocks and never
raises, a full queue drops the sample. The thread queues it in the review queue
(:class:`ReviewStore`, ``storage.review_queue``), which keeps at most ``cap`` frames per line
and UTC day; a frame whose inspection is not committed yet is retried for ``wait_s``. When a
queued frame's image was not retained (an OK frame), ``keep_image`` retains it so QA can see it.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Protocol

import numpy as np

from core.lifecycle import ShadowRecord
from core.metrics import REVIEW_SAMPLES
from core.recipe import ModelSpec, Recipe, ReviewSpec
from core.result import Defect, InspectionResult
from core.review import QueueOutcome, ReviewSample
from core.timeutil import as_utc

log = logging.getLogger(__name__)

_STOP = object()


class ReviewStore(Protocol):
    """What the sampler needs from ``storage.review_queue.ReviewQueue``."""

    def enqueue(self, sample: ReviewSample, cap: int) -> QueueOutcome:
        """Queue ``sample`` unless the line's daily ``cap`` is reached."""
        ...


#: Retain the image (and mask) of the logged inspection ``inspection_id``.
KeepImage = Callable[[int, ReviewSample, np.ndarray, "np.ndarray | None"], None]


def model_specs(recipe: Recipe) -> dict[str, ModelSpec]:
    """The recipe's models (and screen model) by name."""
    specs = {m.name: m for m in recipe.models}
    if recipe.screen is not None:
        specs[recipe.screen.model.name] = recipe.screen.model
    return specs


def defect_threshold(defect: Defect, specs: dict[str, ModelSpec]) -> float:
    """The score threshold ``defect`` was held against: its model's threshold for the model's
    own class (the merge evidence names it), 0.5 for a model the recipe does not name."""
    spec = specs.get(defect.model)
    if spec is None:
        return 0.5
    own = next((e.get("class") for e in defect.evidence if e.get("model") == defect.model),
               defect.cls)
    return spec.threshold_for(str(own))


def uncertainty(
    defects: Sequence[Defect], specs: dict[str, ModelSpec], band: float
) -> tuple[float, float] | None:
    """``(score, threshold)`` of the highest-scoring defect when its score is within ``band``
    above its threshold, else None."""
    if not defects:
        return None
    top = max(defects, key=lambda d: d.score)
    threshold = defect_threshold(top, specs)
    if threshold <= top.score <= threshold + band:
        return top.score, threshold
    return None


def _day(moment: datetime) -> str:
    return as_utc(moment).strftime("%Y-%m-%d")


class ReviewSampler:
    """Picks frames for QA review and queues them on a thread of its own."""

    def __init__(
        self,
        line_id: str,
        recipe: Recipe,
        store: ReviewStore,
        cap: int,
        *,
        keep_image: KeepImage | None = None,
        queue_size: int = 16,
        wait_s: float = 10.0,
    ) -> None:
        """Sample ``line_id``'s frames by ``recipe.review`` into ``store`` (at most ``cap``
        per UTC day); ``wait_s``: how long a sample waits for its inspection to be logged."""
        self.line = line_id
        self.spec: ReviewSpec = recipe.review
        self.specs = model_specs(recipe)
        self.store = store
        self.cap = max(0, int(cap))
        self.keep_image = keep_image
        self.wait_s = wait_s
        #: samples by outcome (queued, merged, capped, dropped)
        self.counts: dict[str, int] = {}
        self._queue: queue.Queue[object] = queue.Queue(maxsize=max(1, queue_size))
        self._waiting: list[tuple[float, ReviewSample, np.ndarray, np.ndarray | None]] = []
        self._capped_day: str | None = None
        self._drift_frames = 0
        self._idle = threading.Event()
        self._idle.set()
        self._thread = threading.Thread(target=self._loop, name=f"review-{line_id}",
                                        daemon=True)
        self._thread.start()

    # -- decisions on the worker's thread ----------------------------------------------------
    def reasons_for(
        self, result: InspectionResult, drift_distance: float | None
    ) -> list[ReviewSample]:
        """The samples of a live-inspected frame (uncertain score, drift window)."""
        if result.verdict == "UNKNOWN":
            return []  # not inspected (backlog): nothing to review
        out: list[ReviewSample] = []
        if "uncertain" in self.spec.reasons:
            hit = uncertainty(result.defects, self.specs, self.spec.uncertain_band)
            if hit is not None:
                score, threshold = hit
                band = self.spec.uncertain_band
                closeness = 1.0 if band <= 0 else 1.0 - (score - threshold) / band
                out.append(self._sample(result, "uncertain", closeness, {
                    "max_score": round(score, 4), "threshold": threshold, "band": band}))
        if "drift" in self.spec.reasons and drift_distance is not None:
            if drift_distance > self.spec.drift_distance:
                self._drift_frames += 1
                if (self._drift_frames - 1) % self.spec.drift_every == 0:
                    out.append(self._sample(result, "drift", drift_distance, {
                        "distance": round(drift_distance, 4),
                        "limit": self.spec.drift_distance, "every": self.spec.drift_every}))
            else:
                self._drift_frames = 0
        return out

    def _sample(
        self, result: InspectionResult, reason: str, score: float, detail: dict
    ) -> ReviewSample:
        return ReviewSample(line_id=result.line_id, frame_id=int(result.frame_id),
                            captured_at=result.captured_at, reason=reason,
                            score=float(min(1.0, max(0.0, score))), detail=detail)

    def consider(
        self, image: np.ndarray, result: InspectionResult, drift_distance: float | None
    ) -> int:
        """Offer the samples of a live-inspected frame; never raises. Samples offered."""
        try:
            samples = self.reasons_for(result, drift_distance)
            return sum(self.offer(s, image, result.mask) for s in samples)
        except Exception:  # noqa: BLE001 - sampling never costs a verdict
            log.exception("review sampling failed on frame %s", getattr(result, "frame_id", None))
            return 0

    def disagreement(
        self, image: np.ndarray, live: InspectionResult, record: ShadowRecord
    ) -> bool:
        """Offer a frame the shadow candidate disagrees on; never raises."""
        try:
            if "disagreement" not in self.spec.reasons or record.disagreement is None:
                return False
            score = 1.0 if record.disagreement == "verdict" else 0.5
            return self.offer(self._sample(live, "disagreement", score, {
                "kind": record.disagreement, "candidate": record.recipe,
                "live": live.verdict, "candidate_verdict": record.verdict,
                "live_classes": record.live_classes, "candidate_classes": record.classes,
            }), image, live.mask)
        except Exception:  # noqa: BLE001 - the shadow thread must not see it
            log.exception("review sampling of a disagreement failed")
            return False

    def offer(self, sample: ReviewSample, image: np.ndarray, mask: np.ndarray | None) -> bool:
        """Hand a sample to the thread; never blocks. False when it was not taken (the
        line's cap for the day is known to be reached, or the queue is full)."""
        if self.cap == 0 or self._capped_day == _day(sample.captured_at):
            self._count(sample, "capped")
            return False
        try:
            self._idle.clear()
            self._queue.put_nowait((sample, image, mask))
            return True
        except queue.Full:
            self._count(sample, "dropped")
            return False

    # -- the sampler's thread ----------------------------------------------------------------
    def _count(self, sample: ReviewSample, outcome: str) -> None:
        self.counts[outcome] = self.counts.get(outcome, 0) + 1
        REVIEW_SAMPLES.labels(line=self.line, reason=sample.reason, outcome=outcome).inc()

    def _store(self, sample: ReviewSample, image: np.ndarray, mask: np.ndarray | None,
               deadline: float) -> None:
        try:
            done = self.store.enqueue(sample, self.cap)
        except Exception:  # noqa: BLE001 - a DB outage loses samples, nothing else
            log.exception("review sample of frame %s not queued", sample.frame_id)
            self._count(sample, "dropped")
            return
        if done.outcome == "not_logged":
            if time.monotonic() < deadline:
                self._waiting.append((deadline, sample, image, mask))
            else:
                self._count(sample, "dropped")
            return
        if done.outcome == "capped":
            self._capped_day = _day(sample.captured_at)
        self._count(sample, done.outcome)
        if done.outcome == "queued" and not done.has_image and self.keep_image is not None:
            try:
                self.keep_image(int(done.inspection_id or 0), sample, image, mask)
            except Exception:  # noqa: BLE001 - the sample stays queued without its image
                log.exception("image of sampled frame %s not retained", sample.frame_id)

    def _loop(self) -> None:
        while True:
            try:
                item = self._queue.get(timeout=0.1 if self._waiting else None)
            except queue.Empty:
                item = None
            try:
                if item is _STOP:  # samples still waiting for their commit get a last try
                    waiting, self._waiting = self._waiting, []
                    for _deadline, sample, image, mask in waiting:
                        self._store(sample, image, mask, deadline=0.0)
                    return
                if item is not None:
                    sample, image, mask = item  # type: ignore[misc]
                    self._store(sample, image, mask, time.monotonic() + self.wait_s)
                waiting, self._waiting = self._waiting, []
                for deadline, sample, image, mask in waiting:
                    self._store(sample, image, mask, deadline)
            except Exception:  # noqa: BLE001 - a bug here must not end the thread
                log.exception("review sampler of %s failed", self.line)
            finally:
                if item is not None:
                    self._queue.task_done()
                if self._queue.empty() and not self._waiting:
                    self._idle.set()

    def drain(self, timeout: float = 30.0) -> bool:
        """Wait until every offered sample was queued, capped or dropped (tests, shutdown)."""
        self._queue.join()
        return self._idle.wait(timeout)

    def close(self, timeout: float = 30.0) -> None:
        """Finish the offered samples and stop the thread."""
        self._queue.put(_STOP)
        self._thread.join(timeout=timeout)
