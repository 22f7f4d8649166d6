"""The HTTP API (SPEC section 4): PLC verdict polling, ad-hoc inspection, defect log, masks,
reviews, health and Prometheus metrics.

* ``GET /api/v1/lines/{line}/verdict`` reads Redis only (one pipelined round trip, never the
  database). Fail-safe: ``UNKNOWN`` (``code`` 2) with a ``reason`` - ``camera_disconnected``
  (status says disconnected, heartbeat older than 3 s, or never reported), ``no_verdict_yet``,
  or ``stale`` (``|age_ms|`` above the recipe's ``stale_after_ms``; a verdict dated in the
  future by more than that is clock skew and also stale). The original verdict is kept in
  ``last_verdict``. A line that never reported is 404; Redis down is 503 - both bodies also
  say ``verdict: UNKNOWN, code: 2``.
* ``POST /api/v1/inspect`` validates the upload completely (size cap while streaming, magic
  bytes, bit depth, decoding, recipe) before anything is written; then inspects it with the
  recipe's :class:`~inference.pipeline.Inspector` (built once per recipe and cached), logs it
  as line ``adhoc`` with a frame id from the Redis counter ``adhoc:frame_id`` and always keeps
  its image and mask (QA asked for it). Ad-hoc inspections are not counted in the line
  metrics (an ``adhoc`` series would trip the no-verdict alert) and not published as a line
  verdict.
* ``/readyz``: ``redis`` (PING), ``database`` (``SELECT 1`` and schema at the migration head),
  ``camera`` (status of ``settings.line_id`` alive), ``models`` (the default recipe's inspector
  loaded; it is loaded in the background at start-up). 200 when all are ready, else 503; the
  body names every part. Route PLC traffic on ``/healthz``: a disconnected camera makes the
  service not ready, yet the verdict endpoint must keep answering ``UNKNOWN``.
* Every error is JSON ``{"error": <code>, "detail": <text or list>}``.
"""

from __future__ import annotations

import json
import logging
import re
import secrets
import threading
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

import redis
from fastapi import FastAPI, Header, Query, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    model_validator,
)
from sqlalchemy.exc import SQLAlchemyError
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect

import core.metrics as metrics
from api.overlay import encode_png, render_overlay
from api.uploads import UploadError, decode_image, read_upload_form
from core.bus import camera_status, known_lines, line_snapshot, stream_lag
from core.plc import plc_answer, unknown
from core.recipe import Recipe, load_recipe
from core.redis_conn import connect
from core.result import InspectionResult
from core.settings import Settings, get_settings
from storage.db import current_revision, get_engine, head_revision, is_sqlite, migrate
from storage.images import ImageStore, apply_retention
from storage.repository import InspectionRecord, InspectionRepository, InvalidCursor

log = logging.getLogger(__name__)

API = "/api/v1"
ADHOC_LINE = "adhoc"
ADHOC_COUNTER_KEY = "adhoc:frame_id"
#: Recipe names accepted from clients: a file stem in ``recipes_dir``, nothing path-like.
RECIPE_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
MAX_REVIEW_BYTES = 64 * 1024

#: ``factory(recipe, settings)`` -> an object with ``inspect(image, line_id=, frame_id=,
#: captured_at=) -> InspectionResult`` (default: :class:`inference.pipeline.Inspector`).
InspectorFactory = Callable[[Recipe, Settings], Any]

# INCR that first moves the counter past ARGV[1] (the log's highest ad-hoc frame id).
_ADVANCE_AND_INCR = """
local c = tonumber(redis.call('GET', KEYS[1]) or '0')
if c < tonumber(ARGV[1]) then redis.call('SET', KEYS[1], ARGV[1]) end
return redis.call('INCR', KEYS[1])
"""

_STATUS_ERRORS = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "validation_error",
    500: "internal_error",
    503: "service_unavailable",
}


