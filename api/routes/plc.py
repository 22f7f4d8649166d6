"""What the line PLC polls: a line's verdict, its result sequence, every line's answer.

Served from Redis only (one round trip of :func:`core.results.aread_line` on the event
loop, never the database). The answer is
:func:`core.plc.plc_answer`: ``UNKNOWN`` (``code`` 2) with a ``reason`` -
``camera_disconnected``, ``no_verdict_yet`` or ``stale`` (``|age_ms|`` above the record's
``stale_after_ms``) - or the verdict itself; the original verdict is kept in
``last_verdict``. A line that never reported is 404; Redis down is 503 - both bodies also say
``verdict: UNKNOWN, code: 2``.

* ``GET /lines/{line}/verdict`` - compact: verdict, code, reason, ``result_id`` (of this
  verdict), ``last_result_id`` (of the line), frame and inspection ids, age, defects per
  class; the full defect list is ``links.inspection`` away (or ``?full=true``). With
  ``?since=<result id>`` it adds ``worst_since``/``ng_since``/``pending``: the worst verdict
  of every result after that id - the stateless NG latch (docs/PLC.md).
* ``GET /lines/{line}/results?after=<result id>`` - every result after the cursor, a bounded
  page (``limit`` ≤ 1000) oldest first, with ``next_after``, ``has_more``, the ``worst``
  verdict and the counts of *every* result after the cursor (not only the page).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

import redis
from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from api.deps import ServicesDep
from api.errors import ApiError
from api.services import API, Services
from core.bus import LineSnapshot, defect_counts, known_lines
from core.plc import plc_answer, worst_code
from core.result import Verdict
from core.results import MAX_PAGE, ResultPage, aread_line

router = APIRouter(prefix=API, tags=["PLC"])

#: Fields of each line in ``GET /api/v1/lines``.
LINE_FIELDS = ("line_id", "verdict", "code", "reason", "age_ms", "camera_connected",
               "inspection_id", "frame_id", "captured_at")
#: Fields of the compact verdict taken from the answer as they are.
COMPACT_FIELDS = ("line_id", "verdict", "code", "reason", "result_id", "frame_id",
                  "part_id", "unknown_reason", "inspection_id", "captured_at", "age_ms",
                  "stale_after_ms", "valid_until", "camera_connected", "last_verdict", "recipe")
NO_STORE = {"Cache-Control": "no-store"}


async def _read(svc: Services, line_id: str, after: int, limit: int
                ) -> tuple[LineSnapshot, ResultPage]:
    """The line's snapshot and result page, or the 503/404 of the verdict endpoint (read on
    the event loop: no thread hand-off per poll)."""
    try:
        snap, page = await aread_line(svc.aredis(), line_id, after, limit)
    except (redis.RedisError, OSError) as exc:
        raise ApiError(503, "redis_unavailable", f"verdict store unreachable: {exc}",
                       line_id=line_id, verdict="UNKNOWN", code=2) from exc
    if snap.verdict is None and snap.camera is None and not snap.known:
        raise ApiError(404, "not_found", f"line {line_id!r} never reported",
                       line_id=line_id, verdict="UNKNOWN", code=2)
    return snap, page


def _link(inspection_id: Any) -> str | None:
    return f"{API}/inspections/{inspection_id}" if inspection_id is not None else None


def _since(page: ResultPage, answer_code: int) -> dict[str, Any]:
    """Worst verdict and counts of every result after the page's cursor."""
    code = worst_code(page.ng, page.unknown, page.lost, answer_code)
    ok = max(0, page.pending - page.ng - page.unknown - page.lost)
    return {
        "worst": {"verdict": Verdict(code).name, "code": code},
        "counts": {"OK": ok, "NG": page.ng, "UNKNOWN": page.unknown, "lost": page.lost},
        "pending": page.pending,
    }


@router.get("/lines/{line_id}/verdict")
async def line_verdict(
    line_id: str,
    svc: ServicesDep,
    since: Annotated[int | None, Query(ge=0, description="a result id: adds worst_since, "
                                       "ng_since and pending for the results after it")] = None,
    full: Annotated[bool, Query(description="the whole verdict record (defect list)")] = False,
) -> JSONResponse:
    """The line's verdict now, compact; ``UNKNOWN`` (code 2) when stale or the camera is
    disconnected (``reason`` says which)."""
    try:
        snap, page = await _read(svc, line_id, since or 0, 0)
        answer = plc_answer(line_id, snap, datetime.now(UTC))
    except ValueError:  # a corrupt record in Redis: fail safe
        answer = await run_in_threadpool(svc.line_verdict, line_id)
        return JSONResponse(answer, headers=NO_STORE)
    record = snap.verdict if isinstance(snap.verdict, dict) else None
    body = dict(answer) if full else {k: answer.get(k) for k in COMPACT_FIELDS}
    body["last_result_id"] = page.last_result_id
    body["counts"] = defect_counts(record)
    body["ng_total"] = page.totals.get("NG", 0)
    body["last_ng_result_id"] = page.last_ng_result_id
    body["links"] = {"inspection": _link(answer.get("inspection_id")),
                     "results": f"{API}/lines/{line_id}/results?after={page.last_result_id}"}
    if since is not None:
        s = _since(page, int(answer["code"]))
        body["since"] = since
        body["worst_since"] = s["worst"]["verdict"]
        body["worst_since_code"] = s["worst"]["code"]
        body["ng_since"] = page.ng
        body["pending"] = page.pending
        body["lost"] = page.lost
    return JSONResponse(body, headers=NO_STORE)


@router.get("/lines/{line_id}/results")
async def line_results(
    line_id: str,
    svc: ServicesDep,
    after: Annotated[int, Query(ge=0, description="result id already handled (0: start)")] = 0,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE, description="page size")] = 100,
) -> JSONResponse:
    """Every result of the line after result id ``after``, oldest first (a bounded page),
    with the worst verdict and the counts of every result after ``after``."""
    try:
        snap, page = await _read(svc, line_id, after, limit)
        answer = plc_answer(line_id, snap, datetime.now(UTC))
    except ValueError:  # a corrupt record in Redis: fail safe, nothing to page through
        raise ApiError(503, "invalid_record", "unreadable verdict record in Redis",
                       line_id=line_id, verdict="UNKNOWN", code=2) from None
    results = [r | {"links": {"inspection": _link(r.get("inspection_id"))}}
               for r in page.results]
    body = {
        "line_id": line_id,
        "after": after,
        "next_after": page.next_after,
        "last_result_id": page.last_result_id,
        "oldest_result_id": page.oldest_result_id,
        "has_more": page.has_more,
        "cursor_reset": page.cursor_reset,
        **_since(page, int(answer["code"])),
        "line": {k: answer.get(k) for k in ("verdict", "code", "reason", "age_ms",
                                            "camera_connected")},
        "results": results,
    }
    return JSONResponse(body, headers=NO_STORE)


@router.get("/lines")
def lines(svc: ServicesDep) -> dict[str, Any]:
    """Lines that ever reported, each with its current PLC answer."""
    try:
        ids = known_lines(svc.redis)
    except redis.RedisError as exc:
        raise ApiError(503, "redis_unavailable", str(exc)) from exc
    items = []
    for line in ids:
        try:
            answer = svc.line_verdict(line)
        except ApiError:
            continue
        items.append({k: answer.get(k) for k in LINE_FIELDS})
    return {"lines": items}
