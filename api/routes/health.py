"""Liveness, readiness and the Prometheus exposition.

``/readyz``: ``redis`` (PING), ``database`` (``SELECT 1`` and schema at the migration head),
``camera`` (status of ``settings.line_id`` alive), ``models`` (the default recipe's inspector
loaded; it is loaded in the background at start-up), ``inference`` (an inference worker of
the line beats without trouble, :mod:`core.heartbeats`), ``loops`` (this process's
supervised loops, :mod:`core.supervise`), ``image_store`` (free disk space). 200 when all
are ready, else 503; the body names every part. Route PLC traffic on ``/healthz``: a
disconnected camera makes the service not ready, yet the verdict endpoint must keep
answering ``UNKNOWN``.
"""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

from api.deps import ServicesDep
from core.supervise import LOOPS

router = APIRouter(tags=["health"])


#: The probes' 503 is their answer, not an error: documented with their own body.
_LIVENESS_503 = {503: {"description": "Failed: a supervised loop was given up"}}
_READINESS_503 = {503: {"description": "Not ready: the same body, ready false"}}


@router.get("/healthz", response_model=None, responses=_LIVENESS_503)
def healthz() -> dict[str, str] | JSONResponse:
    """Liveness: the process answers and no supervised loop was given up (503 otherwise:
    the process is about to exit so that its supervisor restarts it)."""
    dead = LOOPS.fatal()
    if dead:
        return JSONResponse({"status": "failed", "failed_loops": dead}, status_code=503)
    return {"status": "ok"}


@router.get("/readyz", responses=_READINESS_503)
def readyz(svc: ServicesDep) -> JSONResponse:
    """Readiness of Redis, the database, the line's camera and the models."""
    parts = svc.readiness()
    ready = all(p["ready"] for p in parts.values())
    body = {"ready": ready, "status": "ready" if ready else "not_ready", "checks": parts}
    return JSONResponse(jsonable_encoder(body), status_code=200 if ready else 503)


@router.get("/metrics", response_class=Response)
def metrics_endpoint(svc: ServicesDep) -> Response:
    """Prometheus exposition (camera and stream-lag gauges refreshed from Redis)."""
    svc.refresh_gauges()
    return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)
