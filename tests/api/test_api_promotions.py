"""Issue 21.3 over HTTP: promote and roll back a line's recipe with an admin key, read its
recipe and history, reset its drift reference; refusals (role, unknown recipe, models that do
not load, a report for another recipe, other line settings, nothing to roll back) answer 4xx
and change nothing; every POST is in the audit log. Real SQLite log, real Redis, real ONNX
models (the model check builds the real Inspector)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import redis
from fastapi.testclient import TestClient

from core.promotion import file_sha256
from core.result import InspectionResult
from core.settings import Settings
from inference.drift import reference_key, reset_key
from tests.api.api_helpers import API_KEY, STALE_AFTER_MS
from tests.onnx_factory import make_segmenter

ADMIN = {"X-API-Key": API_KEY}
CAND = """name: strip-cand
stale_after_ms: {stale}
models:
  - name: seg
    path: {model}
    tile: 64
"""


def _report(recipe: str = "strip-cand", version: str = "2.0.0") -> dict[str, Any]:
    return {"candidate": {"recipe": recipe, "models": {"seg": version}}, "replayed": 20,
            "skipped": [], "reviewed": 5, "flipped": [{"frame_id": 3}, {"frame_id": 9}],
            "agreement_with_live": 0.9, "candidate_agreement_with_qa": 1.0,
            "live_agreement_with_qa": 0.8, "confusion_vs_live": {"OK": {"OK": 18, "NG": 2}},
            "latency_ms": {"p95": 12.5}, "query": {"line_id": None, "reviewed": True}}


@pytest.fixture()
def recipes(settings: Settings, tmp_path: Path) -> Path:
    model = make_segmenter(tmp_path / "cand.onnx", ("background", "dark"), (180.0, 100.0),
                           input_size=(32, 32), version="2.0.0")
    d = settings.recipes_dir
    (d / "cand.yaml").write_text(CAND.format(stale=STALE_AFTER_MS, model=model))
    (d / "broken.yaml").write_text(CAND.format(stale=STALE_AFTER_MS, model=tmp_path / "no.onnx")
                                   .replace("strip-cand", "strip-broken"))
    (d / "slower.yaml").write_text(CAND.format(stale=STALE_AFTER_MS * 2, model=model)
                                   .replace("strip-cand", "strip-slower"))
    (d / "notonnx.yaml").write_text(CAND.format(stale=STALE_AFTER_MS, model=tmp_path / "x.onnx")
                                    .replace("strip-cand", "strip-notonnx"))
    (tmp_path / "x.onnx").write_bytes(b"not a model")
    return d


def _ran(services: Any, line: str) -> None:
    """Log one inspection of ``line``: a line that ran (unknown lines are refused)."""
    services.repository.save(InspectionResult(line_id=line, frame_id=1,
                                              captured_at=datetime.now(UTC), verdict="OK"))


def _key(client: TestClient, role: str) -> dict[str, str]:
    resp = client.post("/api/v1/keys", json={"name": f"{role}-anna", "role": role},
                       headers=ADMIN)
    assert resp.status_code == 201, resp.text
    return {"X-API-Key": resp.json()["key"]}


def _promote(client: TestClient, line: str, headers: dict[str, str], recipe: str = "cand",
             report: dict[str, Any] | None = None) -> Any:
    body = {"recipe": recipe, "report": report or _report(),
            "report_name": "replays/2026-12-06/report.json", "note": "fewer false rejects"}
    return client.post(f"/api/v1/lines/{line}/recipe/promote", json=body, headers=headers)


def _unchanged(client: TestClient, line: str) -> None:
    state = client.get(f"/api/v1/lines/{line}/recipe").json()
    assert state["promoted"] is False and state["current"]["name"] == "test-recipe"
    assert client.get(f"/api/v1/lines/{line}/recipe/history").json()["items"] == []


def test_promote_and_rollback_over_http(client: TestClient, services, recipes: Path,
                                        line_id: str, tmp_path: Path) -> None:
    assert _promote(client, line_id, ADMIN).json()["error"] == "not_found"  # never ran
    _ran(services, line_id)
    operator = _key(client, "operator")
    assert _promote(client, line_id, operator).status_code == 403  # admins switch recipes
    assert _promote(client, line_id, {}).status_code == 401
    refusals = [
        (_promote(client, line_id, ADMIN, recipe="nosuch"), 404, "not_found"),
        (_promote(client, line_id, ADMIN, recipe="broken"), 422, "models_unavailable"),
        (_promote(client, line_id, ADMIN, recipe="notonnx"), 422, "models_unavailable"),
        (_promote(client, line_id, ADMIN, recipe="slower"), 422, "line_settings_differ"),
        (_promote(client, line_id, ADMIN, report=_report("strip-other")), 422,
         "report_mismatch"),
        (_promote(client, line_id, ADMIN, report=_report(version="1.9.0")), 422,
         "report_mismatch"),
        (_promote(client, line_id, ADMIN, recipe="../cand"), 422, "validation_error"),
        (client.post(f"/api/v1/lines/{line_id}/recipe/rollback", json={}, headers=ADMIN), 409,
         "no_previous_recipe"),
    ]
    for resp, status, error in refusals:
        assert (resp.status_code, resp.json()["error"]) == (status, error), resp.text
    _unchanged(client, line_id)

    resp = _promote(client, line_id, ADMIN)
    assert resp.status_code == 200, resp.text
    rec = resp.json()
    assert rec["action"] == "promote" and rec["actor"] == "bootstrap-admin"
    assert rec["role"] == "admin" and rec["note"] == "fewer false rejects"
    assert rec["from"]["recipe"] == "test-recipe" and rec["to"]["recipe"] == "strip-cand"
    assert rec["to"]["models"] == [{"name": "seg", "version": "2.0.0",
                                    "path": str(tmp_path / "cand.onnx"),
                                    "sha256": file_sha256(tmp_path / "cand.onnx")}]
    assert rec["report"]["path"] == "replays/2026-12-06/report.json"
    summary = rec["report"]["summary"]
    assert (summary["replayed"], summary["flipped"], summary["agreement_with_live"]) == (
        20, 2, 0.9)
    state = client.get(f"/api/v1/lines/{line_id}/recipe").json()
    assert state["promoted"] and state["version"] == 1
    assert state["current"]["name"] == "strip-cand" and state["previous"]["name"] == "test-recipe"
    assert _promote(client, line_id, ADMIN).json()["error"] == "already_live"

    resp = client.post(f"/api/v1/lines/{line_id}/recipe/rollback", json={"note": "QA says no"},
                       headers=ADMIN)
    assert resp.status_code == 200, resp.text
    state = client.get(f"/api/v1/lines/{line_id}/recipe").json()
    assert state["version"] == 2 and state["current"]["name"] == "test-recipe"
    assert state["previous"] is None
    history = client.get(f"/api/v1/lines/{line_id}/recipe/history").json()["items"]
    assert [(h["action"], h["to"]["recipe"]) for h in history] == [
        ("rollback", "test-recipe"), ("promote", "strip-cand")]

    audit = [(a["action"], a["actor"], a["result"])
             for a in services.access.audit_records(30)
             if "/recipe/" in a["action"]]
    promote, rollback = (f"POST /api/v1/lines/{line_id}/recipe/{a}"
                         for a in ("promote", "rollback"))
    assert audit[:3] == [(rollback, "bootstrap-admin", "200"),
                         (promote, "bootstrap-admin", "409"),  # already live
                         (promote, "bootstrap-admin", "200")]
    assert (promote, "operator-anna", "403") in audit
    assert (rollback, "bootstrap-admin", "409") in audit


@pytest.mark.redis
def test_drift_reset_over_http(client: TestClient, services, line_id: str,
                               redis_client: redis.Redis) -> None:
    redis_client.set(reference_key(line_id), '{"n": 1, "signature": [1.0]}')
    try:
        url = f"/api/v1/lines/{line_id}/drift/reset"
        assert client.post(url, headers=ADMIN).status_code == 404  # no such line (yet)
        _ran(services, line_id)
        assert client.post(url, headers=_key(client, "operator")).status_code == 403
        assert redis_client.exists(reference_key(line_id))  # refused: nothing changed
        assert redis_client.get(reset_key(line_id)) is None
        resp = client.post(url, headers=ADMIN)
        assert resp.status_code == 200 and resp.json()["drift_reference"] == "reset"
        assert not redis_client.exists(reference_key(line_id))
        assert redis_client.get(reset_key(line_id))
        audit = [(a["action"], a["result"]) for a in services.access.audit_records(5)
                 if a["action"] == f"POST {url}"]
        assert audit[:3] == [(f"POST {url}", "200"), (f"POST {url}", "403"),
                             (f"POST {url}", "404")]
    finally:
        redis_client.delete(reference_key(line_id), reset_key(line_id))
