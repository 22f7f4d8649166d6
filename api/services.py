"""What the endpoints share: settings, the inspection log, images, Redis, inspectors.

One :class:`Services` per application (``app.state.services``), reached by the routes
through the typed dependencies of :mod:`api.deps`.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import time
from datetime import UTC, datetime
from typing import Any

import redis
import redis.asyncio as aredis
from sqlalchemy.exc import SQLAlchemyError

import core.metrics as metrics
from api.errors import ApiError
from api.inspectors import InspectorFactory, InspectorPool
from api.schemas import ReviewIn
from api.security import Authenticator, UploadGate
from api.uploads import UploadError, decode_image
from core import heartbeats
from core.bus import camera_status, known_lines, line_snapshot, stream_lag
from core.plc import plc_answer, unknown
from core.redis_conn import aconnect, connect
from core.result import InspectionResult
from core.settings import Settings
from core.supervise import LOOPS
from storage.access import AccessStore
from storage.aggregates import LogAggregates
from storage.db import current_revision, get_engine, head_revision
from storage.images import ImageStore
from storage.repository import InspectionRecord, InspectionRepository

log = logging.getLogger(__name__)

API = "/api/v1"
ADHOC_LINE = "adhoc"
ADHOC_COUNTER_KEY = "adhoc:frame_id"

# INCR that first moves the counter past ARGV[1] (the log's highest ad-hoc frame id).
_ADVANCE_AND_INCR = """
local c = tonumber(redis.call('GET', KEYS[1]) or '0')
if c < tonumber(ARGV[1]) then redis.call('SET', KEYS[1], ARGV[1]) end
return redis.call('INCR', KEYS[1])
"""


class Services:
    """What the endpoints share: settings, repository, log aggregates, image store, Redis,
    inspectors."""

    def __init__(self, settings: Settings, factory: InspectorFactory | None) -> None:
        """Connect (lazily) to the database and Redis of ``settings``."""
        self.settings = settings
        self.engine = get_engine(settings)
        self.repository = InspectionRepository(self.engine)
        self.aggregates = LogAggregates(self.engine)
        self.images = ImageStore.from_settings(settings)
        self.redis: redis.Redis = connect(settings, socket_timeout=2.0)
        self._aredis: tuple[asyncio.AbstractEventLoop, aredis.Redis] | None = None
        self.inspectors = InspectorPool(settings, factory)
        self.access = AccessStore(self.engine)
        self.auth = Authenticator(settings, self.access)
        self.uploads = UploadGate(settings.upload_concurrency, settings.upload_rate_per_minute)
        self._head: str | None = None

    def aredis(self) -> aredis.Redis:
        """The ``redis.asyncio`` client of the running event loop (the PLC polling path);
        a new one when the loop changed (a test client without its lifespan)."""
        loop = asyncio.get_running_loop()
        if self._aredis is None or self._aredis[0] is not loop:
            self._aredis = (loop, aconnect(self.settings, socket_timeout=2.0))
        return self._aredis[1]

    async def aclose(self) -> None:
        """Release the ``redis.asyncio`` client (in its event loop)."""
        if self._aredis is not None and self._aredis[0] is asyncio.get_running_loop():
            await self._aredis[1].aclose()
        self._aredis = None

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
            image = decode_image(data, self.settings.max_upload_pixels)
        except UploadError as exc:
            raise ApiError(exc.status, exc.error, exc.detail) from None
        recipe, inspector = self.inspectors.get(recipe_name)
        smallest = min((m.tile for m in recipe.models if m.tile > 0), default=1)
        if min(image.shape[:2]) < smallest:  # issue 17.7: a 1x1 upload was logged as OK
            raise ApiError(
                422, "image_too_small",
                f"image of {image.shape[1]}x{image.shape[0]} pixels is smaller than the "
                f"{smallest}-pixel tile of recipe {recipe.name}: not inspectable",
            )
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
                ADHOC_LINE, result.frame_id, result.captured_at, image, result.mask,
                inspection_id=inspection_id,
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
        parts["inference"] = self._inference_part(redis_ok)
        parts["loops"] = self._loops_part()
        parts["image_store"] = self._image_store_part()
        return parts

    def _inference_part(self, redis_ok: bool) -> dict[str, Any]:
        """Some inference worker of the line beats without trouble (:mod:`core.heartbeats`)."""
        line = self.settings.line_id
        if not redis_ok:
            return {"ready": False, "line_id": line, "detail": "Redis unavailable"}
        try:
            alive = heartbeats.workers(self.redis, line)
        except redis.RedisError as exc:
            return {"ready": False, "line_id": line, "detail": str(exc)}
        working = [n for n, w in alive.items() if w["trouble"] is None]
        part: dict[str, Any] = {"ready": bool(working), "line_id": line, "workers": alive}
        if not alive:
            part["detail"] = "no inference worker of the line is running"
        elif not working:
            part["detail"] = "; ".join(f"{n}: {w['trouble']}" for n, w in alive.items())
        return part

    @staticmethod
    def _loops_part() -> dict[str, Any]:
        """This process's supervised loops (:data:`core.supervise.LOOPS`)."""
        loops = LOOPS.snapshot()
        bad = {n: s["trouble"] or ("given up" if s["fatal"] else "not running")
               for n, s in loops.items() if not s["ready"]}
        part: dict[str, Any] = {"ready": not bad, "loops": loops}
        if bad:
            part["detail"] = "; ".join(f"{n}: {why}" for n, why in bad.items())
        return part

    def _image_store_part(self) -> dict[str, Any]:
        """Free space where retained images go (issue 17.7: a full disk was silent)."""
        root = self.images.root
        probe = root if root.exists() else root.parent
        try:
            free = shutil.disk_usage(probe).free
        except OSError as exc:
            return {"ready": False, "detail": f"{type(exc).__name__}: {exc}"}
        need = self.settings.image_store_min_free_bytes
        part: dict[str, Any] = {"ready": free >= need, "free_bytes": free}
        if free < need:
            part["detail"] = f"{free} bytes free, fewer than {need}: images are not retained"
        return part

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
