"""Inference worker processes sized to the machine, sharing one stream (real Redis, SQLite)."""

from __future__ import annotations

import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import redis

from core.bus import GROUP, line_keys, stream_key
from core.frame import Frame
from core.recipe import Recipe
from core.settings import Settings
from deploy.workers import GIB, plan_workers, run_worker_processes

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.onnx_factory import make_segmenter  # noqa: E402

FW, FH = 256, 192


def test_workers_are_sized_to_the_machine_unless_set() -> None:
    auto = Settings(inference_workers=0, ort_threads=0)
    plan = plan_workers(auto, cores=8, available_bytes=64 * GIB)
    assert (plan.workers, plan.threads) == (8, 1) and "8 cores" in plan.reason
    tight = plan_workers(auto, cores=8, available_bytes=3 * GIB)  # one per GiB at most
    assert (tight.workers, tight.threads) == (3, 2) and "GiB" in tight.reason
    assert (plan_workers(auto, cores=2, available_bytes=GIB // 2).workers) == 1
    fixed = plan_workers(Settings(inference_workers=3, ort_threads=2), cores=8,
                         available_bytes=64 * GIB)
    assert (fixed.workers, fixed.threads, fixed.reason) == (3, 2, "LINEINSPECT_INFERENCE_WORKERS")


@pytest.mark.redis
def test_worker_processes_share_the_line_and_log_each_frame_once(
    redis_client: redis.Redis, tmp_path: Path
) -> None:
    from storage.db import get_engine, migrate
    from storage.repository import InspectionRepository

    line = f"test-workers-{uuid.uuid4().hex[:8]}"
    settings = Settings(
        redis_url="redis://127.0.0.1:6379/0", database_url=f"sqlite:///{tmp_path / 'w.db'}",
        data_dir=tmp_path, image_store_dir=tmp_path / "images", line_id=line,
        inference_workers=2, ort_threads=1,
    )
    migrate(settings.sqlalchemy_url)
    seg = make_segmenter(tmp_path / "seg.onnx")
    recipe = Recipe.model_validate(
        {"name": "t", "models": [{"name": "seg", "path": str(seg), "tile": 64, "min_area": 20}]}
    )
    r = redis_client
    for fid in range(1, 13):
        img = np.full((FH, FW), 200, np.uint8)
        if fid % 2:
            img[40:60, 100:130] = 10
        r.xadd(stream_key(line), Frame(line, fid, fid, time.time(), FW, FH, "Mono8",
                                       img.tobytes()).to_fields())
    engine = get_engine(settings)
    repo = InspectionRepository(engine)
    stop = threading.Event()
    runner = threading.Thread(target=run_worker_processes, args=(settings, recipe, stop))
    runner.start()
    try:
        deadline = time.monotonic() + 120
        consumers: list = []
        while time.monotonic() < deadline:  # every frame logged, both processes reading
            try:
                consumers = r.xinfo_consumers(stream_key(line), GROUP)
            except redis.ResponseError:  # no group yet: no worker has started reading
                consumers = []
            if repo.count(line) >= 12 and len(consumers) >= 2:
                break
            time.sleep(0.2)
    finally:
        stop.set()
        runner.join(timeout=60)
        r.delete(*line_keys(line))
        r.srem("lines", line)
    assert not runner.is_alive()
    assert repo.count(line) == 12 and repo.count(line, "NG") == 6  # each frame once
    assert len({c["name"] for c in consumers}) == 2  # two processes in the consumer group
    engine.dispose()


@pytest.mark.redis
def test_killed_infer_process_leaves_no_worker_behind(tmp_path: Path) -> None:
    """``lineinspect infer`` with two worker processes, killed with SIGKILL (no clean-up of
    its own): the kernel ends its workers too, so none keeps consuming the line."""
    import os
    import signal
    import subprocess

    import psutil

    from storage.db import migrate

    line = f"test-workers-{uuid.uuid4().hex[:8]}"
    seg = make_segmenter(tmp_path / "seg.onnx")
    recipe = tmp_path / "r.yaml"
    recipe.write_text(f"name: t\nmodels:\n  - {{name: seg, path: {seg}, tile: 64}}\n")
    db = f"sqlite:///{tmp_path / 'w.db'}"
    migrate(db)
    env = dict(os.environ, LINEINSPECT_REDIS_URL="redis://127.0.0.1:6379/0",
               LINEINSPECT_DATABASE_URL=db, LINEINSPECT_DATA_DIR=str(tmp_path),
               LINEINSPECT_ORT_THREADS="1")
    proc = subprocess.Popen(
        [sys.executable, "-m", "deploy.cli", "infer", "--recipe", str(recipe), "--line", line,
         "--workers", "2"], cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    workers: list[psutil.Process] = []
    try:
        parent = psutil.Process(proc.pid)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            workers = [c for c in parent.children() if "spawn_main" in " ".join(c.cmdline())]
            if len(workers) == 2:
                break
            time.sleep(0.2)
        assert len(workers) == 2, "the two worker processes did not start"
        r = redis.Redis.from_url("redis://127.0.0.1:6379/0")
        consumers: list = []
        while time.monotonic() < deadline and len(consumers) < 2:  # both running the loop
            try:
                consumers = r.xinfo_consumers(stream_key(line), GROUP)
            except redis.ResponseError:
                consumers = []
            time.sleep(0.2)
        assert len(consumers) == 2, "the two workers did not start reading"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
        gone, alive = psutil.wait_procs(workers, timeout=15)
        assert not alive, f"workers outlived their killed parent: {alive}"
    finally:
        if proc.poll() is None:
            proc.kill()
        for worker in workers:  # orphans are no longer our children: kill them by pid
            if worker.is_running():
                worker.kill()
        r = redis.Redis.from_url("redis://127.0.0.1:6379/0")
        r.delete(*line_keys(line))
        r.srem("lines", line)


@pytest.fixture(autouse=True)
def _no_resource_tracker_left() -> Iterator[None]:
    """multiprocessing's spawn context starts a resource-tracker process on first use; stop
    it, so the suite's check for leftover child processes stays meaningful."""
    yield
    from multiprocessing import resource_tracker

    resource_tracker._resource_tracker._stop()  # type: ignore[attr-defined]


def test_a_worker_that_keeps_dying_is_reported_then_given_up(tmp_path: Path) -> None:
    """``lineinspect run``'s inference loop: a worker process that exits is reported in
    ``LOOPS`` (``/readyz`` not ready, restarts counted) and, dying ``max_failures`` times in
    a row, the loop is given up (the runner then exits non-zero) instead of restarting
    forever. Here the model file is not an ONNX model: every worker exits while loading."""
    from core.supervise import LOOPS, supervise

    bad = tmp_path / "broken.onnx"
    bad.write_bytes(b"not a model")
    recipe = Recipe.model_validate(
        {"name": "t", "models": [{"name": "seg", "path": str(bad), "tile": 64}]}
    )
    settings = Settings(redis_url="redis://127.0.0.1:6379/0", data_dir=tmp_path,
                        line_id=f"test-workers-{uuid.uuid4().hex[:8]}", inference_workers=2,
                        ort_threads=1)
    name, reasons, stop = f"inference:{settings.line_id}", [], threading.Event()
    troubles: list[str] = []

    def watch() -> None:  # what /readyz would have said meanwhile
        while not stop.wait(0.1):
            trouble = LOOPS.snapshot().get(name, {}).get("trouble")
            if trouble:
                troubles.append(trouble)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        supervise(name, lambda: run_worker_processes(settings, recipe, stop, 0.1, loop=name,
                                                     max_failures=2),
                  stop, max_failures=10, on_fatal=reasons.append, registry=LOOPS)
    finally:
        stop.set()
        watcher.join(5)
    state = LOOPS.snapshot()[name]
    LOOPS.forget(name)
    assert state["fatal"] and not state["ready"]
    assert len(reasons) == 1 and "exited 2 times in a row" in reasons[0], reasons
    assert any("exited with 1" in t for t in troubles), troubles
    assert any("of 2 inference worker processes" in t for t in troubles), troubles
