"""The result sequence over REST: ``GET /lines/{line}/results?after=`` and the verdict's
``since`` cursor, against the real Redis. A poller at any rate sees every NG."""

from __future__ import annotations

from datetime import UTC, datetime

import redis
from fastapi.testclient import TestClient

from core.bus import publish_result, set_camera_status


def _publish(r: redis.Redis, line: str, frame_id: int, verdict: str, maxlen: int = 10000) -> int:
    now = datetime.now(UTC).isoformat().replace("+00:00", "Z")
    defects = [{"class": "scratch", "score": 0.9, "bbox": [1, 2, 3, 4], "area_px": 12,
                "model": "m"}] if verdict == "NG" else []
    record = {"inspection_id": 100 + frame_id, "line_id": line, "frame_id": frame_id,
              "captured_at": now, "verdict": verdict, "code": {"OK": 0, "NG": 1}[verdict],
              "defects": defects, "stale_after_ms": 5000}
    return publish_result(r, line, record, maxlen=maxlen).result_id


def test_results_after_a_cursor(client: TestClient, redis_client: redis.Redis,
                                line_id: str) -> None:
    set_camera_status(redis_client, line_id, True)
    for f in range(1, 8):
        _publish(redis_client, line_id, f, "NG" if f in (2, 6) else "OK")
    url = f"/api/v1/lines/{line_id}/results"
    body = client.get(url, params={"after": 2, "limit": 3}).json()
    assert [x["result_id"] for x in body["results"]] == [3, 4, 5]
    assert body["results"][0]["links"]["inspection"] == "/api/v1/inspections/103"
    assert (body["next_after"], body["has_more"], body["last_result_id"]) == (5, True, 7)
    # worst and counts cover every result after the cursor, not only the page: 6 was NG
    assert body["worst"] == {"verdict": "NG", "code": 1}
    assert body["counts"] == {"OK": 4, "NG": 1, "UNKNOWN": 0, "lost": 0}
    assert body["line"]["verdict"] == "OK" and body["pending"] == 5
    body = client.get(url, params={"after": body["next_after"]}).json()
    assert [x["frame_id"] for x in body["results"]] == [6, 7] and not body["has_more"]
    assert body["results"][0]["counts"] == {"scratch": 1}
    body = client.get(url, params={"after": 7}).json()
    assert body["results"] == [] and body["worst"]["verdict"] == "OK"
    assert client.get(url, params={"after": -1}).status_code == 422
    assert client.get(url, params={"limit": 5000}).status_code == 422


def test_verdict_since_a_result_id(client: TestClient, redis_client: redis.Redis,
                                   line_id: str) -> None:
    set_camera_status(redis_client, line_id, True)
    for f in range(1, 5):
        _publish(redis_client, line_id, f, "NG" if f == 2 else "OK")
    url = f"/api/v1/lines/{line_id}/verdict"
    body = client.get(url, params={"since": 1}).json()
    assert (body["verdict"], body["result_id"], body["frame_id"]) == ("OK", 4, 4)
    assert (body["worst_since"], body["ng_since"], body["pending"]) == ("NG", 1, 3)
    assert body["ng_total"] == 1 and body["last_ng_result_id"] == 2
    body = client.get(url, params={"since": 2}).json()
    assert (body["worst_since"], body["ng_since"], body["pending"]) == ("OK", 0, 2)


def test_a_slow_poller_sees_every_ng(client: TestClient, redis_client: redis.Redis,
                                     line_id: str) -> None:
    """Alternating OK/NG, polled once per 1, 3 or 10 results: the poller's cursor
    accounts for every result and every NG, and the latest verdict alone would miss NGs."""
    set_camera_status(redis_client, line_id, True)
    for every in (1, 3, 10):
        seen, latest_ng, cursor = [], 0, 0
        base = (every * 1000)
        for i in range(1, 61):
            _publish(redis_client, line_id, base + i, "NG" if i % 2 else "OK")
            if i % every == 0:
                v = client.get(f"/api/v1/lines/{line_id}/verdict").json()
                latest_ng += v["verdict"] == "NG"
                page = client.get(f"/api/v1/lines/{line_id}/results",
                                  params={"after": cursor}).json()
                seen += page["results"]
                cursor = page["next_after"]
        frames = [x["frame_id"] for x in seen if x["frame_id"] > base]
        assert frames == [base + i for i in range(1, 61)]
        assert sum(x["verdict"] == "NG" for x in seen if x["frame_id"] > base) == 30
        if every > 1:
            assert latest_ng < 30  # polling only the latest verdict misses NGs


def test_a_cursor_out_of_the_window_is_not_ok(client: TestClient, redis_client: redis.Redis,
                                              line_id: str) -> None:
    set_camera_status(redis_client, line_id, True)
    for f in range(1, 11):
        _publish(redis_client, line_id, f, "OK", maxlen=4)
    body = client.get(f"/api/v1/lines/{line_id}/results", params={"after": 1}).json()
    assert body["counts"]["lost"] == 5 and body["worst"]["verdict"] == "UNKNOWN"
    assert [x["result_id"] for x in body["results"]] == [7, 8, 9, 10]


def test_results_of_unknown_line_is_404(client: TestClient, new_line) -> None:
    resp = client.get(f"/api/v1/lines/{new_line()}/results")
    assert resp.status_code == 404 and resp.json()["code"] == 2
