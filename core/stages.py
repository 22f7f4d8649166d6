"""Per-stage timers of the acquisition and inference workers (read by ``bench pipeline``).

Cheap enough to stay on in production: one ``perf_counter`` pair and a deque append per stage
and frame. Each stage keeps its count, total and the last ``keep`` samples (percentiles).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Iterator, Mapping
from contextlib import contextmanager

import numpy as np


class StageTimer:
    """Seconds spent per named stage; thread-safe."""

    def __init__(self, keep: int = 20_000) -> None:
        """``keep``: samples kept per stage for the percentiles (older ones are forgotten)."""
        self.keep = keep
        self._lock = threading.Lock()
        self._count: dict[str, int] = {}
        self._total: dict[str, float] = {}
        self._samples: dict[str, deque[float]] = {}

    def add(self, name: str, seconds: float) -> None:
        """Record one occurrence of ``name`` that took ``seconds``."""
        with self._lock:
            if name not in self._count:
                self._count[name], self._total[name] = 0, 0.0
                self._samples[name] = deque(maxlen=self.keep)
            self._count[name] += 1
            self._total[name] += seconds
            self._samples[name].append(seconds)

    def add_ms(self, timings: Mapping[str, float], prefix: str = "") -> None:
        """Record a dict of stage -> milliseconds (e.g. ``Inspector.timings``)."""
        for name, ms in timings.items():
            self.add(prefix + name, ms / 1000.0)

    @contextmanager
    def time(self, name: str) -> Iterator[None]:
        """``with timer.time("stage"): ...`` records the block's duration."""
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.add(name, time.perf_counter() - t0)

    def reset(self) -> None:
        """Forget everything (e.g. after a warm-up)."""
        with self._lock:
            self._count.clear()
            self._total.clear()
            self._samples.clear()

    def export(self) -> dict[str, dict[str, object]]:
        """Counts, totals and kept samples (seconds) per stage: what :meth:`absorb` takes,
        e.g. from another process (JSON-ready)."""
        with self._lock:
            return {
                k: {"count": self._count[k], "total_s": self._total[k],
                    "samples_s": list(self._samples[k])}
                for k in self._count
            }

    def absorb(self, exported: Mapping[str, Mapping[str, object]]) -> None:
        """Add the stages of :meth:`export` (another worker's) to this timer."""
        with self._lock:
            for name, data in exported.items():
                if name not in self._count:
                    self._count[name], self._total[name] = 0, 0.0
                    self._samples[name] = deque(maxlen=self.keep)
                self._count[name] += int(data["count"])  # type: ignore[call-overload]
                self._total[name] += float(data["total_s"])  # type: ignore[arg-type]
                self._samples[name].extend(data["samples_s"])  # type: ignore[arg-type]

    def summary(self) -> dict[str, dict[str, float | int]]:
        """Per stage: ``count``, ``total_s``, ``mean_ms``, ``p50_ms``, ``p99_ms``, ``max_ms``."""
        with self._lock:
            items = [(k, self._count[k], self._total[k], list(self._samples[k])) for k in
                     self._count]
        out: dict[str, dict[str, float | int]] = {}
        for name, count, total, samples in items:
            ms = np.asarray(samples) * 1000.0
            out[name] = {
                "count": count,
                "total_s": round(total, 4),
                "mean_ms": round(total * 1000.0 / count, 3) if count else 0.0,
                "p50_ms": round(float(np.percentile(ms, 50)), 3) if len(ms) else 0.0,
                "p99_ms": round(float(np.percentile(ms, 99)), 3) if len(ms) else 0.0,
                "max_ms": round(float(ms.max()), 3) if len(ms) else 0.0,
            }
        return out