class ApiError(Exception):
    """An error answered as ``{"error": error, "detail": detail, **extra}``."""

    def __init__(
        self,
        status: int,
        error: str,
        detail: Any,
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(str(detail))
        self.status = status
        self.error = error
        self.detail = detail
        self.headers = headers
        self.extra = extra


def _error(status: int, error: str, detail: Any, headers: dict[str, str] | None = None,
           **extra: Any) -> JSONResponse:
    body = {"error": error, "detail": detail, **extra}
    return JSONResponse(jsonable_encoder(body), status_code=status, headers=headers)


def _clean_errors(errors: Any) -> list[dict[str, Any]]:
    out = []
    for e in errors:
        item = {k: v for k, v in dict(e).items() if k not in ("url", "input")}
        if "ctx" in item:
            item["ctx"] = {k: str(v) for k, v in item["ctx"].items()}
        out.append(item)
    return out


class ReviewIn(BaseModel):
    """Body of ``POST /api/v1/inspections/{id}/review``.

    * ``confirm``: the machine was right (``verdict``, if given, must equal it);
    * ``correct``: QA gives the right ``verdict`` and/or defect ``classes``;
    * ``false_reject``: an NG frame is actually OK (``verdict`` omitted or ``OK``).
    """

    model_config = ConfigDict(extra="forbid")

    reviewer: str = Field(min_length=1, max_length=128)
    action: Literal["confirm", "correct", "false_reject"]
    verdict: Literal["OK", "NG"] | None = None
    classes: (
        list[Annotated[str, StringConstraints(min_length=1, max_length=64)]] | None
    ) = Field(default=None, max_length=64)
    comment: str | None = Field(default=None, max_length=2000)

    @model_validator(mode="after")
    def _rules(self) -> ReviewIn:
        if self.action == "correct" and self.verdict is None and self.classes is None:
            raise ValueError("action 'correct' needs a verdict and/or classes")
        if self.action == "false_reject" and self.verdict not in (None, "OK"):
            raise ValueError("action 'false_reject' means the frame is OK")
        if self.action == "false_reject" and self.classes:
            raise ValueError("action 'false_reject' means the frame has no defects")
        return self


_UPLOAD_OPENAPI = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file"],
                    "properties": {
                        "file": {
                            "type": "string",
                            "format": "binary",
                            "description": "PNG, JPEG, BMP or TIFF; 8-bit gray or RGB",
                        },
                        "recipe": {
                            "type": "string",
                            "description": "recipe name (default: the configured recipe)",
                        },
                    },
                }
            }
        },
    }
}

_REVIEW_OPENAPI = {
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": ReviewIn.model_json_schema()}},
    }
}


def _default_factory(recipe: Recipe, settings: Settings) -> Any:
    from inference.pipeline import Inspector  # onnxruntime: imported on first use

    return Inspector(recipe, settings)


class InspectorPool:
    """One inspector per recipe, built on first use (thread-safe), plus the background load
    of the default recipe's inspector that ``/readyz`` reports."""

    def __init__(self, settings: Settings, factory: InspectorFactory | None) -> None:
        """Build inspectors with ``factory(recipe, settings)``."""
        self.settings = settings
        self.factory = factory or _default_factory
        self._lock = threading.Lock()
        self._cache: dict[str, tuple[Recipe, Any]] = {}
        self.state: Literal["not_loaded", "loading", "ready", "failed"] = "not_loaded"
        self.error: str | None = None
        self._attempted = 0.0

    def load_recipe(self, name: str | None) -> Recipe:
        """The recipe ``name`` (client-given: a plain name) or the configured default."""
        if name is not None and not RECIPE_NAME.match(name):
            raise ApiError(422, "validation_error", f"invalid recipe name {name!r}")
        try:
            return load_recipe(name or self.settings.recipe, self.settings)
        except FileNotFoundError:
            raise ApiError(
                404, "not_found", f"recipe {name or self.settings.recipe!r} not found"
            ) from None
        except (ValueError, OSError) as exc:  # pydantic/YAML errors: a broken file on the server
            raise ApiError(
                500, "recipe_invalid", f"recipe {name!r} cannot be loaded: {exc}"
            ) from None

    def get(self, name: str | None) -> tuple[Recipe, Any]:
        """``(recipe, inspector)`` for ``name`` (None: the configured recipe)."""
        key = name or self.settings.recipe
        with self._lock:
            hit = self._cache.get(key)
            if hit is not None:
                return hit
            recipe = self.load_recipe(name)
            try:
                inspector = self.factory(recipe, self.settings)
            except Exception as exc:
                log.error("cannot load the models of recipe %s: %r", recipe.name, exc)
                raise ApiError(
                    503, "models_unavailable", f"models of recipe {recipe.name!r}: {exc}"
                ) from exc
            self._cache[key] = (recipe, inspector)
            if name is None or key == self.settings.recipe:
                self.state, self.error = "ready", None
            return recipe, inspector

    def preload(self) -> None:
        """Load the default recipe's inspector (run in a thread at start-up)."""
        self.state = "loading"
        try:
            self.get(None)
        except ApiError as exc:
            self.state, self.error = "failed", str(exc.detail)
        except Exception as exc:  # pragma: no cover - factory raised something unexpected
            self.state, self.error = "failed", repr(exc)
        else:
            self.state, self.error = "ready", None

    def start_preload(self, retry_after_s: float = 30.0) -> None:
        """Start :meth:`preload` in a daemon thread unless it runs, succeeded, or failed less
        than ``retry_after_s`` ago (model files may appear later)."""
        with self._lock:
            if self.state in ("loading", "ready"):
                return
            if self.state == "failed" and time.monotonic() - self._attempted < retry_after_s:
                return
            self.state = "loading"
            self._attempted = time.monotonic()
        threading.Thread(target=self.preload, name="inspector-preload", daemon=True).start()

    def status(self) -> dict[str, Any]:
        """Readiness of the default recipe's models."""
        hit = self._cache.get(self.settings.recipe)
        out: dict[str, Any] = {"ready": hit is not None, "state": self.state,
                               "recipe": self.settings.recipe}
        if hit is not None:
            out["models"] = dict(getattr(hit[1], "model_versions", {}) or {})
        if self.error:
            out["detail"] = self.error
        return out


