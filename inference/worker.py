"""Inference worker: Redis stream ``frames:{line}`` -> Inspector -> DB -> ack -> verdict.

Delivery guarantees (docs/CONTRACT.md), per stream entry, in this order:

1. decode the :class:`~core.frame.Frame`; an entry that cannot be decoded (missing
   fields, wrong byte count, trimmed away while pending) is acked, counted in
   ``lineinspect_frames_dropped_total`` and logged as an error - never inspected;
2. :meth:`Inspector.inspect_frame` - except a trigger-mode part whose image never arrived
   (``Frame.missed``: ``grab_failed``/``part_missed``) or a frame that waited too long
   (``overloaded``): logged ``UNKNOWN`` with that ``unknown_reason``, uninspected, through
   steps 3-7 like any frame. An exception in the inspection is a frame that cannot be
   inspected: logged with its traceback, acked and counted as dropped (retrying would fail
   the same way);
3. ``repository.save(result) -> (id, created)`` - idempotent per ``(line, frame_id)`` (unique
   constraint), so a frame re-delivered after a crash is logged once (``created`` False);
4. NG frames (and OK ones when ``retain_ok_images``): ``image_store.save(...)`` then
   ``repository.set_image_paths(...)``; an image-store failure (disk) is logged and the
   inspection kept without image;
5. :func:`core.bus.publish_result` of the verdict record (:func:`core.plc.verdict_record`:
   the inspection JSON with ``inspection_id`` and the recipe's ``stale_after_ms``/
   ``valid_until``) - one Lua script in Redis: the frame's result id in the line's result
   sequence (a re-delivered frame keeps its id) and the compare-and-set of the latest
   verdict, so a reclaimed old frame never replaces a newer frame's verdict, however the
   workers interleave;
6. ``XACK`` - only now; a DB error in 3-4 leaves the entry pending (not acked), the worker backs
   off and retries it (re-reading its own pending entries); if it dies, another worker takes
   the entry over with ``XAUTOCLAIM`` once it has been idle ``claim_idle_ms``. Publishing
   before the XACK means a crash between the two re-delivers the frame (same result id)
   instead of leaving a logged frame that no PLC ever saw;
7. metrics: verdicts, defects, grab-to-verdict, brightness, stream lag.

Steps 3-7 of a frame run on the worker's writer thread (:class:`inference.writer.
OrderedWriter`, one frame at a time, in stream order) while the next frame is inspected; the
order above holds per frame, and an error there surfaces in the loop as before.

Redis connection errors anywhere: back off (0.1 s doubling to 5 s) and retry; nothing
uncommitted is ever acked. Any other error of the loop - a Redis that refuses commands
(``MISCONF`` on a full disk, ``LOADING``, ``READONLY``, ``OOM``), a bug - is logged with its
traceback and retried the same way: the loop never ends on an error (issue 17: a ``MISCONF``
once ended the thread while ``/readyz`` said 200). While it backs off it reports the trouble
(:data:`core.supervise.LOOPS`, loop ``inference:{line}``, and its Redis heartbeat
:mod:`core.heartbeats`), so ``/readyz`` says why the line is not inspected.

The worker knows storage only through the :class:`Repository` and :class:`ImageStore`
protocols; the composition root (``deploy``) passes ``storage``'s implementations in.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

import numpy as np
import redis

from core import heartbeats
from core.bus import GROUP, ensure_group, publish_result, stream_key, stream_lag
from core.frame import Frame
from core.metrics import (
    DEFECTS,
    FRAME_BRIGHTNESS,
    FRAMES_DROPPED,
    GRAB_TO_VERDICT,
    IMAGES_NOT_RETAINED,
    STREAM_LAG,
    STREAM_RECLAIMED,
    VERDICTS,
)
from core.plc import verdict_record
from core.recipe import Recipe
from core.redis_conn import connect
from core.result import InspectionResult
from core.settings import Settings
from core.stages import StageTimer
from core.supervise import LOOPS
from inference.backlog import BacklogGuard
from inference.pipeline import Inspector
from inference.writer import OrderedWriter

log = logging.getLogger(__name__)

_REDIS_ERRORS = (redis.ConnectionError, redis.TimeoutError)


class Repository(Protocol):
    """What the worker needs from ``storage.repository.InspectionRepository``."""

    def save(self, result: InspectionResult) -> tuple[int, bool]:
        """Insert once per (line, frame_id); return (inspection id, created)."""
        ...

    def set_image_paths(self, inspection_id: int, image_path: str, mask_path: str) -> None:
        """Record where the retained frame and mask were written."""
        ...


class ImageStore(Protocol):
    """What the worker needs from ``storage.images.ImageStore``."""

    def save(
        self,
        line_id: str,
        frame_id: int,
        captured_at: datetime,
        image: np.ndarray,
        mask: np.ndarray | None,
        *,
        inspection_id: int | None = None,
    ) -> tuple[Any, Any]:
        """Write frame and mask of the logged inspection ``inspection_id`` (never replacing
        another inspection's files); return (image_path, mask_path)."""
        ...


@dataclass
class InferenceStats:
    """Counters of one :func:`run_inference` call."""

    #: inspections newly logged and acked
    processed: int = 0
    #: entries whose frame was already logged (re-delivered after a crash), acked
    duplicates: int = 0
    #: entries taken over from idle consumers with XAUTOCLAIM
    reclaimed: int = 0
    #: Redis/DB/inspection errors (the entry was retried, or dropped when uninspectable)
    errors: int = 0
    #: entries acked without inspection (undecodable, uninspectable, trimmed)
    dropped: int = 0
    #: NG verdicts among processed + duplicates
    ng: int = 0

    @property
    def handled(self) -> int:
        """Entries finished (acked): processed + duplicates + dropped."""
        return self.processed + self.duplicates + self.dropped


class _CommitError(Exception):
    """The DB (or image path update) failed: do not ack, back off, retry."""


class _Backoff:
    def __init__(self, first: float = 0.1, cap: float = 5.0) -> None:
        self.first, self.cap, self.delay = first, cap, first

    def next(self) -> float:
        d = self.delay
        self.delay = min(self.cap, self.delay * 2)
        return d

    def reset(self) -> None:
        self.delay = self.first


class _Worker:
    def __init__(
        self,
        settings: Settings,
        inspector: Inspector,
        r: redis.Redis,
        repository: Repository,
        image_store: ImageStore | None,
        stop: threading.Event,
        max_frames: int | None,
        claim_idle_ms: int,
        block_ms: int,
        count: int,
        stale_after_ms: int,
        max_backlog_ms: int = 0,
        stages: StageTimer | None = None,
    ) -> None:
        self.settings = settings
        #: written into every verdict record (the API never reads the recipe)
        self.stale_after_ms = stale_after_ms
        #: per-stage times (see :func:`run_inference`)
        self.stages = stages or StageTimer()
        self.line = settings.line_id
        self.key = stream_key(self.line)
        self.consumer = settings.worker_name or f"{socket.gethostname()}-{os.getpid()}"
        #: frames older than the recipe's max_backlog_ms are not inspected; load reports
        self.backlog = BacklogGuard(r, self.line, self.consumer, max_backlog_ms)
        self.inspector = inspector
        self.r = r
        self.repository = repository
        self.image_store = image_store
        self.stop = stop
        self.max_frames = max_frames
        self.claim_idle_ms = claim_idle_ms
        self.block_ms = block_ms
        self.count = count
        self.stats = InferenceStats()
        self.backoff = _Backoff()
        self.claim_cursor = "0-0"
        self.lag_updated = 0.0
        #: name of this loop in :data:`core.supervise.LOOPS`
        self.loop_name = f"inference:{self.line}"
        self._beat_at = 0.0
        self._trouble: str | None = None
        #: commits, acks and publishes on its own thread (the next frame's inference overlaps)
        self.writer = OrderedWriter()

    # -- loop -------------------------------------------------------------------------------
    def done(self) -> bool:
        return self.stop.is_set() or (
            self.max_frames is not None
            and self.stats.handled + self.writer.in_flight >= self.max_frames
        )

    def run(self) -> InferenceStats:
        log.info("inference worker %s on %s (group %s)", self.consumer, self.key, GROUP)
        need_group, own_pending = True, True
        while not self.done():
            trouble: str | None = None
            try:
                if need_group:
                    ensure_group(self.r, self.line)
                    need_group = False
                own_pending = self._step(own_pending)
                self._update_lag()
                if self.done():
                    self.writer.drain()  # the last frames' commits (errors handled below)
                self.backoff.reset()
            except _CommitError as exc:
                trouble = f"database: {exc.__cause__ or exc}"
                log.error("DB commit failed (%s); entry stays pending", exc.__cause__ or exc)
            except _REDIS_ERRORS as exc:
                trouble = f"Redis unreachable: {exc}"
                log.warning("Redis error (%s)", exc)
            except redis.ResponseError as exc:
                if "NOGROUP" in str(exc):
                    log.warning("consumer group missing (Redis restarted?): recreating")
                    need_group, own_pending = True, True
                    continue
                trouble = f"Redis refused: {exc}"
                log.error("Redis refused a command (%s)", exc)
            except Exception as exc:  # noqa: BLE001 - a bug must not end the loop silently
                trouble = f"{type(exc).__name__}: {exc}"
                log.exception("inference loop error")
            self._beat(trouble)
            if trouble is not None:
                self.stats.errors += 1
                own_pending = True
                delay = self.backoff.next()
                log.info("inference %s: retry in %.1fs", self.line, delay)
                self.stop.wait(delay)
        self.writer.close()  # a stop leaves what is not committed pending, never acked
        try:
            self._update_lag(every_s=0.0)
            heartbeats.remove(self.r, self.line, self.consumer)
        except redis.RedisError:
            pass
        LOOPS.update(self.loop_name, running=False, stopped=True, trouble=None)
        return self.stats

    def _step(self, own_pending: bool) -> bool:
        """Read (own pending, reclaimed, else new entries) and handle them; whether own
        pending entries may remain."""
        entries: list[tuple[bytes, dict[bytes, bytes] | None]] = []
        busy = self.writer.keys()  # being committed: still pending, not to be read again
        if own_pending:  # our own unacked entries (restart with same name, DB retry)
            entries = [e for e in self._read("0") if e[0] not in busy]
            own_pending = bool(entries)
        entries += [e for e in self._autoclaim() if e[0] not in busy]
        if not entries:
            t_read = time.perf_counter()
            entries = self._read(">", block=True)
            if entries:
                self.stages.add("stream_read", time.perf_counter() - t_read)
        seen: set[bytes] = set()
        for entry_id, fields in entries:
            if entry_id in seen:  # own idle entry also returned by XAUTOCLAIM
                continue
            seen.add(entry_id)
            if self.done():
                break
            self._handle(entry_id, fields)
            self._beat(None)
        return own_pending

    def _beat(self, trouble: str | None) -> None:
        """Tell the process (``LOOPS``) and the API (Redis heartbeat) how the loop is."""
        if trouble is None:
            LOOPS.beat(self.loop_name)
        else:
            LOOPS.trouble(self.loop_name, trouble)
        now = time.monotonic()
        if trouble == self._trouble and now - self._beat_at < heartbeats.HEARTBEAT_INTERVAL_S:
            return
        self._beat_at, self._trouble = now, trouble
        try:
            heartbeats.beat(self.r, self.line, self.consumer, trouble)
        except redis.RedisError:
            pass  # a Redis that refuses the heartbeat makes it age: the API sees that

    def _batch(self) -> int:
        if self.max_frames is None:
            return self.count
        left = self.max_frames - self.stats.handled - self.writer.in_flight
        return max(1, min(self.count, left))

    def _read(self, start: str, block: bool = False) -> list:
        resp = self.r.xreadgroup(
            GROUP,
            self.consumer,
            {self.key: start},
            count=self._batch(),
            block=self.block_ms if block else None,
        )
        return list(resp[0][1]) if resp else []

    def _autoclaim(self) -> list:
        resp = self.r.xautoclaim(
            self.key,
            GROUP,
            self.consumer,
            self.claim_idle_ms,
            self.claim_cursor,
            count=self._batch(),
        )
        cursor, entries = resp[0], resp[1]
        deleted = resp[2] if len(resp) > 2 else []
        self.claim_cursor = cursor.decode() if isinstance(cursor, bytes) else str(cursor)
        if deleted:  # pending entries trimmed from the stream before anyone inspected them
            log.error(
                "%d pending frames were trimmed from %s before inspection", len(deleted), self.key
            )
            self.stats.dropped += len(deleted)
            FRAMES_DROPPED.labels(line=self.line).inc(len(deleted))
        if entries:
            log.warning("reclaimed %d idle entries of dead workers", len(entries))
            self.stats.reclaimed += len(entries)
            STREAM_RECLAIMED.labels(line=self.line).inc(len(entries))
        return list(entries)

    def _update_lag(self, every_s: float = 0.5) -> None:
        now = time.monotonic()
        if now - self.lag_updated < every_s:
            return
        self.lag_updated = now
        self.backlog.report(force=every_s == 0.0)  # the workers' own figures, for the UI
        lag = stream_lag(self.r, self.line)
        if lag is not None:
            STREAM_LAG.labels(line=self.line).set(lag)

    # -- one entry --------------------------------------------------------------------------
    def _inspect(self, frame: Frame) -> InspectionResult:
        """Inspect ``frame``, unless it is a part whose image never arrived (``missed``) or
        it waited longer than the recipe allows: then it is logged ``UNKNOWN`` without
        inspection, with the reason (:mod:`inference.backlog`)."""
        recipe = self.inspector.recipe.name
        if frame.missed:
            return self.backlog.not_inspected(frame, recipe, frame.missed)
        if self.backlog.too_old(frame):
            return self.backlog.not_inspected(frame, recipe)
        result = self.inspector.inspect_frame(frame)
        result.part_id = frame.part_id
        return result

    def _drop(self, entry_id: bytes, why: str) -> None:
        log.error("dropping stream entry %s of %s: %s", entry_id, self.key, why)
        self._ack(entry_id)
        self.stats.dropped += 1
        FRAMES_DROPPED.labels(line=self.line).inc()

    def _ack(self, entry_id: bytes) -> None:
        """XACK, then XDEL: a finished frame leaves the stream at once, so Redis holds only
        frames not yet inspected (issue 17.4: the embedded Redis kept every acknowledged
        1.25 MB frame up to MAXLEN), and the group's lag is XLEN - pending. A crash between
        the two leaves an acknowledged entry behind (MAXLEN trims it), never a pending one
        without its data."""
        self.r.xack(self.key, GROUP, entry_id)
        self.r.xdel(self.key, entry_id)

    def _handle(self, entry_id: bytes, fields: dict[bytes, bytes] | None) -> None:
        if not fields:
            self._drop(entry_id, "entry was trimmed from the stream before inspection")
            return
        stages, t0 = self.stages, time.perf_counter()
        try:
            frame = Frame.from_fields(fields)
            frame.array()  # validates the byte count against the geometry
        except (KeyError, ValueError, UnicodeDecodeError) as exc:
            self._drop(entry_id, f"undecodable frame: {exc!r}")
            return
        stages.add("decode", time.perf_counter() - t0)
        try:
            result = self._inspect(frame)
        except Exception:
            log.exception("frame %s of %s could not be inspected", frame.frame_id, self.line)
            self.stats.errors += 1
            self._drop(entry_id, "inspection failed")
            return
        timings = self.inspector.timings if result.verdict != "UNKNOWN" else {}  # skipped
        stages.add_ms({k: v for k, v in timings.items() if k not in ("decode", "total")})
        stages.add("inspect_total", timings.get("total", 0.0) / 1000.0)
        result.latency_ms = (time.time() - frame.host_ts) * 1000.0
        self.writer.submit(entry_id, lambda: self._write(entry_id, result, frame))

    def _write(self, entry_id: bytes, result: InspectionResult, frame: Frame) -> None:
        """Commit, publish and ack one inspected frame (on the writer thread, in order)."""
        stages, t0 = self.stages, time.perf_counter()
        created = self._commit(result, frame)
        t1 = time.perf_counter()
        self._publish(result)  # before XACK: a crash in between re-delivers, never loses it
        t2 = time.perf_counter()
        self._ack(entry_id)  # only after the commit
        t3 = time.perf_counter()
        stages.add("db_write", t1 - t0)
        stages.add("verdict_publish", t2 - t1)
        stages.add("stream_ack", t3 - t2)
        stages.add("grab_to_verdict", max(0.0, time.time() - frame.host_ts))
        self._count(result, frame, created)

    def _commit(self, result: InspectionResult, frame: Frame) -> bool:
        try:
            inspection_id, created = self.repository.save(result)
        except Exception as exc:
            raise _CommitError(f"save of frame {frame.frame_id}") from exc
        result.inspection_id = inspection_id
        retain = result.verdict == "NG" or self.settings.retain_ok_images
        if retain and frame.data and self.image_store is not None:  # a missed part: no pixels
            try:
                image_path, mask_path = self.image_store.save(
                    result.line_id,
                    result.frame_id,
                    result.captured_at,
                    frame.array(),
                    result.mask,
                    inspection_id=inspection_id,
                )
            except Exception:
                log.exception("could not retain image of frame %s", frame.frame_id)
                IMAGES_NOT_RETAINED.labels(line=self.line).inc()
            else:
                try:
                    self.repository.set_image_paths(
                        inspection_id, str(image_path), str(mask_path) if mask_path else None
                    )
                except Exception as exc:
                    raise _CommitError(f"image paths of frame {frame.frame_id}") from exc
        return created

    def _publish(self, result: InspectionResult) -> None:
        record = verdict_record(result, self.stale_after_ms)
        record.update(self.backlog.record_fields())  # overloaded? (inference.backlog)
        done = publish_result(self.r, result.line_id, record, self.settings.results_maxlen)
        self.backlog.published(result)
        if not done.latest:
            log.info("frame %s: a newer verdict is published, kept it", result.frame_id)

    def _count(self, result: InspectionResult, frame: Frame, created: bool) -> None:
        if created:
            self.stats.processed += 1
        else:
            self.stats.duplicates += 1
        if result.verdict == "NG":
            self.stats.ng += 1
        line = result.line_id
        VERDICTS.labels(line=line, verdict=result.verdict).inc()
        for d in result.defects:
            DEFECTS.labels(line=line, **{"class": d.cls}).inc()
        GRAB_TO_VERDICT.labels(line=line).observe(max(0.0, time.time() - frame.host_ts))
        FRAME_BRIGHTNESS.labels(line=line).set(result.brightness)


def run_inference(
    settings: Settings,
    recipe: Recipe,
    repository: Repository,
    image_store: ImageStore | None = None,
    *,
    stop: threading.Event | None = None,
    max_frames: int | None = None,
    inspector: Inspector | None = None,
    redis_client: redis.Redis | None = None,
    claim_idle_ms: int | None = None,
    block_ms: int = 1000,
    count: int = 1,
    stages: StageTimer | None = None,
) -> InferenceStats:
    """Consume ``frames:{settings.line_id}`` in consumer group ``inference`` until ``stop`` is
    set or ``max_frames`` entries were handled (processed, duplicates and dropped).

    ``repository`` logs the inspections, ``image_store`` (None: no images kept) retains NG
    frames and masks; ``inspector`` defaults to ``Inspector(recipe, settings)``;
    ``redis_client`` to :func:`core.redis_conn.connect`. ``claim_idle_ms`` (default
    ``settings.claim_idle_ms``): pending entries idle longer are taken over from dead
    workers. ``block_ms``: XREADGROUP block timeout (keep < socket timeout). ``count``:
    entries per read; 1 (default) spreads frames evenly over several workers, so no frame
    waits behind another worker's backlog. ``stages`` (:class:`core.stages.StageTimer`)
    collects per-frame stage times: ``stream_read``, ``decode``, the Inspector's
    ``tiling``/``preprocess:<m>``/``infer:<m>``/``stitch:<m>``/``mask``/``inspect_total``,
    ``db_write`` (with NG image), ``stream_ack``, ``verdict_publish`` and ``grab_to_verdict``.
    """
    worker = _Worker(
        settings=settings,
        inspector=inspector or Inspector(recipe, settings),
        r=redis_client if redis_client is not None else connect(settings),
        repository=repository,
        image_store=image_store,
        stop=stop or threading.Event(),
        max_frames=max_frames,
        claim_idle_ms=settings.claim_idle_ms if claim_idle_ms is None else claim_idle_ms,
        block_ms=block_ms,
        count=count,
        stale_after_ms=recipe.stale_after_ms,
        max_backlog_ms=recipe.max_backlog_ms,
        stages=stages,
    )
    return worker.run()
