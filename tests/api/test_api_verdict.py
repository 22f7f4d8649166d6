"""PLC verdict endpoint: served from Redis, fail-safe UNKNOWN when stale or camera down.

The staleness limit comes from the verdict record itself (the worker writes the recipe's
``stale_after_ms`` into it); the API never reads a recipe to answer the PLC.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import redis
from fastapi.testclient import TestClient

from api.app import create_app
from core.bus import (
    camera_key,
    publish_verdict,
    set_camera_status,
    verdict_key,
    verdict_ts_key,
)
from tests.api.api_helpers import STALE_AFTER_MS, closed_port, fake_factory


def _publish(
    r: redis.Redis,
    line: str,
    verdict: str = "OK",
    age_s: float = 0.0,
    stale_after_ms: int | None = STALE_AFTER_MS,
) -> dict:
    """Make this the line's latest verdict record (an older one replaces the stored one: the
    test stands for a line whose last verdict is that old)."""
    r.delete(verdict_key(line), verdict_ts_key(line))
    captured = datetime.now(UTC) - timedelta(seconds=age_s)
    body = {
        "inspection_id": 17, "line_id": line, "frame_id": 1234,
        "captured_at": captured.isoformat().replace("+00:00", "Z"),
        "verdict": verdict, "code": {"OK": 0, "NG": 1}[verdict],
        "defects": [] if verdict == "OK" else [
            {"class": "scratch", "score": 0.9, "bbox": [1, 2, 3, 4], "area_px": 12, "model": "m"}
        ],
        "models": {"m": "1.0.0"}, "latency_ms": 20.0, "age_ms": 0.0, "recipe": "test-recipe",
    }
    if stale_after_ms is not None:
        body["stale_after_ms"] = stale_after_ms
    assert publish_verdict(r, line, body)
    return body


def test_fresh_verdict_then_stale(client: TestClient, redis_client: redis.Redis,
                                  line_id: str) -> None:
    set_camera_status(redis_client, line_id, True)
    _publish(redis_client, line_id, "NG")
    resp = client.get(f"/api/v1/lines/{line_id}/verdict")
    assert resp.status_code == 200
    body = resp.json()
    assert body["verdict"] == "NG" and body["code"] == 1 and body["reason"] is None
    assert body["line_id"] == line_id and body["frame_id"] == 1234
    assert body["counts"] == {"scratch": 1} and "defects" not in body  # compact
    assert body["links"]["inspection"] == "/api/v1/inspections/17"
    assert body["result_id"] == body["last_result_id"] == 1
    full = client.get(f"/api/v1/lines/{line_id}/verdict", params={"full": True}).json()
    assert full["defects"][0]["class"] == "scratch" and full["models"] == {"m": "1.0.0"}
    assert 0 <= body["age_ms"] < STALE_AFTER_MS
    assert body["stale_after_ms"] == STALE_AFTER_MS and body["camera_connected"] is True
    assert resp.headers["cache-control"] == "no-store"
    time.sleep(STALE_AFTER_MS / 1000 + 0.15)  # the line stops producing verdicts
    set_camera_status(redis_client, line_id, True)  # camera still alive
    body = client.get(f"/api/v1/lines/{line_id}/verdict").json()
    assert body["verdict"] == "UNKNOWN" and body["code"] == 2 and body["reason"] == "stale"
    assert body["last_verdict"] == "NG" and body["age_ms"] > STALE_AFTER_MS


def test_ok_and_old_verdicts(client: TestClient, redis_client: redis.Redis, line_id: str) -> None:
    set_camera_status(redis_client, line_id, True)
    _publish(redis_client, line_id, "OK")
    body = client.get(f"/api/v1/lines/{line_id}/verdict").json()
    assert (body["verdict"], body["code"]) == ("OK", 0)
    _publish(redis_client, line_id, "OK", age_s=5)
    body = client.get(f"/api/v1/lines/{line_id}/verdict").json()
    assert (body["verdict"], body["code"], body["reason"]) == ("UNKNOWN", 2, "stale")
    _publish(redis_client, line_id, "OK", age_s=-5)  # from the future: clock skew
    body = client.get(f"/api/v1/lines/{line_id}/verdict").json()
    assert (body["verdict"], body["reason"]) == ("UNKNOWN", "stale")


def test_staleness_comes_from_the_record(client: TestClient, redis_client: redis.Redis,
                                         line_id: str) -> None:
    """The record's ``stale_after_ms`` decides, not the recipe file (500 ms here); a record
    without one (an older worker) gets the contract's default of 1000 ms."""
    set_camera_status(redis_client, line_id, True)
    _publish(redis_client, line_id, "NG", age_s=2.0, stale_after_ms=5000)
    body = client.get(f"/api/v1/lines/{line_id}/verdict").json()
    assert (body["verdict"], body["reason"], body["stale_after_ms"]) == ("NG", None, 5000)
    _publish(redis_client, line_id, "OK", age_s=0.7, stale_after_ms=None)
    body = client.get(f"/api/v1/lines/{line_id}/verdict").json()
    assert (body["verdict"], body["reason"], body["stale_after_ms"]) == ("OK", None, 1000)
    _publish(redis_client, line_id, "OK", age_s=1.2, stale_after_ms=None)
    body = client.get(f"/api/v1/lines/{line_id}/verdict").json()
    assert (body["verdict"], body["reason"]) == ("UNKNOWN", "stale")


