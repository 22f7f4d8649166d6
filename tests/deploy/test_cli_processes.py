"""Issue 17.10: ``lineinspect run`` executed for real, as a process (``serve`` runs in
``tests/api/test_api_schemathesis.py`` and ``tests/deploy/test_prometheus_live.py``,
``migrate`` in ``tests/deploy/test_deploy_cli_secrets.py``).

``lineinspect run`` starts everything of the single-machine service: the embedded Redis (its
own ``redis-server`` child), SQLite, the pylon camera emulator replaying the demo frames, the
inference worker processes (two, ``LINEINSPECT_INFERENCE_WORKERS``, as ``lineinspect infer``
sizes them) with the shipped steel-strip recipe and the real zoo models, and the API.
The test waits until both worker processes beat in ``/readyz`` and the line's first frames
are logged with a live verdict, kills one worker (``/readyz`` names it until a new one is
up), then stops the service with SIGTERM: a graceful shutdown, no traceback, and no child
process left (workers, ``redis-server``, multiprocessing's resource tracker).
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
           "LINEINSPECT_INFERENCE_WORKERS": "2",
           "PYLON_CAMEMU": "1"}  # empty URLs: the embedded Redis and SQLite
    log = tmp_path / "run.log"
    with lineinspect_process(["run"], env, tmp_path, "run") as proc:
        wait_until_up(f"{base}/healthz", proc, log, timeout_s=300)
        service = psutil.Process(proc.pid)
        children = service.children(recursive=True)
        redis_servers = [c for c in children if "redis-server" in " ".join(c.cmdline())]
        assert len(redis_servers) == 1, [c.cmdline() for c in children]
        workers = _poll("two inference worker processes", lambda: _workers(service, 2), proc,
                        log, timeout_s=60)
        # each worker process runs the inference loop on the embedded Redis: it beats there
        # under its own consumer name (host-pid)
        _poll("both workers beating", lambda: _beating(base, line) >= {w.pid for w in workers},
              proc, log)

        def logged() -> list[dict[str, Any]]:
            resp = httpx.get(f"{base}/api/v1/inspections", params={"line_id": line})
            return resp.json()["items"] if resp.status_code == 200 else []

        def inspected() -> list[dict[str, Any]]:
            return [i for i in logged() if i["verdict"] in ("OK", "NG")]

        # frames the camera sent while the workers loaded their models waited longer than
        # max_backlog_ms: logged UNKNOWN with the reason (the fail-safe), then live verdicts
        items = _poll("inspection logged", lambda: len(inspected()) >= 2 and inspected(), proc,
                      log)
        assert {i["line_id"] for i in items} == {line}
        assert all(i["unknown_reason"] for i in logged() if i["verdict"] not in ("OK", "NG"))
        assert set(items[0]["models"]) >= {"sme_deeplabv3plus", "mm", "esg_convnext"}
        frame_ids = sorted(i["frame_id"] for i in items)
        assert len(set(frame_ids)) == len(frame_ids)
        verdict = httpx.get(f"{base}/api/v1/lines/{line}/verdict").json()
        assert verdict["line_id"] == line and verdict["verdict"] in ("OK", "NG", "UNKNOWN")

        # a dead worker process: readiness says so (loops) until its replacement is up
        workers[0].kill()
        detail = _poll("readiness naming the dead worker", lambda: _loops_detail(base, line),
                       proc, log, timeout_s=30)
        assert "inference worker" in detail, detail
        replaced = _poll("a new worker process", lambda: (
            (now := _workers(service, 2)) and workers[0].pid not in {w.pid for w in now}
            and now), proc, log, timeout_s=120)
        every_child = {*children, *replaced, *service.children(recursive=True)}

        proc.send_signal(signal.SIGTERM)
        # uvicorn re-raises the signal after its graceful shutdown: "killed by SIGTERM" is
        # the clean end (systemd counts it as success); anything else is not
        assert proc.wait(60) in (0, -signal.SIGTERM), log.read_text()[-4000:]
        text = log.read_text()
        assert "Application shutdown complete" in text and "Traceback" not in text, text[-4000:]
    # the embedded server and the worker processes go with their parent (the server may take
    # a moment to save nothing and exit)
    _gone, alive = psutil.wait_procs(list(every_child), timeout=30)
    assert not alive, f"children outlived lineinspect run: {[p.cmdline() for p in alive]}"


def _workers(service: psutil.Process, n: int) -> list[psutil.Process]:
    """The service's ``n`` inference worker processes (multiprocessing spawn children), or
    an empty list while there are not exactly ``n``."""
    try:
        found = [c for c in service.children()
                 if "spawn_main" in " ".join(c.cmdline()) and c.status() != "zombie"]
    except psutil.Error:
        return []
    return found if len(found) == n else []


def _readyz(base: str) -> dict[str, Any]:
    """The ``/readyz`` checks (its body is the same at 200 and 503)."""
    return httpx.get(f"{base}/readyz", timeout=10).json()["checks"]


def _beating(base: str, line: str) -> set[int]:
    """Pids of the inference workers beating for ``line`` (consumer names end in the pid)."""
    workers = _readyz(base)["inference"].get("workers", {})
    return {int(name.rsplit("-", 1)[1]) for name in workers}


def _loops_detail(base: str, line: str) -> str:
    """Why the inference loop of ``line`` is not ready ('' while it is)."""
    loop = _readyz(base)["loops"]["loops"].get(f"inference:{line}", {})
    return "" if loop.get("ready", True) else str(loop.get("trouble"))
