"""Shadow model: a candidate recipe inspects the live line's frames off the verdict path.

:class:`ShadowRunner` owns one daemon thread and a bounded queue. The live path only calls
:meth:`ShadowRunner.offer`, which never blocks and never raises: a frame is skipped (counted in
``lineinspect_shadow_runs_total{outcome="skipped"}``) when the queue is full or when the
shadow is over its **budget** - after a candidate inspection that took ``t`` seconds the
shadow pauses ``t * (1 / max_share - 1)``, so it computes at most ``max_share`` of the wall
time (recipe ``shadow.max_share``). A candidate that raises is logged and counted
(``outcome="failed"``); a slow one only makes the shadow skip more frames. Neither touches the
live verdict, which is published by the worker without waiting for the shadow.

Each candidate result is compared with the live one (:func:`core.lifecycle.disagreement`),
counted (``outcome`` agree/disagree, ``lineinspect_shadow_disagreements_total{kind}``) and,
when a :class:`ShadowStore` is given, logged beside the live inspection
(``storage.shadow.ShadowRepository``, table ``shadow_results``).

:func:`candidate_recipe` builds the candidate: a recipe of its own (``shadow.recipe``) or the
live recipe with some models' files swapped (``shadow.models``). The candidate's models are
renamed ``<name>@shadow`` so their ``lineinspect_model_inference_seconds{model}`` series stay
apart from the live models'.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

import numpy as np

from core.lifecycle import ShadowRecord
from core.metrics import SHADOW_DISAGREEMENTS, SHADOW_INSPECTION, SHADOW_RUNS
from core.recipe import ModelSpec, Recipe, ShadowSpec, load_recipe
from core.result import InspectionResult
from core.settings import Settings

log = logging.getLogger(__name__)

SUFFIX = "@shadow"
_STOP = object()


class ShadowStore(Protocol):
    """What the shadow needs from ``storage.shadow.ShadowRepository``."""

    def save_shadow(self, record: ShadowRecord) -> bool:
        """Log a candidate inspection once per (line, frame, recipe); True when new."""
        ...


#: Called with ``(image, live result, shadow record)`` for each disagreeing frame.
DisagreementHook = Callable[[np.ndarray, InspectionResult, ShadowRecord], object]


class CandidateInspector(Protocol):
    """What the shadow needs from :class:`inference.pipeline.Inspector`."""

    def inspect(
        self, image: np.ndarray, line_id: str, frame_id: int, captured_at: datetime
    ) -> InspectionResult:
        """Inspect one frame."""
        ...


def _renamed(spec: ModelSpec) -> ModelSpec:
    gate = f"{spec.gate}{SUFFIX}" if spec.gate else None
    return spec.model_copy(update={"name": f"{spec.name}{SUFFIX}", "gate": gate})


def candidate_recipe(live: Recipe, spec: ShadowSpec, settings: Settings | None = None) -> Recipe:
    """The candidate recipe of ``spec`` (models renamed ``<name>@shadow``, no shadow of its
    own). ValueError when ``spec.models`` names a model the live recipe does not have."""
    if spec.recipe:
        base = load_recipe(spec.recipe, settings)
    else:
        known = {m.name for m in live.models} | ({live.screen.model.name} if live.screen else set())
        unknown = sorted(set(spec.models) - known)
        if unknown:
            raise ValueError(f"shadow.models {unknown} are not models of recipe {live.name}")

        def swap(m: ModelSpec) -> ModelSpec:
            if m.name not in spec.models:
                return m
            return m.model_copy(update={"path": spec.models[m.name]})

        screen = None
        if live.screen is not None:
            screen = live.screen.model_copy(update={"model": swap(live.screen.model)})
        base = live.model_copy(update={
            "name": f"{live.name}{SUFFIX}", "models": [swap(m) for m in live.models],
            "screen": screen,
        })
    screen = None
    if base.screen is not None:
        screen = base.screen.model_copy(update={"model": _renamed(base.screen.model)})
    return base.model_copy(update={
        "models": [_renamed(m) for m in base.models], "screen": screen, "shadow": None,
    })


@dataclass
class ShadowStats:
    """What the shadow did with the frames offered to it."""

    offered: int = 0
    skipped: int = 0
    agree: int = 0
    disagree: int = 0
    failed: int = 0
    stored: int = 0
    store_errors: int = 0


class ShadowRunner:
    """Runs a candidate inspector on offered frames on its own thread, within a budget."""

    def __init__(
        self,
        line_id: str,
        inspector: CandidateInspector,
        store: ShadowStore | None = None,
        *,
        max_share: float = 0.5,
        queue_size: int = 2,
        clock: Callable[[], float] = time.monotonic,
        on_disagreement: DisagreementHook | None = None,
    ) -> None:
        """``max_share``: largest share of wall time the candidate may compute (0 < s <= 1);
        ``queue_size``: frames that may wait for it; ``on_disagreement(image, live, record)``:
        called (on the shadow's thread, errors logged) for each disagreeing frame - the
        review sampler (``inference.review_sampler``)."""
        if not 0.0 < max_share <= 1.0:
            raise ValueError("max_share must be in (0, 1]")
        self.line = line_id
        self.inspector = inspector
        self.store = store
        self.max_share = max_share
        self.clock = clock
        self.on_disagreement = on_disagreement
        self.stats = ShadowStats()
        self._queue: queue.Queue[object] = queue.Queue(maxsize=max(1, queue_size))
        self._resume_at = 0.0
        self._thread = threading.Thread(target=self._loop, name=f"shadow-{line_id}", daemon=True)
        self._thread.start()

    def offer(self, image: np.ndarray, live: InspectionResult) -> bool:
        """Hand a live-inspected frame to the candidate; never blocks, never raises. False
        when it was skipped (queue full or over budget)."""
        try:
            self.stats.offered += 1
            if self.clock() < self._resume_at:
                return self._skip()
            self._queue.put_nowait((image, live))
            return True
        except queue.Full:
            return self._skip()
        except Exception:  # noqa: BLE001 - the live path must never see a shadow error
            log.exception("shadow offer failed")
            return False

    def _skip(self) -> bool:
        self.stats.skipped += 1
        SHADOW_RUNS.labels(line=self.line, outcome="skipped").inc()
        return False

    def drain(self) -> None:
        """Wait until every queued frame was handled (tests, shutdown)."""
        self._queue.join()

    def close(self, timeout: float = 30.0) -> None:
        """Finish the queued frames and stop the thread."""
        self._queue.put(_STOP)
        self._thread.join(timeout=timeout)

    def _loop(self) -> None:
        while True:
            item = self._queue.get()
            try:
                if item is _STOP:
                    return
                image, live = item  # type: ignore[misc]
                self._run(image, live)
            except Exception:  # noqa: BLE001 - a bug here must not end the thread
                log.exception("shadow of %s failed", self.line)
            finally:
                self._queue.task_done()

    def _run(self, image: np.ndarray, live: InspectionResult) -> None:
        t0 = time.perf_counter()
        try:
            result = self.inspector.inspect(image, live.line_id, live.frame_id, live.captured_at)
        except Exception:  # noqa: BLE001 - a failing candidate is counted, never raised
            log.exception("candidate failed on frame %s of %s", live.frame_id, self.line)
            self.stats.failed += 1
            SHADOW_RUNS.labels(line=self.line, outcome="failed").inc()
            return
        finally:
            took = time.perf_counter() - t0
            self._resume_at = self.clock() + took * (1.0 / self.max_share - 1.0)
        SHADOW_INSPECTION.labels(line=self.line).observe(took)
        record = ShadowRecord.of(live, result, took * 1000.0)
        if record.disagreement is None:
            self.stats.agree += 1
            SHADOW_RUNS.labels(line=self.line, outcome="agree").inc()
        else:
            self.stats.disagree += 1
            SHADOW_RUNS.labels(line=self.line, outcome="disagree").inc()
            SHADOW_DISAGREEMENTS.labels(line=self.line, kind=record.disagreement).inc()
        if self.store is not None:
            try:
                self.store.save_shadow(record)
                self.stats.stored += 1
            except Exception:  # noqa: BLE001 - a DB outage loses shadow rows, nothing else
                log.exception("shadow result of frame %s not stored", live.frame_id)
                self.stats.store_errors += 1
        if record.disagreement is not None and self.on_disagreement is not None:
            try:
                self.on_disagreement(image, live, record)
            except Exception:  # noqa: BLE001 - the hook never ends the shadow
                log.exception("disagreement hook failed on frame %s", live.frame_id)
