"""The whole line as separate processes, the way production runs it:

``lineinspect acquire`` (pylon camera emulator replaying the demo frames) -> the real Redis at
127.0.0.1:6379 -> ``lineinspect infer`` workers -> the real PostgreSQL at 127.0.0.1:5432 (a
fresh schema) -> the API.

Faults are real process faults: one inference worker is SIGKILLed mid-stream and another takes
over; the acquisition process is SIGKILLed (camera/emulator gone) and the PLC's verdict must
turn ``UNKNOWN`` within the recipe's ``stale_after_ms``. Every frame the camera put on the
stream must be logged exactly once, with the camera's consecutive frame ids.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path

import pytest
import redis
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, text

from api.app import create_app
from core.bus import last_frame_id_key, line_keys, stream_key
from core.settings import REPO_ROOT, Settings
from storage.db import migrate
from tests.onnx_factory import make_segmenter
from tests.servers import missing

pytestmark = [pytest.mark.redis, pytest.mark.postgres, pytest.mark.slow]

REDIS_URL = "redis://127.0.0.1:6379/0"
PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
STALE_AFTER_MS = 1500
FRAME_RATE = 2


def _wait_for(what: str, cond: Callable[[], bool], timeout_s: float, procs: list) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if cond():
            return
        for p in procs:
            if p.poll() is not None:
                raise AssertionError(f"{p.args[-1]} exited with {p.returncode} waiting for {what}")
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")


@pytest.fixture()
def line(tmp_path: Path) -> Iterator[dict]:
    """A unique line on the real Redis and a fresh PostgreSQL schema; cleaned up afterwards."""
    r = redis.Redis.from_url(REDIS_URL, socket_timeout=5.0)
    admin = create_engine(PG_URL, connect_args={"connect_timeout": 3})
    try:
        r.ping()
        with admin.begin() as conn:
            conn.execute(text("SELECT 1"))
    except Exception as exc:  # noqa: BLE001 - any reason to not reach them skips
        missing(f"needs Redis on :6379 and PostgreSQL on :5432: {exc}")
    line_id = f"test-e2e-{uuid.uuid4().hex[:10]}"
    schema = f"li_e2e_{uuid.uuid4().hex[:10]}"
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    db_url = f"{PG_URL}?options=-csearch_path%3D{schema}"
    migrate(db_url)
    seg = make_segmenter(tmp_path / "seg.onnx", centers=(200.0, 0.0), input_size=(64, 64))
    recipe = tmp_path / "e2e.yaml"
    recipe.write_text(
        f"name: e2e\nstale_after_ms: {STALE_AFTER_MS}\nstream_maxlen: 100000\n"
        f"camera:\n  frame_rate: {FRAME_RATE}\n"
        f"models:\n  - name: seg\n    path: {seg}\n    tile: 256\n    min_area: 4000\n"
    )
    env = {
        **os.environ,
        "PYLON_CAMEMU": "1",
        "LINEINSPECT_REDIS_URL": REDIS_URL,
        "LINEINSPECT_DATABASE_URL": db_url,
        "LINEINSPECT_LINE_ID": line_id,
        "LINEINSPECT_RECIPE": str(recipe),
        "LINEINSPECT_DATA_DIR": str(tmp_path),
        "LINEINSPECT_CLAIM_IDLE_MS": "1000",
        "LINEINSPECT_ORT_THREADS": "1",
    }
    engine = create_engine(db_url)
    procs: list[subprocess.Popen] = []
    logs = tmp_path / "logs"
    logs.mkdir()

    def spawn(command: str, name: str) -> subprocess.Popen:
        out = (logs / f"{name}.log").open("wb")
        p = subprocess.Popen(
            [sys.executable, "-m", "deploy.cli", command], cwd=REPO_ROOT, env=env,
            stdout=out, stderr=subprocess.STDOUT,
        )
        procs.append(p)
        return p

    def logged() -> list[int]:
        with engine.connect() as conn:
            rows = conn.execute(
                text("SELECT frame_id FROM inspections WHERE line_id = :l"), {"l": line_id}
            )
            return [row[0] for row in rows]

    settings = Settings(
        redis_url=REDIS_URL, database_url=db_url, line_id=line_id, recipe=str(recipe),
        data_dir=tmp_path,
    )
    try:
        yield {"id": line_id, "r": r, "spawn": spawn, "logged": logged, "settings": settings,
               "procs": procs, "logs": logs}
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait(10)
        engine.dispose()
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()
        r.delete(*line_keys(line_id))
        r.srem("lines", line_id)
        r.close()


def _streamed_frame_ids(r: redis.Redis, line_id: str) -> list[int]:
    """Every frame id the acquisition worker wrote: 1 .. its last id (``frameid:{line}``).
    The stream itself no longer holds them: inspected frames are deleted after their XACK;
    gaps would be drops, which this line (emulator, nothing lost) does not have."""
    last = int(r.get(last_frame_id_key(line_id)) or 0)
    return list(range(1, last + 1))


def _verdict_until_unknown(client: TestClient, line_id: str, timeout_s: float) -> list[dict]:
    """Poll the PLC endpoint every 20 ms until it answers UNKNOWN; return every answer."""
    answers = []
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        v = client.get(f"/api/v1/lines/{line_id}/verdict").json()
        v["_polled_at"] = time.time()
        answers.append(v)
        if v["verdict"] == "UNKNOWN":
            return answers
        time.sleep(0.02)
    raise AssertionError(f"verdict never turned UNKNOWN: last {answers[-1]}")


def test_line_survives_worker_kill_and_fails_safe_when_camera_dies(line: dict) -> None:
    r, line_id, procs = line["r"], line["id"], line["procs"]
    acquire = line["spawn"]("acquire", "acquire")
    _wait_for("the first grabbed frame", lambda: r.xlen(stream_key(line_id)) > 0, 60, procs)

    first = line["spawn"]("infer", "infer-1")
    _wait_for("5 logged inspections", lambda: len(line["logged"]()) >= 5, 90, procs)
    first.send_signal(signal.SIGKILL)  # the worker dies mid-stream, frames keep coming
    first.wait(10)
    procs.remove(first)
    killed_at = len(line["logged"]())
    time.sleep(1.5)

    line["spawn"]("infer", "infer-2")
    _wait_for("10 more inspections", lambda: len(line["logged"]()) >= killed_at + 10, 90, procs)

    app = create_app(line["settings"], preload_models=False, retention_interval_s=None)
    with TestClient(app) as client:
        seen: list[dict] = []

        def fresh() -> bool:
            seen.append(client.get(f"/api/v1/lines/{line_id}/verdict").json())
            return seen[-1]["code"] in (0, 1)

        try:  # the survivor has caught up: the PLC sees a fresh OK/NG
            _wait_for("a fresh verdict", fresh, 60, procs)
        except AssertionError as exc:
            raise AssertionError(f"{exc}; last answer {seen[-1]}") from None
        # The camera vanishes without saying goodbye (process killed, cable pulled).
        acquire.send_signal(signal.SIGKILL)
        acquire.wait(10)
        procs.remove(acquire)
        answers = _verdict_until_unknown(client, line_id, timeout_s=STALE_AFTER_MS / 1000 + 5)

    for a in answers[:-1]:  # never a stale OK/NG
        assert a["age_ms"] is not None and a["age_ms"] <= STALE_AFTER_MS, a
    unknown = answers[-1]
    assert unknown["code"] == 2 and unknown["reason"] in ("stale", "camera_disconnected")
    # UNKNOWN came no later than stale_after_ms after the last frame was captured (+ 2 polls)
    captured = datetime.fromisoformat(unknown["captured_at"]).timestamp()
    assert unknown["_polled_at"] - captured <= STALE_AFTER_MS / 1000 + 0.3

    streamed = _streamed_frame_ids(r, line_id)
    _wait_for(
        "the surviving worker to log the backlog",
        lambda: len(line["logged"]()) >= len(streamed), 120, procs,
    )
    logged = line["logged"]()
    assert len(logged) == len(set(logged)), "a frame was logged twice"
    assert sorted(logged) == sorted(streamed), "a streamed frame was lost"
    assert sorted(streamed) == list(range(min(streamed), max(streamed) + 1)), "frame id gap"
    assert len(streamed) >= killed_at + 10
    assert r.xpending(stream_key(line_id), "inference")["pending"] == 0

    survivor = procs[-1]
    survivor.send_signal(signal.SIGTERM)  # docker stop: finishes cleanly
    assert survivor.wait(15) == 0, (line["logs"] / "infer-2.log").read_text()[-2000:]
