"""A hung Redis - the real ``redis-server`` stopped with SIGSTOP, its socket open - on the PLC
read path: the Modbus/OPC UA line view reads ``UNKNOWN`` (state 6) and the REST verdict
answers 503 after ``core.results.READ_TIMEOUT_S``, not after the Redis client's retried
socket timeouts (4-8 s, during which OPC UA kept showing the last verdict)."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path

import pytest
import redis
from fastapi.testclient import TestClient

from api.app import create_app
from core.embedded_redis import EmbeddedRedis
from core.redis_conn import aconnect
from core.settings import Settings
from plc.state import PlcState
from tests.plc_interfaces.plc_helpers import Line

#: Well below the 4-8 s of the retried socket timeouts, well above READ_TIMEOUT_S: the bound
#: holds on a loaded machine too.
DEADLINE_S = 2.0


@pytest.fixture()
def hung_redis(tmp_path: Path):
    """A running redis-server, a line publishing on it, and ``hang()`` to SIGSTOP it."""
    srv = EmbeddedRedis(tmp_path / "redis", backoff_initial_s=0.05)
    url = srv.start()
    line = Line(redis.Redis.from_url(url), "hung-line")
    stopped: list[int] = []

    def hang() -> None:
        os.kill(srv.proc.pid, signal.SIGSTOP)
        stopped.append(srv.proc.pid)

    yield url, line, hang
    for pid in stopped:
        os.kill(pid, signal.SIGCONT)
    srv.stop()


def test_plc_view_reads_unknown_soon_after_redis_hangs(hung_redis, tmp_path: Path) -> None:
    url, line, hang = hung_redis

    async def go() -> None:
        r = aconnect(Settings(redis_url=url, data_dir=tmp_path), socket_timeout=2.0)
        state = PlcState(r, "modbus", acknowledged=True)
        line.publish("OK")  # the camera heartbeat is fresh when the PLC reads
        before = await state.view(line.line_id)
        assert (before.status.code, before.status.state) == (0, 1)  # OK, running
        hang()
        t0 = time.monotonic()
        after = await state.view(line.line_id)
        assert time.monotonic() - t0 < DEADLINE_S
        assert (after.status.code, after.status.state) == (2, 6)  # UNKNOWN, Redis unavailable
        assert after.status.answer["reason"] == "redis_unavailable"

    asyncio.run(go())


def test_rest_verdict_is_503_soon_after_redis_hangs(hung_redis, tmp_path: Path) -> None:
    url, line, hang = hung_redis
    (tmp_path / "recipes").mkdir()
    settings = Settings(redis_url=url, data_dir=tmp_path, recipes_dir=tmp_path / "recipes",
                        database_url=f"sqlite:///{tmp_path / 'api.db'}")
    with TestClient(create_app(settings, preload_models=False,
                               retention_interval_s=None)) as client:
        line.publish("OK")  # the camera heartbeat is fresh when the PLC reads
        ok = client.get(f"/api/v1/lines/{line.line_id}/verdict")
        assert ok.status_code == 200 and ok.json()["verdict"] == "OK"
        hang()
        t0 = time.monotonic()
        down = client.get(f"/api/v1/lines/{line.line_id}/verdict")
        assert time.monotonic() - t0 < DEADLINE_S
        assert down.status_code == 503
        assert (down.json()["verdict"], down.json()["code"]) == ("UNKNOWN", 2)
