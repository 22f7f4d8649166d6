"""Issue 17.10: ``lineinspect run`` executed for real, as a process (``serve`` runs in
``tests/api/test_api_schemathesis.py`` and ``tests/deploy/test_prometheus_live.py``,
``migrate`` in ``tests/deploy/test_deploy_cli_secrets.py``).

``lineinspect run`` starts everything of the single-machine service: the embedded Redis (its
own ``redis-server`` child), SQLite, the pylon camera emulator replaying the demo frames, the
inference worker with the shipped steel-strip recipe and the real zoo models, and the API.
The test waits until the line's first frames are logged and the PLC endpoint answers a live
verdict, then stops it with SIGTERM: a graceful shutdown, no traceback, and its
``redis-server`` gone.
"""

from __future__ import annotations

import signal
import subprocess
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest

from tests.service_process import free_port, lineinspect_process, wait_until_up

pytestmark = [pytest.mark.slow]


def _poll(what: str, check: Callable[[], Any], proc: subprocess.Popen, log: Path,
          timeout_s: float = 300) -> Any:
    """Poll ``check`` until truthy; fail with the log when the process ends or on a hang."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"exited with {proc.returncode} waiting for {what}:\n"
                                 f"{log.read_text()[-4000:]}")
        value = check()
        if value:
            return value
        time.sleep(0.5)
    raise AssertionError(f"no {what} after {timeout_s} s:\n{log.read_text()[-4000:]}")


def test_lineinspect_run_inspects_the_demo_line_and_stops_cleanly(tmp_path: Path) -> None:
    port, line = free_port(), f"test-run-{uuid.uuid4().hex[:8]}"
    base = f"http://127.0.0.1:{port}"
    env = {"LINEINSPECT_DATA_DIR": str(tmp_path / "data"), "LINEINSPECT_API_PORT": str(port),
           "LINEINSPECT_API_HOST": "127.0.0.1", "LINEINSPECT_LINE_ID": line,
           "LINEINSPECT_REDIS_URL": "", "LINEINSPECT_DATABASE_URL": "",
           "LINEINSPECT_FRAME_RATE": "1", "LINEINSPECT_ORT_THREADS": "1",
           "PYLON_CAMEMU": "1"}  # empty URLs: the embedded Redis and SQLite
    log = tmp_path / "run.log"
    with lineinspect_process(["run"], env, tmp_path, "run") as proc:
        wait_until_up(f"{base}/healthz", proc, log, timeout_s=300)
        children = psutil.Process(proc.pid).children(recursive=True)
        redis_servers = [c for c in children if "redis-server" in " ".join(c.cmdline())]
        assert len(redis_servers) == 1, [c.cmdline() for c in children]

        def logged() -> list[dict[str, Any]]:
            resp = httpx.get(f"{base}/api/v1/inspections", params={"line_id": line})
            return resp.json()["items"] if resp.status_code == 200 else []

        items = _poll("inspection logged", lambda: len(logged()) >= 2 and logged(), proc, log)
        assert {i["line_id"] for i in items} == {line}
        assert all(i["verdict"] in ("OK", "NG") for i in items)
        assert set(items[0]["models"]) >= {"sme_deeplabv3plus", "mm", "esg_convnext"}
        frame_ids = sorted(i["frame_id"] for i in items)
        assert len(set(frame_ids)) == len(frame_ids)
        verdict = httpx.get(f"{base}/api/v1/lines/{line}/verdict").json()
        assert verdict["line_id"] == line and verdict["verdict"] in ("OK", "NG", "UNKNOWN")

        proc.send_signal(signal.SIGTERM)
        # uvicorn re-raises the signal after its graceful shutdown: "killed by SIGTERM" is
        # the clean end (systemd counts it as success); anything else is not
        assert proc.wait(60) in (0, -signal.SIGTERM), log.read_text()[-4000:]
        text = log.read_text()
        assert "Application shutdown complete" in text and "Traceback" not in text, text[-4000:]
    # the embedded server goes with its parent (it may take a moment to save nothing and exit)
    _gone, alive = psutil.wait_procs(redis_servers, timeout=30)
    assert not alive, f"redis-server outlived lineinspect run: {alive}"
