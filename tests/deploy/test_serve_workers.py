"""``lineinspect serve --workers 2`` as a real process on the real Redis: two uvicorn worker
processes answer the PLC verdict and result cursor (a new NG is visible), and SIGTERM to
the parent stops every worker."""

from __future__ import annotations

import signal
import uuid
from datetime import UTC, datetime
from pathlib import Path

import httpx
import psutil
import pytest
import redis

from core.bus import line_keys, publish_result, set_camera_status
from tests.servers import REDIS_URL
from tests.service_process import free_port, lineinspect_process, wait_until_up

pytestmark = pytest.mark.redis


def _publish(r: redis.Redis, line: str, frame: int, verdict: str) -> int:
    set_camera_status(r, line, True)
    now = datetime.now(UTC).isoformat().replace("+00:00", "Z")
    record = {"inspection_id": frame, "line_id": line, "frame_id": frame, "captured_at": now,
              "verdict": verdict, "code": {"OK": 0, "NG": 1}[verdict], "defects": [],
              "stale_after_ms": 60000, "recipe": "serve-test"}
    return publish_result(r, line, record).result_id


def test_two_workers_answer_the_plc_and_stop_with_the_parent(
    tmp_path: Path, redis_client: redis.Redis
) -> None:
    line = f"test-serve-{uuid.uuid4().hex[:10]}"
    (tmp_path / "recipes").mkdir()  # no recipe: no model loads in the workers
    env = {"LINEINSPECT_REDIS_URL": REDIS_URL, "LINEINSPECT_DATA_DIR": str(tmp_path),
           "LINEINSPECT_RECIPES_DIR": str(tmp_path / "recipes"),
           "LINEINSPECT_LOG_LEVEL": "WARNING"}
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    try:
        first = _publish(redis_client, line, 1, "OK")
        cmd = ["serve", "--host", "127.0.0.1", "--port", str(port), "--workers", "2",
               "--no-access-log"]
        with lineinspect_process(cmd, env, tmp_path, "serve") as proc:
            wait_until_up(f"{base}/healthz", proc, tmp_path / "serve.log", timeout_s=300)
            workers = [c for c in psutil.Process(proc.pid).children()
                       if "spawn_main" in " ".join(c.cmdline())]
            assert len(workers) == 2
            ng = _publish(redis_client, line, 2, "NG")
            for _ in range(10):  # a new connection each time: either worker may answer
                body = httpx.get(f"{base}/api/v1/lines/{line}/verdict",
                                 params={"since": first}).json()
                assert (body["last_result_id"], body["verdict"]) == (ng, "NG")
                assert (body["worst_since"], body["ng_since"], body["pending"]) == ("NG", 1, 1)
            page = httpx.get(f"{base}/api/v1/lines/{line}/results",
                             params={"after": first}).json()
            assert [r["result_id"] for r in page["results"]] == [ng]
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(60) == 0
            _, alive = psutil.wait_procs(workers, timeout=30)
            assert not alive
    finally:
        redis_client.delete(*line_keys(line))
        redis_client.srem("lines", line)