def test_camera_disconnected_is_unknown(client: TestClient, redis_client: redis.Redis,
                                        line_id: str) -> None:
    _publish(redis_client, line_id, "OK")
    set_camera_status(redis_client, line_id, False)
    body = client.get(f"/api/v1/lines/{line_id}/verdict").json()
    assert (body["verdict"], body["code"], body["reason"]) == ("UNKNOWN", 2, "camera_disconnected")
    assert body["last_verdict"] == "OK" and body["camera_connected"] is False
    # connected, but the acquisition heartbeat stopped 10 s ago
    set_camera_status(redis_client, line_id, True)
    redis_client.hset(camera_key(line_id), "heartbeat", repr(time.time() - 10))
    _publish(redis_client, line_id, "OK")
    body = client.get(f"/api/v1/lines/{line_id}/verdict").json()
    assert (body["verdict"], body["reason"]) == ("UNKNOWN", "camera_disconnected")


def test_no_camera_status_is_unknown(client: TestClient, redis_client: redis.Redis,
                                     line_id: str) -> None:
    _publish(redis_client, line_id, "OK")  # a verdict but no acquisition worker ever reported
    body = client.get(f"/api/v1/lines/{line_id}/verdict").json()
    assert (body["verdict"], body["reason"]) == ("UNKNOWN", "camera_disconnected")


def test_known_line_without_verdict(client: TestClient, redis_client: redis.Redis,
                                    line_id: str) -> None:
    set_camera_status(redis_client, line_id, True)
    resp = client.get(f"/api/v1/lines/{line_id}/verdict")
    assert resp.status_code == 200
    body = resp.json()
    assert (body["verdict"], body["code"], body["reason"]) == ("UNKNOWN", 2, "no_verdict_yet")
    assert body["inspection_id"] is None and body["counts"] == {}
    assert body["result_id"] is None and body["last_result_id"] == 0
    lines = client.get("/api/v1/lines").json()["lines"]
    assert any(x["line_id"] == line_id and x["verdict"] == "UNKNOWN" for x in lines)


def test_unknown_line_is_404(client: TestClient, new_line) -> None:
    resp = client.get(f"/api/v1/lines/{new_line()}/verdict")
    assert resp.status_code == 404
    body = resp.json()
    assert body["error"] == "not_found" and "never reported" in body["detail"]
    assert (body["verdict"], body["code"]) == ("UNKNOWN", 2)


def test_redis_down_is_503_unknown(make_settings, line_id: str) -> None:
    settings = make_settings(redis_url=f"redis://127.0.0.1:{closed_port()}/0")
    app = create_app(settings, inspector_factory=fake_factory, retention_interval_s=None,
                     preload_models=False)
    with TestClient(app) as c:
        resp = c.get(f"/api/v1/lines/{line_id}/verdict")
    assert resp.status_code == 503
    body = resp.json()
    assert body["error"] == "redis_unavailable" and (body["verdict"], body["code"]) == (
        "UNKNOWN", 2)


def test_corrupt_record_is_unknown(client: TestClient, redis_client: redis.Redis,
                                   line_id: str) -> None:
    set_camera_status(redis_client, line_id, True)
    redis_client.set(verdict_key(line_id), b"{not json")
    resp = client.get(f"/api/v1/lines/{line_id}/verdict")
    assert resp.status_code == 200
    body = resp.json()
    assert (body["verdict"], body["code"], body["reason"]) == ("UNKNOWN", 2, "invalid_record")
