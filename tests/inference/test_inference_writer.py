"""The pipelined write path: :class:`inference.writer.OrderedWriter` and the worker using it.

The worker test runs against the real Redis at 127.0.0.1:6379 (unique line ids, cleaned up):
the next frame is inspected while the previous one is being committed, and still no entry is
acked before its inspection is saved.
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import redis

from core.bus import GROUP, stream_key
from core.frame import Frame
from core.recipe import Recipe
from core.result import InspectionResult
from core.settings import Settings
from inference.pipeline import Inspector
from inference.worker import run_inference
from inference.writer import OrderedWriter

FW, FH = 128, 96


def test_jobs_run_in_order_off_the_calling_thread() -> None:
    writer = OrderedWriter(depth=2)
    seen: list[tuple[int, str]] = []
    for i in range(20):
        writer.submit(i, lambda i=i: seen.append((i, threading.current_thread().name)))
    writer.drain()
    assert [i for i, _ in seen] == list(range(20))
    assert {name for _, name in seen} == {"inference-writer"}
    assert writer.in_flight == 0
    writer.close()


def test_an_error_skips_the_jobs_behind_it_and_surfaces_in_the_caller() -> None:
    writer = OrderedWriter(depth=3)
    gate, ran = threading.Event(), []

    def fails() -> None:
        gate.wait(5)
        raise RuntimeError("database is locked")

    writer.submit("a", fails)
    writer.submit("b", lambda: ran.append("b"))
    assert writer.holds("b") and writer.in_flight == 2
    gate.set()
    with pytest.raises(RuntimeError, match="locked"):
        writer.drain()
    assert ran == [] and writer.in_flight == 0  # "b" skipped: its entry stays pending
    writer.submit("c", lambda: ran.append("c"))  # the writer goes on after the error
    writer.drain()
    assert ran == ["c"]
    writer.close()


def test_submit_blocks_while_depth_jobs_wait() -> None:
    writer = OrderedWriter(depth=1)
    release = threading.Event()
    writer.submit(1, lambda: release.wait(5))  # running
    writer.submit(2, lambda: None)  # waiting
    t = threading.Thread(target=writer.submit, args=(3, lambda: None))
    t.start()
    t.join(0.2)
    assert t.is_alive()  # back-pressure: inference stays at most depth + 1 frames ahead
    release.set()
    t.join(5)
    writer.drain()
    writer.close()


class SlowLog:
    """Repository stand-in whose save takes ``delay`` s; records when saves ran and whether
    the entry was still pending (not acked) at save time."""

    def __init__(self, r: redis.Redis, key: str, delay: float) -> None:
        self.r, self.key, self.delay = r, key, delay
        self.rows: dict[int, int] = {}
        self.saves: list[tuple[int, float, float]] = []
        self.pending_at_save: list[bool] = []

    def save(self, result: InspectionResult) -> tuple[int, bool]:
        pending = self.r.xpending(self.key, GROUP)["pending"]
        self.pending_at_save.append(pending >= 1)
        t0 = time.monotonic()
        time.sleep(self.delay)
        self.saves.append((result.frame_id, t0, time.monotonic()))
        if result.frame_id in self.rows:
            return self.rows[result.frame_id], False
        self.rows[result.frame_id] = len(self.rows) + 1
        return self.rows[result.frame_id], True

    def set_image_paths(self, *a: Any) -> None:
        pass


class TimedInspector:
    """Wraps an Inspector and records when each frame's inspection started."""

    def __init__(self, inner: Inspector) -> None:
        self.inner, self.started = inner, {}

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def inspect_frame(self, frame: Frame) -> InspectionResult:
        self.started[frame.frame_id] = time.monotonic()
        return self.inner.inspect_frame(frame)


@pytest.mark.redis
def test_next_frame_is_inspected_while_the_last_one_is_committed(
    redis_client: redis.Redis, line_id: str, model_dir: Path
) -> None:
    r = redis_client
    rec = Recipe.model_validate(
        {"name": "t", "models": [{"name": "seg", "path": str(model_dir / "seg.onnx"),
                                  "tile": 64}]}
    )
    inspector = TimedInspector(Inspector(rec, Settings()))
    for fid in range(1, 5):
        img = np.full((FH, FW), 200, np.uint8)
        f = Frame(line_id, fid, fid, datetime.now(UTC).timestamp(), FW, FH, "Mono8",
                  img.tobytes())
        r.xadd(stream_key(line_id), f.to_fields())
    log = SlowLog(r, stream_key(line_id), delay=0.3)
    stop = threading.Event()
    timer = threading.Timer(30.0, stop.set)
    timer.start()
    try:
        stats = run_inference(
            Settings(line_id=line_id, redis_url="redis://127.0.0.1:6379/0", worker_name="w"),
            rec, log, None, stop=stop, max_frames=4, inspector=inspector, redis_client=r,
            block_ms=100,
        )
    finally:
        timer.cancel()
    assert stats.processed == 4 and sorted(log.rows) == [1, 2, 3, 4]
    assert [fid for fid, _, _ in log.saves] == [1, 2, 3, 4]  # committed in stream order
    assert all(log.pending_at_save)  # no entry acked before its save
    assert r.xpending(stream_key(line_id), GROUP)["pending"] == 0
    overlapped = [
        fid for fid, _, end in log.saves[:-1] if inspector.started[fid + 1] < end
    ]
    assert overlapped, "no frame was inspected while the previous one was being saved"
