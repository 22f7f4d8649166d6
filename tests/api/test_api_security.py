"""Issue 17.5/17.7: roles with hashed keys, every write authenticated and audited, CSRF-safe
writes, upload pixel cap and concurrency/rate limits, security headers, guessing limit, and
read protection when configured. Real SQLite log, real Redis, the app in TestClient.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import cv2
import numpy as np
import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from core.result import InspectionResult
from core.settings import Settings
from tests.api.api_helpers import API_KEY, fake_factory

ADMIN = {"X-API-Key": API_KEY}
UPLOAD = "/api/v1/inspect"


def _png(h: int = 64, w: int = 80) -> dict[str, tuple[str, bytes, str]]:
    ok, buf = cv2.imencode(".png", np.full((h, w), 200, np.uint8))
    assert ok
    return {"file": ("f.png", buf.tobytes(), "image/png")}


def _key(client: TestClient, role: str, name: str = "") -> str:
    resp = client.post("/api/v1/keys", json={"name": name or f"{role}-1", "role": role},
                       headers=ADMIN)
    assert resp.status_code == 201, resp.text
    return resp.json()["key"]


def _seed(services) -> int:
    iid, _ = services.repository.save(InspectionResult(
        line_id="line-s", frame_id=1, captured_at=datetime.now(UTC), verdict="NG"))
    return iid


def test_roles_and_hashed_keys(client: TestClient, services, settings: Settings) -> None:
    viewer, operator = _key(client, "viewer"), _key(client, "operator")
    iid = _seed(services)
    review = f"/api/v1/inspections/{iid}/review"
    body = {"reviewer": "anna", "action": "confirm"}
    assert client.post(UPLOAD, files=_png()).status_code == 401  # no key: no upload
    assert client.post(UPLOAD, files=_png(), headers={"X-API-Key": viewer}).status_code == 403
    assert client.post(review, json=body, headers={"X-API-Key": viewer}).status_code == 403
    assert services.repository.count() == 1 and not services.repository.get_record(iid).reviewed
    assert client.post(review, json=body, headers={"X-API-Key": operator}).status_code == 201
    assert client.post(UPLOAD, files=_png(), headers={"X-API-Key": operator}).status_code == 200
    # operators manage no keys
    assert client.get("/api/v1/keys", headers={"X-API-Key": operator}).status_code == 403
    # stored hashed: the database file holds the SHA-256, never the key
    keys = client.get("/api/v1/keys", headers=ADMIN).json()["items"]
    assert {k["role"] for k in keys} == {"viewer", "operator"}
    assert all("key" not in k and "key_hash" not in k for k in keys)
    db = Path(settings.sqlalchemy_url.removeprefix("sqlite:///")).read_bytes()
    wal = Path(str(settings.sqlalchemy_url.removeprefix("sqlite:///")) + "-wal")
    raw = db + (wal.read_bytes() if wal.exists() else b"")
    assert operator.encode() not in raw and viewer.encode() not in raw
    assert hashlib.sha256(operator.encode()).hexdigest().encode() in raw
    # revoked keys stop working at once
    op_id = next(k["id"] for k in keys if k["role"] == "operator")
    assert client.delete(f"/api/v1/keys/{op_id}", headers=ADMIN).status_code == 200
    assert client.post(review, json=body, headers={"X-API-Key": operator}).status_code == 401


def test_every_write_is_audited(client: TestClient, services) -> None:
    operator = _key(client, "operator", "qa-anna")
    iid = _seed(services)
    client.post(f"/api/v1/inspections/{iid}/review", json={"reviewer": "anna",
                "action": "confirm"}, headers={"X-API-Key": operator})
    client.post(UPLOAD, files=_png())  # refused: no key
    items = client.get("/api/v1/audit", headers=ADMIN).json()["items"]
    actions = [(i["actor"], i["action"], i["result"]) for i in items]
    assert ("qa-anna", f"POST /api/v1/inspections/{iid}/review", "201") in actions
    assert ("anonymous", "POST /api/v1/inspect", "401") in actions
    assert ("bootstrap-admin", "POST /api/v1/keys", "201") in actions  # configuration change
    assert all(i["client"] and i["at"] for i in items)
    assert client.get("/api/v1/audit", headers={"X-API-Key": operator}).status_code == 403


def test_cross_site_writes_are_refused(client: TestClient, services) -> None:
    iid = _seed(services)
    url = f"/api/v1/inspections/{iid}/review"
    body = {"reviewer": "mallory", "action": "false_reject"}
    for headers in ({"Origin": "https://evil.example"}, {"Origin": "null"},
                    {"Sec-Fetch-Site": "cross-site"}):
        resp = client.post(url, json=body, headers={**ADMIN, **headers})
        assert resp.status_code == 403 and resp.json()["error"] == "forbidden", headers
        assert client.post(UPLOAD, files=_png(), headers={**ADMIN, **headers}).status_code == 403
    assert not services.repository.get_record(iid).reviewed and services.repository.count() == 1
    same = client.post(url, json=body, headers={**ADMIN, "Origin": "http://testserver"})
    assert same.status_code == 201


def test_security_headers(client: TestClient) -> None:
    for path in ("/", "/api/v1/inspections", "/healthz"):
        h = client.get(path).headers
        assert h["X-Content-Type-Options"] == "nosniff" and h["X-Frame-Options"] == "DENY"
        assert "frame-ancestors 'none'" in h["Content-Security-Policy"]
        assert h["Referrer-Policy"] == "no-referrer"


def test_key_guessing_is_throttled(make_settings: Callable[..., Settings], redis_client) -> None:
    app = create_app(make_settings(auth_failures_per_minute=5), inspector_factory=fake_factory,
                     retention_interval_s=None)
    with TestClient(app) as c:
        codes = [c.post(UPLOAD, files=_png(), headers={"X-API-Key": f"guess-{n}"}).status_code
                 for n in range(6)]
        assert codes == [401] * 5 + [429]
        # even the right key waits: the guesser cannot learn which one was right
        assert c.post(UPLOAD, files=_png(), headers=ADMIN).status_code == 429


def test_upload_pixel_cap_and_tiny_image(make_settings: Callable[..., Settings], tmp_path,
                                         redis_client) -> None:
    recipes = tmp_path / "recipes"
    (recipes / "tiled.yaml").write_text(
        "name: tiled\nmodels:\n  - name: seg\n    path: seg.onnx\n    tile: 64\n")
    app = create_app(make_settings(max_upload_pixels=100 * 100), inspector_factory=fake_factory,
                     retention_interval_s=None)
    with TestClient(app, headers=ADMIN) as c:
        svc = c.app.state.services
        big = c.post(UPLOAD, files=_png(101, 100))
        assert big.status_code == 413 and big.json()["error"] == "payload_too_large"
        tiny = c.post(UPLOAD, files=_png(1, 1), data={"recipe": "tiled"})
        assert tiny.status_code == 422 and tiny.json()["error"] == "image_too_small"
        assert svc.repository.count() == 0
        assert c.post(UPLOAD, files=_png(64, 64), data={"recipe": "tiled"}).status_code == 200


def test_uploads_wait_for_the_line(make_settings: Callable[..., Settings], redis_client) -> None:
    app = create_app(make_settings(upload_rate_per_minute=3), inspector_factory=fake_factory,
                     retention_interval_s=None)
    with TestClient(app, headers=ADMIN) as c:
        svc = c.app.state.services
        with svc.uploads.admit("someone-else"):  # an ad-hoc inspection is running
            busy = c.post(UPLOAD, files=_png())
        assert busy.status_code == 429 and "Retry-After" in busy.headers
        assert svc.repository.count() == 0
        codes = [c.post(UPLOAD, files=_png()).status_code for _ in range(4)]
        assert codes == [200, 200, 200, 429]  # 3 per minute per key


@pytest.mark.parametrize("reads_protected", [False, True])
def test_reads_need_a_viewer_key_when_configured(
    make_settings: Callable[..., Settings], redis_client, reads_protected: bool
) -> None:
    app = create_app(make_settings(auth_reads=reads_protected),
                     inspector_factory=fake_factory, retention_interval_s=None)
    with TestClient(app) as c:
        viewer = _key(c, "viewer")
        plain = c.get("/api/v1/inspections")
        assert plain.status_code == (401 if reads_protected else 200)
        assert c.get("/api/v1/inspections", headers={"X-API-Key": viewer}).status_code == 200
        assert c.get("/healthz").status_code == 200  # probes and the PLC stay open
        assert c.get("/api/v1/lines/none/verdict").status_code in (404, 200)
