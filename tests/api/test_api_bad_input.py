"""Issue 17.6: the hostile inputs that answered 5xx (or a cut-off 200) now answer a 422 with
the one documented error body, on SQLite and on the real PostgreSQL (where NUL bytes and
64-bit overflows reached the database and came back as 503 ``database_unavailable``)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import jsonschema_rs
import pytest
import redis
from fastapi.testclient import TestClient
from sqlalchemy import text

from api.app import create_app
from core.result import InspectionResult
from core.settings import Settings
from storage.db import migrate
from tests.api.api_helpers import fake_factory

API = "/api/v1"
#: The inputs of the issue (schemathesis, 6,400 cases) and their neighbours.
BAD_INPUTS = [
    f"{API}/stats/defects?until=0001-01-01T00:00:00Z",
    f"{API}/stats/ng-rate?until=0001-01-01T00:00:00Z",
    f"{API}/stats/ng-rate?since=0001-01-01T00:00:00%2B14:00",
    f"{API}/stats/defects?since=9999-12-31T23:59:59-14:00",
    f"{API}/stats/defects?line_id=%00",
    f"{API}/stats/defects?until=0.5",
    f"{API}/inspections?since=0001-01-01T00:00:00%2B14:00",
    f"{API}/inspections?until=1700000000",
    f"{API}/inspections?line_id=%00",
    f"{API}/inspections?defect_class=a%00b",
    f"{API}/inspections.csv?line_id=%00",
    f"{API}/inspections/9223372036854775808",
    f"{API}/inspections/9223372036854775808/image.png",
    f"{API}/inspections/1/neighbours?line_id=%00",
]


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def api(request: pytest.FixtureRequest, make_settings: Callable[..., Settings],
        redis_client: redis.Redis) -> Iterator[TestClient]:
    """The app on a temporary SQLite log, or on a fresh schema of the real PostgreSQL."""
    overrides = {}
    if request.param == "postgresql":
        url = request.getfixturevalue("pg_schema_url")
        migrate(url)
        overrides["database_url"] = url
    app = create_app(make_settings(**overrides), inspector_factory=fake_factory,
                     retention_interval_s=None)
    with TestClient(app) as client:
        yield client


def _error_schema(client: TestClient) -> dict:
    """The documented error body, resolvable on its own."""
    schemas = client.get("/openapi.json").json()["components"]["schemas"]
    return {**schemas["ErrorBody"], "$defs": schemas}


@pytest.mark.parametrize("url", BAD_INPUTS)
def test_bad_input_is_a_documented_422(api: TestClient, url: str,
                                       caplog: pytest.LogCaptureFixture) -> None:
    resp = api.get(url)
    assert resp.status_code == 422, resp.text
    body = resp.json()
    assert body["error"] == "validation_error" and body["detail"]
    jsonschema_rs.validate(_inline_refs(_error_schema(api)), body)
    assert not [r for r in caplog.records if r.levelname == "ERROR"], "a client error logged"


def _inline_refs(schema: dict) -> dict:
    """``ErrorBody`` with its ``#/components/schemas/...`` references inlined."""
    defs = schema["$defs"]

    def walk(node: object) -> object:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/components/schemas/"):
                return walk(defs[ref.rsplit("/", 1)[1]])
            return {k: walk(v) for k, v in node.items() if k != "$defs"}
        if isinstance(node, list):
            return [walk(v) for v in node]
        return node

    return walk(schema)  # type: ignore[return-value]


def test_every_error_status_documents_the_one_error_body(api: TestClient) -> None:
    spec = api.get("/openapi.json").json()
    assert "HTTPValidationError" not in spec["components"]["schemas"]
    for path, ops in spec["paths"].items():
        for method, op in ops.items():
            for status in ("422", "default"):
                if status in op["responses"]:
                    ref = op["responses"][status]["content"]["application/json"]["schema"]
                    assert ref == {"$ref": "#/components/schemas/ErrorBody"}, (method, path)
            assert "default" in op["responses"], (method, path)


def test_small_bucket_with_the_default_window(api: TestClient) -> None:
    """``bucket_s=60`` without a window was always 422 (24 h = 1440 buckets): the default
    window shrinks to what fits in the 1000 buckets instead."""
    for bucket_s in (60, 61, 86, 3600):
        resp = api.get(f"{API}/stats/defects", params={"bucket_s": bucket_s})
        assert resp.status_code == 200, (bucket_s, resp.text)
        body = resp.json()
        assert 0 < len(body["buckets"]) <= 1000
        span = datetime.fromisoformat(body["until"]) - datetime.fromisoformat(body["since"])
        assert span == min(timedelta(hours=24), timedelta(seconds=bucket_s * 999))


def test_window_before_1970_is_clamped_not_an_error(api: TestClient) -> None:
    resp = api.get(f"{API}/stats/ng-rate", params={"until": "1970-01-01T06:00:00Z"})
    assert resp.status_code == 200, resp.text
    assert resp.json()["since"].startswith("1970-01-01T00:00:00")


def test_csv_refused_by_the_database_is_an_error_status_not_a_cut_off_200(
        api: TestClient) -> None:
    """The CSV stream reads its first page before answering: a database that fails the
    query gives a JSON 503, never a 200 whose body breaks off."""
    svc = api.app.state.services
    svc.repository.save(InspectionResult(line_id="l", frame_id=1,
                                         captured_at=datetime.now(UTC), verdict="OK"))
    assert api.get(f"{API}/inspections.csv").status_code == 200
    with svc.repository.engine.begin() as conn:
        conn.execute(text("ALTER TABLE inspections RENAME TO inspections_gone"))
    try:
        resp = api.get(f"{API}/inspections.csv")
        assert resp.status_code == 503, resp.text[:500]
        assert resp.json()["error"] == "database_unavailable"
    finally:
        with svc.repository.engine.begin() as conn:
            conn.execute(text("ALTER TABLE inspections_gone RENAME TO inspections"))
