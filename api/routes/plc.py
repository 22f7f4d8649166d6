"""What the line PLC polls: the verdict of a line, and every line's current answer.

Served from Redis only (one pipelined round trip, never the database). The answer is
:func:`core.plc.plc_answer`: ``UNKNOWN`` (``code`` 2) with a ``reason`` -
``camera_disconnected``, ``no_verdict_yet`` or ``stale`` (``|age_ms|`` above the record's
``stale_after_ms``) - or the verdict itself; the original verdict is kept in
``last_verdict``. A line that never reported is 404; Redis down is 503 - both bodies also say
``verdict: UNKNOWN, code: 2``.
"""

from __future__ import annotations

from typing import Any

import redis
from fastapi import APIRouter
from fastapi.responses import JSONResponse

from api.deps import ServicesDep
from api.errors import ApiError
from api.services import API
from core.bus import known_lines

router = APIRouter(prefix=API, tags=["PLC"])

#: Fields of each line in ``GET /api/v1/lines``.
LINE_FIELDS = ("line_id", "verdict", "code", "reason", "age_ms", "camera_connected",
               "inspection_id", "frame_id", "captured_at")


@router.get("/lines/{line_id}/verdict")
def line_verdict(line_id: str, svc: ServicesDep) -> JSONResponse:
    """Latest verdict of a line from Redis; ``UNKNOWN`` (code 2) when stale or the camera
    is disconnected (``reason`` says which)."""
    return JSONResponse(svc.line_verdict(line_id), headers={"Cache-Control": "no-store"})


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
