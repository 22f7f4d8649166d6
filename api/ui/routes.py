"""The QA web UI: the page, its static files and the statistics it shows.

* ``GET /`` serves ``static/index.html``; ``/ui/static/*`` the script and style sheet
  (plain HTML/JS/CSS, no build step; mounted by :func:`api.app.create_app`).
* ``GET /api/v1/stats/lines`` - line status: the PLC answer (Redis), the lamp, the camera's
  frame rate, the inference workers' own inspected/s, skipped frames and backlog (Redis,
  :mod:`core.load`) and the last NG (database).
* ``GET /api/v1/stats/facets`` - line ids and defect classes for the filter choices.
* ``GET /api/v1/stats/defects`` - defects per class and time bucket; ``GET
  /api/v1/stats/ng-rate`` - verdict counts and NG rate per line.

The UI also uses the defect log's CSV export and neighbours (:mod:`api.routes.inspections`).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any

import redis
from fastapi import APIRouter, Query
from fastapi.responses import FileResponse

from api.deps import ServicesDep
from api.errors import ApiError
from api.schemas import FilterText, LogTime
from api.services import API
from core.bus import camera_status, known_lines
from core.load import line_load
from core.timeutil import as_utc
from storage.aggregates import MAX_BUCKETS, bucket_count, default_window

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
STATIC_DIR = Path(__file__).resolve().parent / "static"

router = APIRouter()
stats_router = APIRouter(prefix=f"{API}/stats", tags=["QA UI"])

#: Window bounds (naive = UTC), refused with a 422 outside 1970..9999 (issue 17.6).
Since = Annotated[LogTime, Query(description="inclusive; default until - 24 h")]
Until = Annotated[LogTime, Query(description="exclusive; default now")]
#: The default window of the charts.
DEFAULT_SPAN = timedelta(hours=24)


@router.get("/", include_in_schema=False, response_class=FileResponse)
def ui_page() -> FileResponse:
    """The QA web UI."""
    return FileResponse(STATIC_DIR / "index.html", headers={"Cache-Control": "no-cache"})


def lamp(answer: dict[str, Any], overloaded: bool) -> str:
    """The UI lamp of a line: ``OK``/``NG`` (a live verdict), ``camera_down``,
    ``overloaded`` (frames skipped: the PLC's reason, or the workers' load report),
    ``stale`` (no fresh verdict), ``no_verdict`` or ``unknown``."""
    reason = answer.get("reason")
    if reason == "camera_disconnected":
        return "camera_down"
    if reason == "overloaded" or (overloaded and reason is not None):
        return "overloaded"
    if reason is None:
        return str(answer.get("verdict"))
    return {"stale": "stale", "no_verdict_yet": "no_verdict"}.get(str(reason), "unknown")


def chart_window(
    since: datetime | None, until: datetime | None, span: timedelta
) -> tuple[datetime, datetime]:
    """The window in UTC (:func:`storage.aggregates.default_window`), the default start
    kept at or after 1970 (the earliest time the log holds)."""
    if since is None and until is not None:
        since = max(as_utc(until) - span, EPOCH)
    return default_window(since, until, span)


@stats_router.get("/lines")
def line_status(svc: ServicesDep) -> dict[str, Any]:
    """Per line: the PLC answer and its age, the lamp (:func:`lamp`), camera connected and
    frames/s, the inference workers' own figures (inspected/s, frames skipped, backlog,
    overloaded; :mod:`core.load`) and the last NG."""
    try:
        ids = known_lines(svc.redis)
    except redis.RedisError as exc:
        raise ApiError(503, "redis_unavailable", str(exc)) from exc
    stats = svc.aggregates
    now = datetime.now(UTC)
    items = []
    for line in ids:
        try:
            v = svc.line_verdict(line)
            cam = camera_status(svc.redis, line)
            work = line_load(svc.redis, line)
        except Exception:  # noqa: BLE001 - one broken line must not hide the others
            continue
        cam_stats = (cam.info.get("stats") or {}) if cam is not None else {}
        items.append({
            "line_id": line, "verdict": v.get("verdict"), "code": v.get("code"),
            "reason": v.get("reason"), "last_verdict": v.get("last_verdict"),
            "lamp": lamp(v, work is not None and work.overloaded),
            "age_ms": v.get("age_ms"), "camera_connected": bool(v.get("camera_connected")),
            "inspection_id": v.get("inspection_id"), "captured_at": v.get("captured_at"),
            "camera_fps": cam_stats.get("fps"),
            # the workers' own counter (None: no worker reports for this line)
            "inspections_per_s": work.inspected_per_s if work else None,
            "skipped": work.skipped if work else None,
            "backlog_ms": work.backlog_ms if work else None,
            "max_backlog_ms": work.max_backlog_ms if work else None,
            "overloaded": bool(work and work.overloaded),
            "last_ng": stats.last_ng(line),
        })
    return {"lines": items, "now": now.isoformat().replace("+00:00", "Z")}


@stats_router.get("/facets")
def facets(svc: ServicesDep) -> dict[str, list[str]]:
    """Line ids and defect classes present in the log."""
    return svc.aggregates.facets()


@stats_router.get("/defects")
def defects_chart(
    svc: ServicesDep,
    since: Since = None,
    until: Until = None,
    bucket_s: Annotated[int, Query(ge=60, le=7 * 86400)] = 3600,
    line_id: Annotated[FilterText, Query()] = None,
) -> dict[str, Any]:
    """Defects per class per time bucket (at most 1000 buckets). Without ``since`` the
    window is the last 24 h before ``until``, or fewer when ``bucket_s`` is so small that
    24 h would need more than 1000 buckets."""
    # one bucket less than the cap: an unaligned window touches one bucket more
    span = min(DEFAULT_SPAN, timedelta(seconds=bucket_s * (MAX_BUCKETS - 1)))
    t0, t1 = chart_window(since, until, span)
    if t0 >= t1:
        raise ApiError(422, "validation_error", "since must be before until")
    if bucket_count(t0, t1, bucket_s) > MAX_BUCKETS:
        raise ApiError(422, "validation_error", f"more than {MAX_BUCKETS} buckets: raise bucket_s")
    out = svc.aggregates.defects_per_class(t0, t1, bucket_s, line_id)
    out["since"], out["until"] = t0.isoformat(), t1.isoformat()
    return out


@stats_router.get("/ng-rate")
def ng_rate(svc: ServicesDep, since: Since = None, until: Until = None) -> dict[str, Any]:
    """Verdict counts and NG rate per line."""
    t0, t1 = chart_window(since, until, DEFAULT_SPAN)
    if t0 >= t1:
        raise ApiError(422, "validation_error", "since must be before until")
    return {"since": t0.isoformat(), "until": t1.isoformat(),
            "lines": svc.aggregates.verdicts_per_line(t0, t1)}


router.include_router(stats_router)
