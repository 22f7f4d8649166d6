"""/healthz, /readyz (each part named; Redis down on a closed port) and /metrics."""

from __future__ import annotations

import time

import redis
from fastapi.testclient import TestClient
from prometheus_client import REGISTRY

from api.app import create_app
from core import heartbeats
from core.bus import set_camera_status, stream_key
from tests.api.api_helpers import closed_port, fake_factory

SPEC_METRICS = [
    "lineinspect_frames_total",
    "lineinspect_verdicts_total",
    "lineinspect_defects_total",
    "lineinspect_frames_dropped_total",
    "lineinspect_frames_incomplete_total",
    "lineinspect_camera_connected",
    "lineinspect_grab_to_verdict_seconds",
    "lineinspect_model_inference_seconds",
    "lineinspect_stream_lag_frames",
    "lineinspect_frame_brightness",
]


def _readyz(client: TestClient, want_models: bool = True) -> tuple[int, dict]:
    deadline = time.monotonic() + 5
    while True:  # the models load in the background at start-up
        resp = client.get("/readyz")
        body = resp.json()
        if not want_models or body["checks"]["models"]["state"] not in ("loading", "not_loaded"):
            return resp.status_code, body
        if time.monotonic() > deadline:
            return resp.status_code, body
        time.sleep(0.05)


def test_healthz(client: TestClient) -> None:
    resp = client.get("/healthz")
    assert resp.status_code == 200 and resp.json() == {"status": "ok"}


def test_root_placeholder_links_docs(client: TestClient) -> None:
    resp = client.get("/")
    assert resp.status_code == 200 and 'href="/docs"' in resp.text
    assert client.get("/openapi.json").status_code == 200


def test_readyz_all_ready(client: TestClient, redis_client: redis.Redis, line_id: str) -> None:
    set_camera_status(redis_client, line_id, True)
    heartbeats.beat(redis_client, line_id, "worker-1")
    status, body = _readyz(client)
    assert status == 200, body
    assert body["ready"] is True and set(body["checks"]) == {
        "redis", "database", "camera", "models", "inference", "loops", "image_store"}
    assert all(part["ready"] for part in body["checks"].values())
    assert body["checks"]["models"]["models"] == {"fake": "0.0.1"}
    assert body["checks"]["camera"]["line_id"] == line_id


def test_readyz_camera_disconnected(client: TestClient, redis_client: redis.Redis,
                                    line_id: str) -> None:
    status, body = _readyz(client)
    assert status == 503 and body["ready"] is False
    assert body["checks"]["camera"]["ready"] is False  # never reported
    assert body["checks"]["redis"]["ready"] and body["checks"]["database"]["ready"]
    set_camera_status(redis_client, line_id, False)
    status, body = _readyz(client)
    assert status == 503 and body["checks"]["camera"]["detail"] == "camera disconnected"


def test_readyz_redis_down(make_settings) -> None:
    settings = make_settings(redis_url=f"redis://127.0.0.1:{closed_port()}/0")
    app = create_app(settings, inspector_factory=fake_factory, retention_interval_s=None)
    with TestClient(app) as c:
        t = time.monotonic()
        status, body = _readyz(c)
        assert time.monotonic() - t < 5
    assert status == 503
    checks = body["checks"]
    assert checks["redis"]["ready"] is False and "detail" in checks["redis"]
    assert checks["camera"]["ready"] is False
    assert checks["database"]["ready"] is True and checks["models"]["ready"] is True
    # the metrics page still answers without Redis
    with TestClient(app) as c:
        assert c.get("/metrics").status_code == 200


def test_readyz_models_failed(make_settings, redis_client: redis.Redis, line_id: str) -> None:
    def broken(_recipe, _settings):
        raise FileNotFoundError("models/zoo/sme_deeplabv3plus.onnx")

    set_camera_status(redis_client, line_id, True)
    app = create_app(make_settings(), inspector_factory=broken, retention_interval_s=None)
    with TestClient(app) as c:
        status, body = _readyz(c)
    assert status == 503
    assert body["checks"]["models"]["ready"] is False
    assert "sme_deeplabv3plus" in body["checks"]["models"]["detail"]
    assert body["checks"]["camera"]["ready"] is True


def test_metrics_exposition(client: TestClient, redis_client: redis.Redis, line_id: str) -> None:
    set_camera_status(redis_client, line_id, True)
    key = stream_key(line_id)
    redis_client.xgroup_create(key, "inference", id="0", mkstream=True)
    for n in range(3):
        redis_client.xadd(key, {"n": n})
    resp = client.get("/metrics")
    assert resp.status_code == 200 and resp.headers["content-type"].startswith("text/plain")
    text = resp.text
    for name in SPEC_METRICS:
        assert f"# TYPE {name} " in text, name
    assert f'lineinspect_camera_connected{{line="{line_id}"}} 1.0' in text
    assert f'lineinspect_stream_lag_frames{{line="{line_id}"}} 3.0' in text
    set_camera_status(redis_client, line_id, False)
    text = client.get("/metrics").text
    assert f'lineinspect_camera_connected{{line="{line_id}"}} 0.0' in text


def test_readyz_reports_an_inference_worker_in_trouble_or_absent(
    client: TestClient, redis_client: redis.Redis, line_id: str
) -> None:
    """Issue 17.2: a dead or stuck inference loop makes the service not ready, with why."""
    set_camera_status(redis_client, line_id, True)
    status, body = _readyz(client)
    assert status == 503 and body["checks"]["inference"]["detail"].startswith("no inference")
    heartbeats.beat(redis_client, line_id, "w1", trouble="Redis refused: MISCONF ...")
    status, body = _readyz(client)
    assert status == 503 and "MISCONF" in body["checks"]["inference"]["detail"]
    heartbeats.beat(redis_client, line_id, "w1")
    status, body = _readyz(client)
    assert status == 200 and body["checks"]["inference"]["workers"]["w1"]["trouble"] is None
    redis_client.delete(heartbeats.workers_key(line_id))


def test_failed_loop_fails_readiness_and_a_given_up_loop_fails_liveness(
    client: TestClient, redis_client: redis.Redis, line_id: str
) -> None:
    """Issue 17.3: /healthz stayed 200 with a dead embedded Redis."""
    import threading

    from core.supervise import LOOPS, supervise

    def broken() -> None:
        raise RuntimeError("redis-server exited with status -9")

    set_camera_status(redis_client, line_id, True)
    heartbeats.beat(redis_client, line_id, "w1")
    try:
        supervise("test-loop", broken, threading.Event(), backoff_initial_s=0.0,
                  max_failures=2)
        status, body = _readyz(client)
        assert status == 503 and "test-loop" in body["checks"]["loops"]["detail"]
        resp = client.get("/healthz")
        assert resp.status_code == 503 and resp.json()["failed_loops"] == ["test-loop"]
        assert REGISTRY.get_sample_value("lineinspect_loop_restarts_total",
                                         {"loop": "test-loop"}) >= 2
    finally:
        LOOPS.forget("test-loop")
        redis_client.delete(heartbeats.workers_key(line_id))
    assert client.get("/healthz").status_code == 200
