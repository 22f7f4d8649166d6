"""core.bus against the real Redis: the atomic verdict compare-and-set, stream lag, keys."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest
import redis

from core.bus import (
    LINES_KEY,
    ensure_group,
    latest_verdict,
    line_keys,
    publish_verdict,
    stream_key,
    stream_lag,
    verdict_ts_key,
)

pytestmark = pytest.mark.redis

BASE = datetime(2026, 1, 1, tzinfo=UTC)


def _record(line: str, frame_id: int) -> dict:
    """A verdict record captured ``frame_id`` ms after :data:`BASE`."""
    captured = BASE + timedelta(milliseconds=frame_id)
    return {"line_id": line, "frame_id": frame_id, "verdict": "OK", "code": 0,
            "captured_at": captured.isoformat().replace("+00:00", "Z")}


def test_an_older_verdict_never_replaces_a_newer_one(
    redis_client: redis.Redis, line_id: str
) -> None:
    r = redis_client
    assert publish_verdict(r, line_id, _record(line_id, 10))
    assert not publish_verdict(r, line_id, _record(line_id, 9))  # e.g. a reclaimed frame
    assert latest_verdict(r, line_id)["frame_id"] == 10
    assert publish_verdict(r, line_id, _record(line_id, 10) | {"verdict": "NG"})  # same frame
    assert latest_verdict(r, line_id)["verdict"] == "NG"
    assert publish_verdict(r, line_id, _record(line_id, 11))
    assert int(r.get(verdict_ts_key(line_id))) == int((BASE.timestamp() + 0.011) * 1e6)
    assert r.sismember(LINES_KEY, line_id)


def test_two_racing_publishers_never_step_back(redis_client: redis.Redis, line_id: str) -> None:
    """Two workers publish interleaved frames as fast as they can, each on its own
    connection, while a reader polls: the stored verdict only ever moves forward and ends
    at the newest frame. (The former read-then-write publish stepped back 28-47 times per
    run here, and sometimes ended on the second-newest frame.)"""
    n = 500
    frames = [list(range(0, 2 * n, 2)), list(range(1, 2 * n, 2))]
    start = threading.Barrier(3)
    done = threading.Event()
    seen: list[int] = []
    errors: list[BaseException] = []

    def publisher(ids: list[int]) -> None:
        r = redis.Redis(connection_pool=redis_client.connection_pool)
        try:
            start.wait()
            for fid in ids:
                publish_verdict(r, line_id, _record(line_id, fid))
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            errors.append(exc)

    def reader() -> None:
        r = redis.Redis(connection_pool=redis_client.connection_pool)
        start.wait()
        while not done.is_set():
            record = latest_verdict(r, line_id)
            if record is not None:
                seen.append(record["frame_id"])

    threads = [threading.Thread(target=publisher, args=(ids,)) for ids in frames]
    watcher = threading.Thread(target=reader)
    for t in (*threads, watcher):
        t.start()
    for t in threads:
        t.join(timeout=60)
    done.set()
    watcher.join(timeout=10)
    assert not errors, errors
    assert latest_verdict(redis_client, line_id)["frame_id"] == 2 * n - 1
    steps_back = [(a, b) for a, b in zip(seen, seen[1:], strict=False) if b < a]
    assert len(seen) > 100 and steps_back == []


def test_stream_lag_counts_unread_entries(redis_client: redis.Redis, line_id: str) -> None:
    r = redis_client
    assert stream_lag(r, line_id) is None  # no stream yet
    ensure_group(r, line_id)
    ensure_group(r, line_id)  # idempotent
    for i in range(3):
        r.xadd(stream_key(line_id), {"i": i})
    assert stream_lag(r, line_id) == 3
    r.xreadgroup("inference", "c1", {stream_key(line_id): ">"}, count=1)
    assert stream_lag(r, line_id) == 2


def test_line_keys_name_every_key_of_a_line() -> None:
    keys = line_keys("l1")
    assert keys == ["frames:l1", "frameid:l1", "verdict:l1", "verdict_ts:l1", "camera:l1",
                    "resultseq:l1", "results:l1", "resultframes:l1", "results_ng:l1",
                    "results_unknown:l1", "resultcounts:l1", "plccursor:l1"]
