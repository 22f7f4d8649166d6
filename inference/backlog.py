"""Falling behind is reported, never a silent queue (docs/CONTRACT.md, section 6).

Every frame the worker takes from the stream is first checked by :class:`BacklogGuard`:

* a frame that waited longer than the recipe's ``max_backlog_ms`` (now - grab time) is **not
  inspected**: the worker logs it as an inspection with verdict ``UNKNOWN`` and no defects
  (:meth:`BacklogGuard.not_inspected`; it is published in the line's result sequence like any
  other frame, so the log and the PLC account for every frame), counts it in
  ``lineinspect_frames_skipped_total{line}`` and moves on to the next frame. A restart
  therefore never makes the line wait for an old run's backlog: those frames cost a database
  row each, not an inspection;
* while frames are being skipped (the last one less than ``hold_s`` ago) the line is
  **overloaded**: every verdict record the worker publishes says so (``overloaded``,
  ``backlog_ms``, ``max_backlog_ms``), the PLC answer is ``UNKNOWN`` with reason
  ``overloaded`` (:func:`core.plc.plc_answer`), ``lineinspect_overloaded{line}`` is 1 and
  the alert ``LineinspectOverloaded`` fires (``deploy/prometheus/alerts.yml``);
* ``lineinspect_backlog_seconds{line}`` is how long the last frame taken had waited, and the
  worker's own inspected/s, counts and backlog go to Redis for the UI (:mod:`core.load`).

``max_backlog_ms: 0`` turns skipping off (every frame is inspected however late).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import redis

from core import load
from core.frame import Frame
from core.metrics import BACKLOG_SECONDS, FRAMES_SKIPPED, OVERLOADED
from core.result import InspectionResult

log = logging.getLogger(__name__)

#: Window of the worker's own inspected/s figure.
RATE_WINDOW_S = 10.0
#: Seconds between two load reports to Redis.
REPORT_EVERY_S = 0.5


class BacklogGuard:
    """Skips frames that waited too long, and tells everyone how the worker keeps up."""

    def __init__(
        self,
        r: redis.Redis,
        line_id: str,
        consumer: str,
        max_backlog_ms: int,
        *,
        hold_s: float | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """``hold_s``: the line stays overloaded this long after the last skipped frame
        (default: the larger of 5 s and ``max_backlog_ms``)."""
        self.r, self.line, self.consumer = r, line_id, consumer
        self.max_backlog_ms = int(max_backlog_ms)
        self.hold_s = hold_s if hold_s is not None else max(5.0, self.max_backlog_ms / 1000.0)
        self.clock = clock
        self.inspected = 0
        self.skipped = 0
        self.backlog_ms = 0.0
        self._last_skip: float | None = None
        self._times: deque[float] = deque()
        self._reported = 0.0
        self._lock = threading.Lock()

    # -- per frame --------------------------------------------------------------------------
    def too_old(self, frame: Frame) -> bool:
        """True when ``frame`` waited longer than ``max_backlog_ms``: do not inspect it."""
        now = self.clock()
        waited = max(0.0, (now - frame.host_ts) * 1000.0)
        BACKLOG_SECONDS.labels(line=self.line).set(waited / 1000.0)
        with self._lock:
            self.backlog_ms = waited
            skip = 0 < self.max_backlog_ms < waited
            if skip:
                if not self._overloaded(now):
                    log.warning(
                        "line %s overloaded: frame %s waited %.0f ms > max_backlog_ms %d; "
                        "frames this late are logged UNKNOWN (not inspected) and counted",
                        self.line, frame.frame_id, waited, self.max_backlog_ms,
                    )
                self.skipped += 1
                self._last_skip = now
                FRAMES_SKIPPED.labels(line=self.line).inc()
        self.report()
        return skip

    def not_inspected(
        self, frame: Frame, recipe: str, reason: str = "overloaded"
    ) -> InspectionResult:
        """The log entry of a frame that is not inspected: verdict ``UNKNOWN`` with
        ``unknown_reason`` = ``reason``, no defects, no models. ``overloaded`` for a skipped
        frame; a part whose image never arrived (``frame.missed``) passes its own reason."""
        return InspectionResult(
            line_id=frame.line_id,
            frame_id=int(frame.frame_id),
            captured_at=datetime.fromtimestamp(frame.host_ts, UTC),
            verdict="UNKNOWN",
            latency_ms=max(0.0, (self.clock() - frame.host_ts) * 1000.0),
            recipe=recipe,
            width=frame.width,
            height=frame.height,
            part_id=frame.part_id,
            unknown_reason=reason,
        )

    def published(self, result: InspectionResult) -> None:
        """Count a published result (inspected unless it is a skipped frame's UNKNOWN)."""
        if result.verdict == "UNKNOWN":
            return
        now = self.clock()
        with self._lock:
            self.inspected += 1
            self._times.append(now)
        self.report()

    def record_fields(self) -> dict[str, Any]:
        """What every published verdict record says about the backlog."""
        with self._lock:
            return {
                "overloaded": self._overloaded(self.clock()),
                "backlog_ms": round(self.backlog_ms, 1),
                "max_backlog_ms": self.max_backlog_ms,
            }

    # -- state ------------------------------------------------------------------------------
    def _overloaded(self, now: float) -> bool:
        return self._last_skip is not None and now - self._last_skip <= self.hold_s

    @property
    def overloaded(self) -> bool:
        """Frames were skipped within the last ``hold_s`` seconds."""
        with self._lock:
            return self._overloaded(self.clock())

    def rate(self) -> float:
        """Frames inspected per second over the last :data:`RATE_WINDOW_S` seconds."""
        now = self.clock()
        with self._lock:
            while self._times and now - self._times[0] > RATE_WINDOW_S:
                self._times.popleft()
            return len(self._times) / RATE_WINDOW_S

    def report(self, force: bool = False) -> None:
        """Metrics and the Redis load report (at most every :data:`REPORT_EVERY_S`)."""
        now = self.clock()
        if not force and now - self._reported < REPORT_EVERY_S:
            return
        self._reported = now
        rate = self.rate()
        with self._lock:
            overloaded = self._overloaded(now)
            rep = load.LoadReport(
                inspected_per_s=round(rate, 3), inspected=self.inspected, skipped=self.skipped,
                backlog_ms=round(self.backlog_ms, 1), overloaded=overloaded,
                max_backlog_ms=self.max_backlog_ms, t=now,
            )
        OVERLOADED.labels(line=self.line).set(1 if overloaded else 0)
        try:
            load.report(self.r, self.line, self.consumer, rep)
        except redis.RedisError:
            pass  # the report ages out; the UI shows the line's figures as unknown
