"""Endpoints of the QA web UI and the page itself.

* ``GET /`` serves ``static/index.html``; ``/ui/static/*`` the script and style sheet
  (plain HTML/JS/CSS, no build step).
* ``GET /api/v1/stats/lines`` - line status: the PLC answer (Redis) plus the camera's frame
  rate, the log's inspection rate over the last minute and the last NG (database).
* ``GET /api/v1/stats/facets`` - line ids and defect classes for the filter choices.
* ``GET /api/v1/stats/defects`` - defects per class and time bucket; ``GET
  /api/v1/stats/ng-rate`` - verdict counts and NG rate per line.
* ``GET /api/v1/inspections.csv`` - the filtered defect log as CSV, streamed page by page
  (keyset pagination, never the whole log in memory).
* ``GET /api/v1/inspections/{id}/neighbours`` - next older / newer inspection under the same
  filters (keyboard navigation to the next/previous NG).
"""

from __future__ import annotations

import csv
import io
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import redis
from fastapi import FastAPI, Query
from fastapi.responses import FileResponse, StreamingResponse
from fastapi.staticfiles import StaticFiles

from core.bus import camera_status, known_lines
from storage.aggregates import MAX_BUCKETS, LogAggregates, LogFilter, default_window
from storage.repository import InspectionRecord

if TYPE_CHECKING:
    from api.app import Services

STATIC_DIR = Path(__file__).resolve().parent / "static"
API = "/api/v1"
#: Window of the "inspections per second" figure of the line status.
RATE_WINDOW_S = 60
CSV_PAGE = 500
CSV_COLUMNS = [
    "inspection_id", "line_id", "frame_id", "captured_at", "verdict", "code", "defects",
    "classes", "max_score", "latency_ms", "recipe", "models", "reviewed", "review_action",
    "review_verdict", "review_classes", "reviewer", "reviewed_at",
]
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _api_error(status: int, detail: Any) -> Exception:
    from api.app import ApiError  # api.app imports this module inside create_app

    return ApiError(status, "validation_error" if status == 422 else "not_found", detail)


def _utc(v: datetime | None) -> datetime | None:
    if v is None:
        return None
    return v.replace(tzinfo=UTC) if v.tzinfo is None else v.astimezone(UTC)


def log_filter(
    line_id: str | None, verdict: str | None, defect_class: str | None,
    since: datetime | None, until: datetime | None, reviewed: bool | None,
) -> LogFilter:
    """The validated filter (422 when ``since`` is not before ``until``)."""
    since_u, until_u = _utc(since), _utc(until)
    if since_u is not None and until_u is not None and since_u >= until_u:
        raise _api_error(422, "since must be before until")
    return LogFilter(line_id=line_id, verdict=verdict, defect_class=defect_class,
                     since=since_u, until=until_u, reviewed=reviewed)


def _cell(value: Any) -> Any:
    """A CSV cell that a spreadsheet will not run as a formula."""
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return value


def csv_row(record: InspectionRecord) -> list[Any]:
    """One CSV row of :data:`CSV_COLUMNS` for a logged inspection."""
    res = record.result
    js = record.as_json()
    review = record.reviews[-1] if record.reviews else None
    row = [
        record.id, res.line_id, res.frame_id, js["captured_at"], res.verdict, res.code,
        len(res.defects), ";".join(sorted({d.cls for d in res.defects})),
        round(max((d.score for d in res.defects), default=0.0), 4) if res.defects else "",
        round(res.latency_ms, 3), res.recipe,
        ";".join(f"{k}={v}" for k, v in sorted(res.models.items())),
        "true" if record.reviewed else "false",
        review.action if review else "", (review.verdict or "") if review else "",
        ";".join(review.classes or []) if review else "",
        review.reviewer if review else "", review.as_json()["created_at"] if review else "",
    ]
    return [_cell(v) for v in row]