class Services:
    """What the endpoints share: settings, repository, image store, Redis, inspectors."""

    def __init__(self, settings: Settings, factory: InspectorFactory | None) -> None:
        """Connect (lazily) to the database and Redis of ``settings``."""
        self.settings = settings
        self.engine = get_engine(settings)
        self.repository = InspectionRepository(self.engine)
        self.images = ImageStore.from_settings(settings)
        self.redis: redis.Redis = connect(settings, socket_timeout=2.0)
        self.inspectors = InspectorPool(settings, factory)
        self._head: str | None = None

    # -- verdict ----------------------------------------------------------------------------
    def line_verdict(self, line_id: str) -> dict[str, Any]:
        """The PLC answer for a line (:func:`core.plc.plc_answer` of its Redis snapshot)."""
        try:
            snap = line_snapshot(self.redis, line_id)
        except redis.RedisError as exc:
            raise ApiError(
                503, "redis_unavailable", f"verdict store unreachable: {exc}",
                line_id=line_id, verdict="UNKNOWN", code=2,
            ) from exc
        except ValueError as exc:  # a corrupt record in Redis: fail safe
            log.error("line %s: unreadable verdict/camera record in Redis: %s", line_id, exc)
            return unknown(line_id, "invalid_record")
        if snap.verdict is None and snap.camera is None and not snap.known:
            raise ApiError(
                404, "not_found", f"line {line_id!r} never reported",
                line_id=line_id, verdict="UNKNOWN", code=2,
            )
        return plc_answer(line_id, snap, datetime.now(UTC))

    # -- ad-hoc inspection ------------------------------------------------------------------
    def next_adhoc_frame_id(self, floor: int = 0) -> int:
        """Next ad-hoc frame id: Redis INCR (moved past ``floor`` first); the log's highest
        ad-hoc frame id + 1 when Redis is down."""
        try:
            return int(self.redis.eval(_ADVANCE_AND_INCR, 1, ADHOC_COUNTER_KEY, int(floor)))
        except redis.RedisError:
            log.warning("Redis unavailable: ad-hoc frame id taken from the log")
            return max(floor, self.repository.max_frame_id(ADHOC_LINE) or 0) + 1

    def inspect_upload(self, data: bytes, recipe_name: str | None, received: float) -> dict:
        """Validate, inspect, log and retain one uploaded image; the inspection JSON."""
        try:
            image = decode_image(data)
        except UploadError as exc:
            raise ApiError(exc.status, exc.error, exc.detail) from None
        recipe, inspector = self.inspectors.get(recipe_name)
        captured_at = datetime.fromtimestamp(received, UTC)
        frame_id = self.next_adhoc_frame_id()
        try:
            result: InspectionResult = inspector.inspect(
                image, line_id=ADHOC_LINE, frame_id=frame_id, captured_at=captured_at
            )
        except ValueError as exc:
            raise ApiError(422, "uninspectable_image", str(exc)) from exc
        result.line_id, result.frame_id = ADHOC_LINE, frame_id
        if not result.latency_ms:
            result.latency_ms = (time.time() - received) * 1000.0
        result.recipe = result.recipe or recipe.name
        if not result.width or not result.height:
            result.height, result.width = image.shape[:2]
        for _ in range(10):
            inspection_id, created = self.repository.save(result)
            if created:
                break
            # the counter is behind the log (Redis was flushed): move it past the log
            top = self.repository.max_frame_id(ADHOC_LINE) or 0
            result.frame_id = self.next_adhoc_frame_id(floor=top)
        else:
            raise ApiError(409, "conflict", "could not allocate an ad-hoc frame id")
        result.inspection_id = inspection_id
        try:
            image_path, mask_path = self.images.save(
                ADHOC_LINE, result.frame_id, result.captured_at, image, result.mask
            )
            self.repository.set_image_paths(inspection_id, image_path, mask_path)
        except (OSError, ValueError, SQLAlchemyError):
            log.exception("ad-hoc inspection %s: image not retained", inspection_id)
        record = self.repository.get_record(inspection_id)
        assert record is not None
        return self.inspection_json(record)

    # -- log --------------------------------------------------------------------------------
    @staticmethod
    def inspection_json(record: InspectionRecord, now: datetime | None = None) -> dict[str, Any]:
        """Inspection JSON of a logged inspection plus ``links`` to its resources (image,
        mask and overlay only while retained)."""
        out = record.as_json(now)
        base = f"{API}/inspections/{record.id}"
        out["links"] = {
            "self": base,
            "image": f"{base}/image.png" if record.image_path else None,
            "mask": f"{base}/mask.png" if record.mask_path else None,
            "overlay": f"{base}/overlay.png" if record.image_path else None,
        }
        return out

    def record(self, inspection_id: int) -> InspectionRecord:
        """The logged inspection or a 404."""
        record = self.repository.get_record(inspection_id)
        if record is None:
            raise ApiError(404, "not_found", f"inspection {inspection_id} not found")
        return record

    def review(self, inspection_id: int, payload: ReviewIn) -> dict[str, Any]:
        """Store a review (rules of :class:`ReviewIn` against the logged verdict)."""
        record = self.record(inspection_id)
        machine = record.result.verdict
        verdict, classes = payload.verdict, payload.classes
        if payload.action == "confirm":
            if verdict is not None and verdict != machine:
                raise ApiError(
                    422, "validation_error",
                    f"confirm keeps the verdict {machine}; use 'correct' to change it",
                )
            verdict = machine
            if classes is None:
                classes = sorted({d.cls for d in record.result.defects})
        elif payload.action == "false_reject":
            if machine != "NG":
                raise ApiError(
                    422, "validation_error", "false_reject applies to NG inspections only"
                )
            verdict, classes = "OK", []
        review = self.repository.add_review(
            inspection_id, payload.reviewer, payload.action, verdict, classes, payload.comment
        )
        if review is None:
            raise ApiError(404, "not_found", f"inspection {inspection_id} not found")
        return {
            "review": review.as_json(),
            "inspection": self.inspection_json(self.record(inspection_id)),
        }

    # -- health -----------------------------------------------------------------------------
    def readiness(self) -> dict[str, dict[str, Any]]:
        """Each part's readiness: redis, database, camera, models."""
        parts: dict[str, dict[str, Any]] = {}
        redis_ok = False
        try:
            self.redis.ping()
            redis_ok = True
            parts["redis"] = {"ready": True}
        except redis.RedisError as exc:
            parts["redis"] = {"ready": False, "detail": f"{type(exc).__name__}: {exc}"}
        try:
            self.repository.ping()
            if self._head is None:
                self._head = head_revision()
            current = current_revision(self.engine)
            if current != self._head:
                parts["database"] = {
                    "ready": False,
                    "detail": f"schema at revision {current}, expected {self._head}: migrate",
                }
            else:
                parts["database"] = {"ready": True, "revision": current}
        except (SQLAlchemyError, RuntimeError) as exc:
            parts["database"] = {"ready": False, "detail": f"{type(exc).__name__}: {exc}"}
        line = self.settings.line_id
        if not redis_ok:
            parts["camera"] = {"ready": False, "line_id": line, "detail": "Redis unavailable"}
        else:
            try:
                cam = camera_status(self.redis, line)
                if cam is None:
                    parts["camera"] = {"ready": False, "line_id": line,
                                       "detail": "no acquisition worker ever reported"}
                else:
                    alive = cam.alive()
                    parts["camera"] = {
                        "ready": alive, "line_id": line, "connected": cam.connected,
                        "heartbeat_age_s": round(time.time() - cam.heartbeat, 3),
                    }
                    if not alive:
                        parts["camera"]["detail"] = (
                            "camera disconnected" if not cam.connected else "heartbeat too old"
                        )
            except redis.RedisError as exc:
                parts["camera"] = {"ready": False, "line_id": line, "detail": str(exc)}
        if self.inspectors.state in ("not_loaded", "failed"):
            self.inspectors.start_preload()  # a failed load is retried every 30 s
        parts["models"] = self.inspectors.status()
        return parts

    def refresh_gauges(self) -> None:
        """Camera-connected and stream-lag gauges of every known line, from Redis."""
        try:
            lines = known_lines(self.redis)
            now = time.time()
            for line in lines:
                cam = camera_status(self.redis, line)
                metrics.CAMERA_CONNECTED.labels(line=line).set(
                    1 if cam is not None and cam.alive(now) else 0
                )
                lag = stream_lag(self.redis, line)
                if lag is not None:
                    metrics.STREAM_LAG.labels(line=line).set(lag)
        except redis.RedisError as exc:
            log.warning("metrics: Redis unavailable (%s); gauges not refreshed", exc)

    def close(self) -> None:
        """Release connections."""
        self.engine.dispose()
        try:
            self.redis.close()
        except redis.RedisError:
            pass


