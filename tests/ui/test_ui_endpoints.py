"""The QA UI's JSON/CSV endpoints over real HTTP against the live service: CSV export equals
the filtered log (also across streamed pages), chart aggregates equal the seeded log,
neighbours follow log order, bad input is a 4xx JSON error."""

from __future__ import annotations

import csv
import io
import math
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

import api.csv_export as csv_export
from api.routes import inspections
from core.result import Defect, InspectionResult
from storage.repository import InspectionRecord, ReviewRecord
from tests.ui.conftest import Live

API = "/api/v1"


def _walk(live: Live, **params: Any) -> list[int]:
    ids, cursor = [], None
    while True:
        q = dict(params, limit=11, **({"cursor": cursor} if cursor else {}))
        body = httpx.get(f"{live.url}{API}/inspections", params=q).json()
        ids += [i["inspection_id"] for i in body["items"]]
        cursor = body["next_cursor"]
        if cursor is None:
            return ids


def _csv(live: Live, **params: Any) -> tuple[httpx.Response, list[dict[str, str]]]:
    resp = httpx.get(f"{live.url}{API}/inspections.csv", params=params)
    assert resp.status_code == 200, resp.text
    return resp, list(csv.DictReader(io.StringIO(resp.text)))


def test_csv_export_equals_filtered_log(live: Live, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(inspections, "CSV_PAGE", 7)  # stream many pages
    resp, rows = _csv(live)
    assert resp.headers["content-type"].startswith("text/csv")
    assert resp.headers["content-disposition"].startswith("attachment; filename=")
    assert resp.text.splitlines()[0].split(",") == csv_export.CSV_COLUMNS
    assert [int(r["inspection_id"]) for r in rows] == _walk(live)
    assert len(rows) >= 90
    for params in ({"verdict": "NG"}, {"defect_class": "scratch", "line_id": live.line_a},
                   {"line_id": live.line_b, "verdict": "OK"}):
        _, rows = _csv(live, **params)
        assert [int(r["inspection_id"]) for r in rows] == _walk(live, **params), params
        assert rows, params
    _, rows = _csv(live, defect_class="pit", line_id=live.line_a)
    expected = live.seeded.where(cls="pit", line_id=live.line_a)
    assert sorted(int(r["inspection_id"]) for r in rows) == sorted(expected)
    assert {r["classes"] for r in rows} == {"pit"} and {r["verdict"] for r in rows} == {"NG"}
    assert all(r["models"] == "alexnet_svm=1.2.0;fake=0.0.1" for r in rows)


def test_csv_carries_reviews_and_reviewed_filter(live: Live) -> None:
    iid = sorted(live.seeded.where(verdict="NG", line_id=live.line_a))[0]
    resp = httpx.post(f"{live.url}{API}/inspections/{iid}/review",
                      headers={"X-API-Key": live.settings.api_key},
                      json={"reviewer": "qa-bob", "action": "correct", "classes": ["pit"]})
    assert resp.status_code == 201, resp.text
    _, rows = _csv(live, reviewed="true")
    row = next(r for r in rows if int(r["inspection_id"]) == iid)
    assert (row["reviewed"], row["review_action"], row["review_classes"], row["reviewer"]) == (
        "true", "correct", "pit", "qa-bob")
    assert {r["reviewed"] for r in rows} == {"true"}
    _, rows = _csv(live, reviewed="false")
    assert iid not in {int(r["inspection_id"]) for r in rows}


def test_csv_cells_never_start_a_formula() -> None:
    res = InspectionResult(
        inspection_id=5, line_id="=HYPERLINK(\"x\")", frame_id=1,
        captured_at=datetime(2026, 1, 1, tzinfo=UTC), verdict="NG",
        defects=[Defect(cls="+pit", score=0.5, bbox=(0, 0, 1, 1), area_px=1, model="m")],
        recipe="-r",
    )
    review = ReviewRecord(1, 5, "@bob", "confirm", "NG", ["+pit"], None,
                          datetime(2026, 1, 1, tzinfo=UTC))
    row = csv_export.csv_row(InspectionRecord(result=res, reviewed=True, reviews=[review]))
    cells = dict(zip(csv_export.CSV_COLUMNS, row, strict=True))
    assert cells["line_id"] == "'=HYPERLINK(\"x\")"
    assert cells["classes"] == "'+pit" and cells["recipe"] == "'-r"
    assert cells["reviewer"] == "'@bob" and cells["inspection_id"] == 5


def test_chart_aggregates_equal_the_log(live: Live) -> None:
    now = datetime.now(UTC)
    params = {"since": (now - timedelta(hours=3)).isoformat(), "until": now.isoformat(),
              "bucket_s": 600}
    body = httpx.get(f"{live.url}{API}/stats/defects", params=params).json()
    assert body["classes"] == ["inclusion", "pit", "scratch"]
    first = int((now - timedelta(hours=3)).timestamp()) // 600 * 600
    n = -(-(math.ceil(now.timestamp()) - first) // 600)  # 18 or 19: 3 h in 10 min buckets
    assert len(body["buckets"]) == len(body["series"]["pit"]) == n
    expected = Counter(r["classes"][0] for r in live.seeded.rows if r["classes"])
    assert {c: sum(v) for c, v in body["series"].items()} == dict(expected)
    # every defect sits in the bucket of its capture time
    start = datetime.fromisoformat(body["buckets"][0])
    for row in live.seeded.rows:
        if row["classes"]:
            k = int((row["captured_at"] - start).total_seconds() // 600)
            assert body["series"][row["classes"][0]][k] >= 1
    one_line = httpx.get(f"{live.url}{API}/stats/defects",
                         params={**params, "line_id": live.line_a}).json()
    assert sum(map(sum, one_line["series"].values())) == len(
        live.seeded.where(line_id=live.line_a, verdict="NG"))
    rate = httpx.get(f"{live.url}{API}/stats/ng-rate").json()["lines"]
    by_line = {r["line_id"]: r for r in rate}
    for line in (live.line_a, live.line_b):
        total = len([r for r in live.seeded.rows if r["line_id"] == line])
        ng = len(live.seeded.where(line_id=line, verdict="NG"))
        assert by_line[line]["total"] == total and by_line[line]["ng"] == ng
        assert by_line[line]["ng_rate"] == pytest.approx(ng / total)


def test_neighbours_follow_the_filtered_log(live: Live) -> None:
    ng = sorted(live.seeded.where(verdict="NG"), reverse=True)  # log order, newest first
    for k in (0, 5, len(ng) - 1):
        body = httpx.get(f"{live.url}{API}/inspections/{ng[k]}/neighbours",
                         params={"verdict": "NG"}).json()
        assert body["newer"] == (ng[k - 1] if k > 0 else None)
        assert body["older"] == (ng[k + 1] if k + 1 < len(ng) else None)
    ok_id = live.seeded.where(verdict="OK", line_id=live.line_a)[10]
    body = httpx.get(f"{live.url}{API}/inspections/{ok_id}/neighbours",
                     params={"verdict": "NG", "line_id": live.line_a}).json()
    line_ng = sorted(live.seeded.where(verdict="NG", line_id=live.line_a))
    assert body["older"] == max(i for i in line_ng if i < ok_id)
    assert body["newer"] == min(i for i in line_ng if i > ok_id)


def test_line_status_json(live: Live) -> None:
    lines = {x["line_id"]: x for x in httpx.get(f"{live.url}{API}/stats/lines").json()["lines"]}
    a, b = lines[live.line_a], lines[live.line_b]
    assert a["camera_connected"] is True and a["camera_fps"] == 29.9 and a["verdict"] == "OK"
    assert a["last_ng"]["inspection_id"] == max(live.seeded.where(line_id=live.line_a,
                                                                  verdict="NG"))
    assert b["camera_connected"] is False and b["verdict"] == "UNKNOWN"
    assert b["reason"] == "camera_disconnected" and b["last_verdict"] == "OK"
    facets = httpx.get(f"{live.url}{API}/stats/facets").json()
    assert {live.line_a, live.line_b} <= set(facets["lines"])
    assert facets["classes"] == ["inclusion", "pit", "scratch"]


def test_page_and_static_files_are_served(live: Live) -> None:
    page = httpx.get(f"{live.url}/")
    assert page.status_code == 200 and "/ui/static/app.js" in page.text
    js = httpx.get(f"{live.url}/ui/static/app.js")
    assert js.status_code == 200 and "javascript" in js.headers["content-type"]
    assert httpx.get(f"{live.url}/ui/static/nothing.js").status_code == 404


@pytest.mark.parametrize(("path", "params", "status"), [
    ("/inspections.csv", {"verdict": "MAYBE"}, 422),
    ("/inspections.csv", {"since": "2026-01-02T00:00:00Z", "until": "2026-01-01T00:00:00Z"}, 422),
    ("/inspections.csv", {"reviewed": "perhaps"}, 422),
    ("/stats/defects", {"bucket_s": 10}, 422),
    ("/stats/defects", {"bucket_s": 60, "since": "2025-01-01T00:00:00Z"}, 422),
    ("/stats/defects", {"since": "2026-01-02T00:00:00Z", "until": "2026-01-01T00:00:00Z"}, 422),
    ("/stats/ng-rate", {"since": "tomorrow"}, 422),
    ("/inspections/999999999/neighbours", {}, 404),
    ("/inspections/abc/neighbours", {}, 422),
    ("/inspections/1/neighbours", {"verdict": "maybe"}, 422),
])
def test_bad_input_is_a_json_4xx(live: Live, path: str, params: dict, status: int) -> None:
    resp = httpx.get(f"{live.url}{API}{path}", params=params)
    assert resp.status_code == status, resp.text
    body = resp.json()
    assert body["error"] in ("validation_error", "not_found") and body["detail"]


def test_lamp_tells_the_reasons_apart() -> None:
    """The line-status lamp: a live verdict, camera down, overloaded, stale, no verdict."""
    from api.ui.routes import lamp

    assert lamp({"verdict": "NG", "reason": None}, overloaded=False) == "NG"
    assert lamp({"verdict": "OK", "reason": None}, overloaded=True) == "OK"  # fresh anyway
    assert lamp({"verdict": "UNKNOWN", "reason": "camera_disconnected"}, True) == "camera_down"
    assert lamp({"verdict": "UNKNOWN", "reason": "overloaded"}, False) == "overloaded"
    assert lamp({"verdict": "UNKNOWN", "reason": "stale"}, True) == "overloaded"
    assert lamp({"verdict": "UNKNOWN", "reason": "stale"}, False) == "stale"
    assert lamp({"verdict": "UNKNOWN", "reason": "no_verdict_yet"}, False) == "no_verdict"
    assert lamp({"verdict": "UNKNOWN", "reason": "invalid_record"}, False) == "unknown"
