"""Model lifecycle in the QA UI (issue 21): where the shadow candidate disagrees with the live
recipe, and the frames sampled for review.

* ``GET /api/v1/shadow/disagreements`` - disagreeing shadow results, newest first, each with
  its live inspection and the links of both overlays (live: the inspection's overlay;
  candidate: :func:`candidate_overlay`);
* ``GET /api/v1/shadow/summary`` - per line and UTC day: shadow runs, verdict and class
  disagreements (default: the last 30 days);
* ``GET /api/v1/shadow/{shadow_id}/overlay.png`` - the live frame with the candidate's
  defect boxes (the candidate's mask is not kept);
* ``GET /api/v1/review-queue`` - the "to review" queue: unreviewed sampled frames (best reason
  first, then score), the daily cap and per line the frames sampled today and pending. A
  review (``POST /api/v1/inspections/{id}/review``) takes a frame off the queue.

Reads like the rest of the log: open, or a viewer key with ``LINEINSPECT_AUTH_READS``.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.responses import Response

from api.deps import ServicesDep, SettingsDep
from api.errors import ApiError
from api.overlay import encode_png, render_overlay
from api.schemas import FilterText, InspectionId
from api.services import API
from api.ui.routes import Since, Until
from core.result import Defect
from storage.review_queue import ReviewQueue
from storage.shadow import ShadowBeside, ShadowRepository, record_json

router = APIRouter(prefix=API, tags=["model lifecycle"])

#: Default window of the per-day summary.
SUMMARY_SPAN = timedelta(days=30)
Limit = Annotated[int, Query(ge=1, le=500)]
LineQuery = Annotated[FilterText, Query(description="one line (default: all)")]


def _window(since: datetime | None, until: datetime | None) -> tuple[datetime | None, datetime]:
    t1 = until or datetime.now(UTC)
    if since is not None and since >= t1:
        raise ApiError(422, "validation_error", "since must be before until")
    return since, t1


def _disagreement_json(item: ShadowBeside) -> dict[str, Any]:
    out = record_json(item.record)
    iid = item.inspection_id
    out.update({
        "shadow_id": item.shadow_id, "inspection_id": iid,
        "has_image": item.image_path is not None,
        "links": {
            "inspection": f"{API}/inspections/{iid}" if iid is not None else None,
            "live_overlay": f"{API}/inspections/{iid}/overlay.png" if item.image_path else None,
            "candidate_overlay": (f"{API}/shadow/{item.shadow_id}/overlay.png"
                                  if item.image_path else None),
        },
    })
    return out


@router.get("/shadow/disagreements")
def shadow_disagreements(
    svc: ServicesDep, line_id: LineQuery = None, since: Since = None, until: Until = None,
    limit: Limit = 50,
) -> dict[str, Any]:
    """Frames where the shadow candidate disagrees with the live verdict or classes, newest
    first, with the links of the live and the candidate overlay (null while the frame is not
    retained)."""
    t0, t1 = _window(since, until)
    items = ShadowRepository(svc.engine).disagreements(line_id, t0, t1, limit)
    return {"items": [_disagreement_json(i) for i in items], "limit": limit}


@router.get("/shadow/summary")
def shadow_summary(
    svc: ServicesDep, line_id: LineQuery = None, since: Since = None, until: Until = None,
) -> dict[str, Any]:
    """Per line and UTC day (oldest first): shadow runs, ``verdict`` and ``classes``
    disagreements; without ``since`` the last 30 days before ``until``."""
    t0, t1 = _window(since, until)
    t0 = t0 or t1 - SUMMARY_SPAN
    store = ShadowRepository(svc.engine)
    lines = [line_id] if line_id else store.lines()
    out = []
    for line in lines:
        days = [d.as_json() for d in store.daily_summary(line, t0, t1)]
        if days:
            out.append({"line_id": line, "days": days})
    return {"since": t0.isoformat(), "until": t1.isoformat(), "lines": out}


@router.get("/shadow/{shadow_id}/overlay.png", response_class=Response)
def candidate_overlay(shadow_id: InspectionId, svc: ServicesDep) -> Response:
    """The live frame with the candidate's defects drawn (404 when the frame is not
    retained)."""
    item = ShadowRepository(svc.engine).beside(shadow_id)
    if item is None:
        raise ApiError(404, "not_found", f"shadow result {shadow_id} not found")
    image = svc.images.load_image(item.image_path) if item.image_path else None
    if image is None:
        raise ApiError(404, "not_found", f"frame of shadow result {shadow_id} not retained")
    defects = [Defect.model_validate(d) for d in item.record.defects]
    rgb = render_overlay(image, None, defects, [])
    return Response(encode_png(rgb), media_type="image/png",
                    headers={"Cache-Control": "private, max-age=3600"})


@router.get("/review-queue")
def review_queue(
    svc: ServicesDep, settings: SettingsDep, line_id: LineQuery = None, limit: Limit = 100,
) -> dict[str, Any]:
    """The "to review" queue: unreviewed sampled frames (reason ``disagreement``, then
    ``uncertain``, then ``drift``; highest score first), the daily cap per line and, per line,
    frames sampled today (UTC) and pending."""
    queue = ReviewQueue(svc.engine)
    counts = queue.line_counts()
    if line_id:
        counts = [c for c in counts if c["line_id"] == line_id]
    items = queue.pending(line_id, limit)
    out = []
    for item in items:
        body = item.as_json()
        base = f"{API}/inspections/{item.inspection_id}"
        body["links"] = {"inspection": base,
                         "overlay": f"{base}/overlay.png" if item.has_image else None}
        out.append(body)
    return {
        "daily_cap": settings.review_daily_cap,
        "pending": sum(c["pending"] for c in counts),
        "lines": counts,
        "items": out,
        "limit": limit,
    }