def register_ui(app: FastAPI, svc: Services) -> None:
    """Add the QA UI page, its static files and its endpoints to ``app``."""
    stats = LogAggregates(svc.engine)
    app.mount("/ui/static", StaticFiles(directory=STATIC_DIR), name="ui-static")

    @app.get("/", include_in_schema=False, response_class=FileResponse)
    def ui_page() -> FileResponse:
        """The QA web UI."""
        return FileResponse(STATIC_DIR / "index.html", headers={"Cache-Control": "no-cache"})

    @app.get(f"{API}/stats/lines", tags=["QA UI"])
    def line_status() -> dict[str, Any]:
        """Per line: PLC verdict and its age, camera connected, camera frames/s, logged
        inspections/s over the last minute, and the last NG."""
        try:
            ids = known_lines(svc.redis)
        except redis.RedisError as exc:
            from api.app import ApiError

            raise ApiError(503, "redis_unavailable", str(exc)) from exc
        now = datetime.now(UTC)
        items = []
        for line in ids:
            try:
                v = svc.line_verdict(line)
                cam = camera_status(svc.redis, line)
            except Exception:  # noqa: BLE001 - one broken line must not hide the others
                continue
            cam_stats = (cam.info.get("stats") or {}) if cam is not None else {}
            logged = stats.logged_count(line, now - timedelta(seconds=RATE_WINDOW_S))
            items.append({
                "line_id": line, "verdict": v.get("verdict"), "code": v.get("code"),
                "reason": v.get("reason"), "last_verdict": v.get("last_verdict"),
                "age_ms": v.get("age_ms"), "camera_connected": bool(v.get("camera_connected")),
                "inspection_id": v.get("inspection_id"), "captured_at": v.get("captured_at"),
                "camera_fps": cam_stats.get("fps"),
                "inspections_per_s": round(logged / RATE_WINDOW_S, 3),
                "last_ng": stats.last_ng(line),
            })
        return {"lines": items, "now": now.isoformat().replace("+00:00", "Z"),
                "rate_window_s": RATE_WINDOW_S}

    @app.get(f"{API}/stats/facets", tags=["QA UI"])
    def facets() -> dict[str, list[str]]:
        """Line ids and defect classes present in the log."""
        return stats.facets()

    @app.get(f"{API}/stats/defects", tags=["QA UI"])
    def defects_chart(
        since: datetime | None = Query(None, description="inclusive; default until - 24 h"),
        until: datetime | None = Query(None, description="exclusive; default now"),
        bucket_s: int = Query(3600, ge=60, le=7 * 86400),
        line_id: str | None = Query(None, max_length=64),
    ) -> dict[str, Any]:
        """Defects per class per time bucket (at most 1000 buckets)."""
        t0, t1 = default_window(since, until)
        if t0 >= t1:
            raise _api_error(422, "since must be before until")
        if (t1 - t0).total_seconds() / bucket_s > MAX_BUCKETS:
            raise _api_error(422, f"more than {MAX_BUCKETS} buckets: raise bucket_s")
        out = stats.defects_per_class(t0, t1, bucket_s, line_id)
        out["since"], out["until"] = t0.isoformat(), t1.isoformat()
        return out

    @app.get(f"{API}/stats/ng-rate", tags=["QA UI"])
    def ng_rate(
        since: datetime | None = Query(None, description="inclusive; default until - 24 h"),
        until: datetime | None = Query(None, description="exclusive; default now"),
    ) -> dict[str, Any]:
        """Verdict counts and NG rate per line."""
        t0, t1 = default_window(since, until)
        if t0 >= t1:
            raise _api_error(422, "since must be before until")
        return {"since": t0.isoformat(), "until": t1.isoformat(),
                "lines": stats.verdicts_per_line(t0, t1)}

    @app.get(f"{API}/inspections.csv", tags=["defect log"], response_class=StreamingResponse)
    def inspections_csv(
        line_id: str | None = Query(None, max_length=64),
        verdict: Literal["OK", "NG", "UNKNOWN"] | None = None,
        defect_class: str | None = Query(None, max_length=64),
        since: datetime | None = Query(None, description="inclusive; naive = UTC"),
        until: datetime | None = Query(None, description="exclusive; naive = UTC"),
        reviewed: bool | None = None,
    ) -> StreamingResponse:
        """The filtered defect log as CSV (newest first, streamed)."""
        flt = log_filter(line_id, verdict, defect_class, since, until, reviewed)

        def rows() -> Iterator[str]:
            buf = io.StringIO()
            writer = csv.writer(buf)
            writer.writerow(CSV_COLUMNS)
            cursor = None
            while True:
                page, cursor = svc.repository.query(
                    line_id=flt.line_id, verdict=flt.verdict, defect_class=flt.defect_class,
                    since=flt.since, until=flt.until, reviewed=flt.reviewed,
                    limit=CSV_PAGE, cursor=cursor,
                )
                for record in page:
                    writer.writerow(csv_row(record))
                yield buf.getvalue()
                buf.seek(0)
                buf.truncate()
                if cursor is None:
                    return

        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        return StreamingResponse(
            rows(), media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="inspections-{stamp}.csv"'},
        )

    @app.get(f"{API}/inspections/{{inspection_id}}/neighbours", tags=["defect log"])
    def neighbours(
        inspection_id: int,
        line_id: str | None = Query(None, max_length=64),
        verdict: Literal["OK", "NG", "UNKNOWN"] | None = None,
        defect_class: str | None = Query(None, max_length=64),
        since: datetime | None = None,
        until: datetime | None = None,
        reviewed: bool | None = None,
    ) -> dict[str, Any]:
        """Ids of the next ``older`` and ``newer`` inspection matching the filters."""
        flt = log_filter(line_id, verdict, defect_class, since, until, reviewed)
        out = stats.neighbours(inspection_id, flt)
        if out is None:
            raise _api_error(404, f"inspection {inspection_id} not found")
        return {"inspection_id": inspection_id, **out}

