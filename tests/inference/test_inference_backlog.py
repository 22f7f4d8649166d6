"""Falling behind is reported: frames older than max_backlog_ms are logged UNKNOWN without
inspection and counted, the PLC hears ``overloaded``, the load report reaches Redis; a restart
does not make the line wait for the old run's backlog. Real Redis at 127.0.0.1:6379."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import redis
from prometheus_client import REGISTRY

from core import load
from core.bus import GROUP, line_snapshot, stream_key
from core.frame import Frame
from core.plc import STATE_CODES, plc_answer
from core.recipe import Recipe
from core.result import InspectionResult
from core.settings import Settings
from inference.backlog import BacklogGuard
from inference.pipeline import Inspector
from inference.worker import run_inference

pytestmark = pytest.mark.redis

FW, FH = 128, 96


class Log:
    """Inspection log stand-in: one row per (line, frame id)."""

    def __init__(self) -> None:
        self.rows: dict[int, str] = {}

    def save(self, result: InspectionResult) -> tuple[int, bool]:
        created = result.frame_id not in self.rows
        self.rows.setdefault(result.frame_id, result.verdict)
        return result.frame_id, created

    def set_image_paths(self, inspection_id: int, image_path: str, mask_path: str) -> None:
        """Not used: no image store in these tests."""


class CountingInspector(Inspector):
    """The real Inspector, counting the frames it was asked to inspect."""

    calls = 0

    def inspect_frame(self, frame: Frame) -> InspectionResult:
        type(self).calls += 1
        return super().inspect_frame(frame)


def frame(line: str, fid: int, host_ts: float) -> Frame:
    img = np.full((FH, FW), 200, np.uint8)
    return Frame(line, fid, fid, host_ts, FW, FH, "Mono8", img.tobytes())


def skipped_total(line: str) -> float:
    return REGISTRY.get_sample_value("lineinspect_frames_skipped_total", {"line": line}) or 0.0


@pytest.fixture()
def inspector(model_dir: Path) -> CountingInspector:
    recipe = Recipe.model_validate({
        "name": "t", "max_backlog_ms": 60_000,
        "models": [{"name": "seg", "path": str(model_dir / "seg.onnx"), "tile": 64}],
    })
    CountingInspector.calls = 0
    return CountingInspector(recipe, Settings())


def test_restart_skips_the_old_backlog_logs_it_and_reports_overload(
    redis_client: redis.Redis, line_id: str, inspector: CountingInspector
) -> None:
    r = redis_client
    old = time.time() - 3600  # an old run's backlog: an hour old, limit 60 s
    for fid in range(1, 21):
        r.xadd(stream_key(line_id), frame(line_id, fid, old + fid).to_fields())
    for fid in range(21, 24):  # the new run's frames
        r.xadd(stream_key(line_id), frame(line_id, fid, time.time()).to_fields())
    before = skipped_total(line_id)
    log_ = Log()
    stop = threading.Event()
    timer = threading.Timer(60.0, stop.set)
    timer.start()
    try:
        stats = run_inference(
            Settings(line_id=line_id, worker_name="w1"), inspector.recipe, log_,
            stop=stop, max_frames=23, inspector=inspector, redis_client=r, block_ms=100,
        )
    finally:
        timer.cancel()
    assert stats.handled == 23
    # never lost without a count: every frame is in the log, the old ones as UNKNOWN
    assert sorted(log_.rows) == list(range(1, 24))
    assert [log_.rows[f] for f in range(1, 21)] == ["UNKNOWN"] * 20
    assert {log_.rows[f] for f in range(21, 24)} == {"OK"}
    assert CountingInspector.calls == 3  # the backlog cost no inspection
    assert skipped_total(line_id) - before == 20
    assert r.xpending(stream_key(line_id), GROUP)["pending"] == 0
    # the newest verdict is the live frame 23, and the worker still says it is overloaded
    snap = line_snapshot(r, line_id)
    assert snap.verdict is not None and snap.verdict["frame_id"] == 23
    assert snap.verdict["overloaded"] is True and snap.verdict["max_backlog_ms"] == 60_000
    rep = load.line_load(r, line_id)
    assert rep is not None and rep.overloaded and rep.skipped == 20 and rep.inspected == 3
    assert REGISTRY.get_sample_value("lineinspect_overloaded", {"line": line_id}) == 1.0


def test_plc_hears_overloaded_while_it_lasts(redis_client: redis.Redis, line_id: str) -> None:
    now = datetime.now(UTC)
    record: dict[str, Any] = {
        "line_id": line_id, "frame_id": 5, "verdict": "OK", "code": 0,
        "captured_at": now.isoformat(), "stale_after_ms": 1000, "overloaded": True,
        "max_backlog_ms": 5000,
    }
    from core.bus import CameraStatus, LineSnapshot

    cam = CameraStatus(connected=True, heartbeat=now.timestamp(), info={})
    answer = plc_answer(line_id, LineSnapshot(verdict=record, camera=cam, known=True), now)
    assert (answer["verdict"], answer["code"], answer["reason"]) == ("UNKNOWN", 2, "overloaded")
    assert STATE_CODES["overloaded"] not in (0, 1)
    # once the record is older than stale_after_ms + max_backlog_ms it is merely stale
    record["captured_at"] = datetime.fromtimestamp(now.timestamp() - 7, UTC).isoformat()
    answer = plc_answer(line_id, LineSnapshot(verdict=record, camera=cam, known=True), now)
    assert answer["reason"] == "stale"
    record.update(overloaded=False, captured_at=now.isoformat())
    answer = plc_answer(line_id, LineSnapshot(verdict=record, camera=cam, known=True), now)
    assert (answer["verdict"], answer["reason"]) == ("OK", None)


def test_guard_rate_hold_and_report_of_two_workers(
    redis_client: redis.Redis, line_id: str
) -> None:
    t = [1000.0]
    guards = [BacklogGuard(redis_client, line_id, f"w{i}", 2000, hold_s=5.0, clock=lambda: t[0])
              for i in (1, 2)]
    g = guards[0]
    assert not g.too_old(frame(line_id, 1, t[0] - 1.0))  # waited 1 s < 2 s
    assert g.too_old(frame(line_id, 2, t[0] - 3.0)) and g.overloaded
    assert g.record_fields() == {"overloaded": True, "backlog_ms": 3000.0, "max_backlog_ms": 2000}
    ok = InspectionResult(line_id=line_id, frame_id=3, captured_at=datetime.now(UTC),
                          verdict="OK")
    for _ in range(5):
        g.published(ok)
    guards[1].published(ok)
    t[0] += 6.0  # past hold_s: no longer overloaded; 6 of the window's inspections remain
    assert not g.overloaded
    for x in guards:
        x.report(force=True)
    rep = load.line_load(redis_client, line_id, now=t[0])
    assert rep is not None and not rep.overloaded and rep.inspected == 6 and rep.skipped == 1
    assert rep.inspected_per_s == pytest.approx(0.6)  # 6 in the 10 s window, both workers
    assert load.line_load(redis_client, line_id, now=t[0] + 60) is None  # reports aged out
    redis_client.delete(load.load_key(line_id))