def create_app(
    settings: Settings | None = None,
    inspector_factory: InspectorFactory | None = None,
    *,
    migrate_db: bool | None = None,
    preload_models: bool = True,
    retention_interval_s: float | None = 600.0,
) -> FastAPI:
    """The FastAPI application.

    ``inspector_factory(recipe, settings)`` builds the inspector of a recipe (default
    :class:`inference.pipeline.Inspector`). ``migrate_db``: apply migrations now (None: only
    for SQLite, the embedded default; PostgreSQL is migrated by ``lineinspect migrate``).
    ``preload_models``: load the default recipe's models in the background at start-up.
    ``retention_interval_s``: run the image retention every so many seconds (None: never).
    """
    settings = settings or get_settings()
    if migrate_db is None:
        migrate_db = is_sqlite(settings.sqlalchemy_url)
    if migrate_db:
        migrate(settings.sqlalchemy_url)
    if settings.api_key == "change-me":
        log.warning("LINEINSPECT_API_KEY is the default 'change-me': set a secret key")
    svc = Services(settings, inspector_factory)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        stop = threading.Event()
        if preload_models:
            svc.inspectors.start_preload()
        if retention_interval_s:
            def _retention() -> None:
                while True:
                    try:
                        apply_retention(svc.images, svc.repository)
                    except Exception:  # noqa: BLE001 - keep the loop alive
                        log.exception("image retention failed")
                    if stop.wait(retention_interval_s):
                        return

            threading.Thread(target=_retention, name="image-retention", daemon=True).start()
        try:
            yield
        finally:
            stop.set()
            svc.close()

    app = FastAPI(
        title="lineinspect",
        version="0.1.0",
        description="Inline surface inspection: PLC verdicts, defect log, masks, metrics.",
        lifespan=lifespan,
    )
    app.state.services = svc

    # -- errors -----------------------------------------------------------------------------
    @app.exception_handler(ApiError)
    async def _api_error(_request: Request, exc: ApiError) -> JSONResponse:
        return _error(exc.status, exc.error, exc.detail, exc.headers, **exc.extra)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = _STATUS_ERRORS.get(exc.status_code, "http_error")
        return _error(exc.status_code, code, exc.detail, getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_request: Request, exc: RequestValidationError) -> JSONResponse:
        return _error(422, "validation_error", _clean_errors(exc.errors()))

    @app.exception_handler(SQLAlchemyError)
    async def _db_error(_request: Request, exc: SQLAlchemyError) -> JSONResponse:
        log.error("database error: %s", exc)
        return _error(503, "database_unavailable", f"{type(exc).__name__}")

    @app.exception_handler(Exception)
    async def _internal_error(_request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error", exc_info=exc)
        return _error(500, "internal_error", f"{type(exc).__name__}")

    # -- PLC --------------------------------------------------------------------------------
    @app.get(f"{API}/lines/{{line_id}}/verdict", tags=["PLC"])
    def line_verdict(line_id: str) -> JSONResponse:
        """Latest verdict of a line from Redis; ``UNKNOWN`` (code 2) when stale or the camera
        is disconnected (``reason`` says which)."""
        return JSONResponse(svc.line_verdict(line_id), headers={"Cache-Control": "no-store"})

    @app.get(f"{API}/lines", tags=["PLC"])
    def lines() -> dict[str, Any]:
        """Lines that ever reported, each with its current PLC answer."""
        try:
            ids = known_lines(svc.redis)
        except redis.RedisError as exc:
            raise ApiError(503, "redis_unavailable", str(exc)) from exc
        items = []
        for line in ids:
            try:
                v = svc.line_verdict(line)
            except ApiError:
                continue
            keys = ("line_id", "verdict", "code", "reason", "age_ms", "camera_connected",
                    "inspection_id", "frame_id", "captured_at")
            items.append({k: v.get(k) for k in keys})
        return {"lines": items}

    # -- ad-hoc inspection ------------------------------------------------------------------
    @app.post(f"{API}/inspect", tags=["inspection"], openapi_extra=_UPLOAD_OPENAPI)
    async def inspect_upload(request: Request) -> JSONResponse:
        """Inspect an uploaded image (multipart ``file``, optional ``recipe``); logged as
        line ``adhoc``."""
        try:
            form = await read_upload_form(
                request.headers, request.stream(), settings.max_upload_bytes
            )
        except UploadError as exc:
            raise ApiError(exc.status, exc.error, exc.detail) from None
        except ClientDisconnect:
            raise ApiError(400, "bad_request", "client disconnected during upload") from None
        received = time.time()
        recipe = (form.fields.get("recipe") or "").strip() or None
        body = await run_in_threadpool(svc.inspect_upload, form.data, recipe, received)
        return JSONResponse(body)

    # -- defect log -------------------------------------------------------------------------
    @app.get(f"{API}/inspections", tags=["defect log"])
    def list_inspections(
        line_id: str | None = Query(None, max_length=64),
        verdict: Literal["OK", "NG", "UNKNOWN"] | None = None,
        defect_class: str | None = Query(None, max_length=64),
        since: datetime | None = Query(None, description="inclusive; naive = UTC"),
        until: datetime | None = Query(None, description="exclusive; naive = UTC"),
        reviewed: bool | None = None,
        limit: int = Query(50, ge=1, le=500),
        cursor: str | None = Query(None, max_length=200, description="next_cursor of a page"),
    ) -> dict[str, Any]:
        """The defect log, newest first, with keyset cursor pagination."""
        def utc(v: datetime | None) -> datetime | None:
            if v is None:
                return None
            return v.replace(tzinfo=UTC) if v.tzinfo is None else v.astimezone(UTC)

        since_u, until_u = utc(since), utc(until)
        if since_u is not None and until_u is not None and since_u >= until_u:
            raise ApiError(422, "validation_error", "since must be before until")
        try:
            items, next_cursor = svc.repository.query(
                line_id=line_id, verdict=verdict, defect_class=defect_class, since=since_u,
                until=until_u, reviewed=reviewed, limit=limit, cursor=cursor,
            )
        except InvalidCursor as exc:
            raise ApiError(422, "validation_error", str(exc)) from None
        now = datetime.now(UTC)
        return {
            "items": [svc.inspection_json(r, now) for r in items],
            "next_cursor": next_cursor,
            "limit": limit,
        }

    @app.get(f"{API}/inspections/{{inspection_id}}", tags=["defect log"])
    def get_inspection(inspection_id: int) -> dict[str, Any]:
        """One logged inspection with its defects and latest review."""
        record = svc.record(inspection_id)
        out = svc.inspection_json(record)
        out["reviews"] = [r.as_json() for r in record.reviews]
        return out

    def _png(data: bytes, **headers: str) -> Response:
        return Response(
            data, media_type="image/png",
            headers={"Cache-Control": "private, max-age=3600", **headers},
        )

    @app.get(f"{API}/inspections/{{inspection_id}}/image.png", tags=["defect log"],
             response_class=Response)
    def inspection_image(inspection_id: int) -> Response:
        """The retained frame (404 when it was not retained or retention removed it)."""
        record = svc.record(inspection_id)
        data = svc.images.read_bytes(record.image_path)
        if data is None:
            raise ApiError(404, "not_found", f"image of inspection {inspection_id} not retained")
        return _png(data)

    @app.get(f"{API}/inspections/{{inspection_id}}/mask.png", tags=["defect log"],
             response_class=Response)
    def inspection_mask(inspection_id: int) -> Response:
        """Class-indexed 8-bit mask of the whole frame (0 = background); the class names in
        index order are in the ``X-Mask-Classes`` header (JSON)."""
        record = svc.record(inspection_id)
        data = svc.images.read_bytes(record.mask_path)
        if data is None:
            raise ApiError(404, "not_found", f"mask of inspection {inspection_id} not retained")
        return _png(data, **{"X-Mask-Classes": json.dumps(record.result.mask_classes)})

    @app.get(f"{API}/inspections/{{inspection_id}}/overlay.png", tags=["defect log"],
             response_class=Response)
    def inspection_overlay(inspection_id: int) -> Response:
        """The frame with the mask tinted per class and the defect boxes drawn."""
        record = svc.record(inspection_id)
        image = svc.images.load_image(record.image_path)
        if image is None:
            raise ApiError(404, "not_found", f"image of inspection {inspection_id} not retained")
        mask = svc.images.load_mask(record.mask_path)
        rgb = render_overlay(image, mask, record.result.defects, record.result.mask_classes)
        return _png(encode_png(rgb))

    @app.post(f"{API}/inspections/{{inspection_id}}/review", tags=["defect log"],
              status_code=201, openapi_extra=_REVIEW_OPENAPI)
    async def review_inspection(
        inspection_id: int,
        request: Request,
        x_api_key: str | None = Header(None, description="settings.api_key"),
    ) -> JSONResponse:
        """QA confirms or corrects an inspection (header ``X-API-Key`` required)."""
        expected = settings.api_key.encode()
        given = (x_api_key or "").encode()
        if not expected or not secrets.compare_digest(given, expected):
            raise ApiError(401, "unauthorized", "missing or wrong X-API-Key header")
        length = request.headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > MAX_REVIEW_BYTES:
            raise ApiError(413, "payload_too_large", f"body larger than {MAX_REVIEW_BYTES} bytes")
        raw = b""
        async for chunk in request.stream():
            raw += chunk
            if len(raw) > MAX_REVIEW_BYTES:
                raise ApiError(413, "payload_too_large",
                               f"body larger than {MAX_REVIEW_BYTES} bytes")
        try:
            payload = ReviewIn.model_validate_json(raw)
        except ValidationError as exc:
            raise ApiError(422, "validation_error", _clean_errors(exc.errors())) from None
        body = await run_in_threadpool(svc.review, inspection_id, payload)
        return JSONResponse(jsonable_encoder(body), status_code=201)

    # -- health, metrics, UI ----------------------------------------------------------------
    @app.get("/healthz", tags=["health"])
    def healthz() -> dict[str, str]:
        """Liveness: the process answers."""
        return {"status": "ok"}

    @app.get("/readyz", tags=["health"])
    def readyz() -> JSONResponse:
        """Readiness of Redis, the database, the line's camera and the models."""
        parts = svc.readiness()
        ready = all(p["ready"] for p in parts.values())
        body = {"ready": ready, "status": "ready" if ready else "not_ready", "checks": parts}
        return JSONResponse(jsonable_encoder(body), status_code=200 if ready else 503)

    @app.get("/metrics", tags=["health"], response_class=Response)
    def metrics_endpoint() -> Response:
        """Prometheus exposition (camera and stream-lag gauges refreshed from Redis)."""
        svc.refresh_gauges()
        return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)

    from api.ui.routes import register_ui  # imports api.app: registered here, not at the top

    register_ui(app, svc)  # GET /, static files, stats, CSV export, neighbours
    return app
