"""Defect log endpoints: filters, cursor pagination, 404s, images not retained, reviews."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
from fastapi.testclient import TestClient

from core.result import Defect, InspectionResult
from tests.api.api_helpers import API_KEY

T0 = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)
LOG = "/api/v1/inspections"


def _seed(services, n: int = 30) -> list[int]:
    ids = []
    for k in range(n):
        ng = k % 3 == 0
        ids.append(services.repository.save(InspectionResult(
            line_id="line-a" if k % 2 else "line-b", frame_id=k,
            captured_at=T0 + timedelta(seconds=k // 2), verdict="NG" if ng else "OK",
            defects=[Defect(cls="scratch" if k % 5 else "pit", score=0.8, bbox=(1, 2, 3, 4),
                            area_px=12, model="m")] if ng else [],
            models={"m": "1.0.0"}, mask_classes=["background", "pit", "scratch"],
        ))[0])
    return ids


def _walk(client: TestClient, **params) -> tuple[list[int], int]:
    seen, cursor, pages = [], None, 0
    while True:
        q = dict(params, **({"cursor": cursor} if cursor else {}))
        resp = client.get(LOG, params=q)
        assert resp.status_code == 200, resp.text
        body = resp.json()
        seen += [i["inspection_id"] for i in body["items"]]
        pages += 1
        cursor = body["next_cursor"]
        if cursor is None:
            return seen, pages


def test_log_filters_and_paging(client: TestClient, services) -> None:
    ids = _seed(services)
    seen, pages = _walk(client, limit=7)
    assert pages == 5 and sorted(seen) == sorted(ids) and len(set(seen)) == 30
    expected = [i for _, i in sorted(((k // 2, i) for k, i in enumerate(ids)), reverse=True)]
    assert seen == expected  # newest first, ties by id
    ng, _ = _walk(client, verdict="NG", limit=4)
    assert sorted(ng) == [ids[k] for k in range(30) if k % 3 == 0]
    pits, _ = _walk(client, defect_class="pit")
    assert sorted(pits) == [ids[k] for k in (0, 15)]
    line_a, _ = _walk(client, line_id="line-a", verdict="OK")
    assert sorted(line_a) == [ids[k] for k in range(30) if k % 2 and k % 3]
    window, _ = _walk(client, since="2026-11-23T08:00:05Z", until="2026-11-23T08:00:07")
    assert sorted(window) == [ids[k] for k in range(10, 14)]
    item = client.get(LOG, params={"limit": 1}).json()["items"][0]
    assert set(item) >= {"inspection_id", "line_id", "frame_id", "captured_at", "verdict",
                         "code", "defects", "models", "latency_ms", "age_ms", "reviewed"}


def test_log_bad_params_are_422(client: TestClient) -> None:
    for params in ({"verdict": "MAYBE"}, {"limit": 0}, {"limit": 501}, {"since": "yesterday"},
                   {"cursor": "not-a-cursor"}, {"reviewed": "perhaps"},
                   {"since": "2026-01-02T00:00:00Z", "until": "2026-01-01T00:00:00Z"}):
        resp = client.get(LOG, params=params)
        assert resp.status_code == 422, params
        assert resp.json()["error"] == "validation_error" and resp.json()["detail"]


def test_404s(client: TestClient, services) -> None:
    for path in (f"{LOG}/999999", f"{LOG}/999999/mask.png", f"{LOG}/999999/image.png",
                 f"{LOG}/999999/overlay.png", "/api/v1/nothing-here"):
        resp = client.get(path)
        assert resp.status_code == 404, path
        assert resp.json()["error"] == "not_found"
    assert client.get(f"{LOG}/abc").status_code == 422
    iid = _seed(services, 1)[0]  # logged, but no image retained (OK frame)
    assert client.get(f"{LOG}/{iid}").status_code == 200
    for suffix in ("mask.png", "image.png", "overlay.png"):
        resp = client.get(f"{LOG}/{iid}/{suffix}")
        assert resp.status_code == 404 and "not retained" in resp.json()["detail"]


def test_image_gone_after_retention_is_404(client: TestClient, services) -> None:
    iid = _seed(services, 1)[0]
    paths = services.images.save("line-b", 0, T0, np.zeros((8, 8), np.uint8),
                                 np.zeros((8, 8), np.uint8))
    services.repository.set_image_paths(iid, *paths)
    assert client.get(f"{LOG}/{iid}/image.png").status_code == 200
    assert client.get(f"{LOG}/{iid}/overlay.png").status_code == 200
    services.images.path(paths[0]).unlink()
    assert client.get(f"{LOG}/{iid}/image.png").status_code == 404
    assert client.get(f"{LOG}/{iid}/overlay.png").status_code == 404
    assert client.get(f"{LOG}/{iid}/mask.png").status_code == 200


def test_review_needs_the_key(client: TestClient, services) -> None:
    ng_id, ok_id = _seed(services, 2)
    url = f"{LOG}/{ng_id}/review"
    body = {"reviewer": "anna", "action": "confirm"}
    for headers in ({}, {"X-API-Key": "wrong"}, {"X-API-Key": ""}):
        resp = client.post(url, json=body, headers=headers)
        assert resp.status_code == 401 and resp.json()["error"] == "unauthorized"
    assert not services.repository.get_record(ng_id).reviewed
    key = {"X-API-Key": API_KEY}
    bad = client.post(url, content=b"{not json", headers={**key, "Content-Type":
                                                          "application/json"})
    assert bad.status_code == 422 and bad.json()["error"] == "validation_error"
    for invalid in ({"reviewer": "anna", "action": "approve"}, {"action": "confirm"},
                    {"reviewer": "anna", "action": "correct"},
                    {"reviewer": "anna", "action": "confirm", "extra": 1},
                    {"reviewer": "anna", "action": "false_reject", "verdict": "NG"}):
        assert client.post(url, json=invalid, headers=key).status_code == 422, invalid
    assert client.post(f"{LOG}/999999/review", json=body, headers=key).status_code == 404
    assert client.post(f"{LOG}/{ok_id}/review", json={"reviewer": "anna",
                       "action": "false_reject"}, headers=key).status_code == 422
    assert client.post(url, json={**body, "verdict": "OK"}, headers=key).status_code == 422
    assert not services.repository.get_record(ng_id).reviewed

    resp = client.post(url, json={**body, "comment": "real scratch"}, headers=key)
    assert resp.status_code == 201, resp.text
    review = resp.json()["review"]
    assert (review["action"], review["verdict"], review["classes"]) == ("confirm", "NG", ["pit"])
    resp = client.post(url, json={"reviewer": "ben", "action": "false_reject"}, headers=key)
    assert resp.status_code == 201
    got = client.get(f"{LOG}/{ng_id}").json()
    assert got["reviewed"] is True and got["verdict"] == "NG"  # machine verdict is kept
    assert got["review"]["action"] == "false_reject" and got["review"]["verdict"] == "OK"
    assert [r["reviewer"] for r in got["reviews"]] == ["anna", "ben"]
    resp = client.post(f"{LOG}/{ok_id}/review", headers=key,
                       json={"reviewer": "cy", "action": "correct", "verdict": "NG",
                             "classes": ["scratch"]})
    assert resp.status_code == 201
    reviewed, _ = _walk(client, reviewed="true")
    assert sorted(reviewed) == sorted([ng_id, ok_id])
