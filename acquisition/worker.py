"""Acquisition worker: camera -> Redis stream ``frames:{line}`` (docs/CONTRACT.md, metrics and
delivery guarantees).

Grab strategy and buffers
-------------------------
``GrabStrategy_OneByOne`` with ``MaxNumBuffer = recipe.camera.transport.grab_buffers``
(default 16): every filled buffer is handed over in order, nothing is discarded on the host.
``LatestImageOnly`` / ``LatestImages`` overwrite frames the worker has not read yet - wrong
for an inspection that must see every frame. The loop needs about 2 ms per frame (median
1.9 ms, p99 10.5 ms: MULTI with the XADD of 1.25 MB to a local Redis, brightness on a 1/16
subsample), 1/15 of the 33 ms frame period at 30 fps, so the queue stays empty; 16 buffers
(0.5 s, 20 MB of Mono8 1296 x 966) ride out a Redis or GC stall of half a second. If the host
still falls behind, a real GigE camera finds no free buffer and the frame is lost on the
wire: the BlockID gap shows it and it is counted as dropped.

Measured with this worker on the pylon 26.9 emulator (2 CPU cores, Redis on localhost,
1296 x 966 Mono8, ``AcquisitionFrameRate`` 5000 = "as fast as it goes"):

* replaying the demo PNGs the emulator tops out at 26-31 fps (it decodes one PNG per frame,
  about 20 ms); 300 frames grabbed and streamed, 0 frame id gaps, 0 dropped, with 16 and with
  2 buffers;
* its test pattern tops out at 88-94 fps; 600 frames, 0 gaps, 0 dropped, 16 or 2 buffers;
* a deliberately slow consumer (50 ms per frame at 30 fps, plain pypylon): OneByOne still 0
  gaps (the emulator waits for a free buffer, a real camera does not), ``LatestImageOnly``
  skipped 53 of 113 frames - visible as BlockID gaps, which is what the gap counter counts.

The emulator cannot overrun OneByOne, so the buffer count is sized from the loop's cost
above, not from an observed loss.

Frame ids
---------
The contract wants camera frame ids (BlockID) with visible gaps, and the inspection log has a
unique ``(line, frame_id)``. A camera's BlockID restarts when grabbing restarts (reconnect,
worker restart; the emulator starts at 0, GigE at 1) and 16-bit GigE BlockIDs wrap after
65535. So the stream carries a *line frame id*: it advances by exactly the camera's BlockID
difference (a gap of n lost frames stays a gap of n), and whenever the camera sequence
restarts (new grab session, or the id goes backwards without a 16-bit wrap, or jumps further
than the elapsed time allows) it continues at ``last + 1`` without counting a drop. The last
id is stored in Redis (``frameid:{line}``, written in the same MULTI as the XADD) and read
at start-up (also from the newest stream entry), so ids stay unique per line across
reconnects and worker restarts. Without a usable BlockID (``UINT64_MAX``) the InstantCamera's
image number is used instead.

Redis is not the record, the inspection log is: a Redis that lost its data or came back from
an older snapshot holds an older ``frameid:{line}`` than the log (issue 17: ids 27-41 were
issued again while the log held 1..41, and the new frames were dropped as duplicates). So
at start-up the worker also asks the ``frame_id_floor`` callable the composition root gives
it (``deploy.wiring``: the log's highest frame id of the line) and continues after the
largest of the three; it retries with back-off until the log answers. While running, the
tracker keeps its last id in memory, so a Redis restart under a running worker changes
nothing.

Trigger mode = parts
--------------------
With ``trigger_mode`` ``hardware`` or ``software`` one trigger is one frame is one part, and
the line frame id is the part id (``Frame.part_id``): it comes from the camera's BlockID, so
a part the camera counted but the host never received complete still has its id. An
incomplete/failed buffer (``GrabSucceeded`` false, BlockID known) is streamed as a frame
without pixels, ``missed = grab_failed``; a gap of n in the BlockID sequence streams the n
missing part ids, ``missed = part_missed`` - before the frame after the gap, so the stream
stays in part order. The inference worker logs them ``UNKNOWN`` with that reason through
its normal write path (result sequence, REST, Modbus, OPC UA). A trigger the camera ignored
(it was still busy) consumes no BlockID and is invisible here: the PLC compares its own
trigger count with the part ids (docs/PLC.md). In free-run nothing of this changes: a lost
frame is a counted drop, not a result.

Counters
--------
``FRAMES`` counts complete frames. Dropped (``FRAMES_DROPPED``) = BlockID gaps + incomplete
or failed buffers (also in ``FRAMES_INCOMPLETE``; never streamed) + frames whose XADD failed
(Redis down) + stream entries trimmed by ``MAXLEN ~`` before any consumer group read them.
(A 1.25 MB entry fills a stream node on its own - ``stream-node-max-bytes`` is 4 KB - so
``MAXLEN ~`` trims frames exactly to MAXLEN.)

Trimmed-unread detection: every XADD runs in one MULTI with ``XLEN`` and ``XINFO GROUPS``, so
the trim and the groups' ``last-delivered-id`` are seen atomically. The worker keeps the ids
it wrote in order (at most about MAXLEN + 100 of them); ``length before + 1 - XLEN`` is how
many entries left the stream since the last XADD - trimmed by MAXLEN, deleted by the
inference worker after their XACK (delivered ones only), or lost with a Redis that restarted
without persistence - and each of them newer than the furthest ``last-delivered-id`` seen
(``0-0`` when no group exists yet: the inference group starts at id 0) was never delivered:
a drop. Delivered-but-unacked entries that are trimmed are
the inference worker's to count. Entries written before this worker started are known only
by count and first/last id: if the slowest group had delivered their last one they count as
read, if it had not reached their first one as unread, in between (rare) as read.

Camera loss
-----------
Open failures, exceptions while grabbing, ``IsCameraDeviceRemoved()`` and - in free-run - no
buffer at all for ``max(3 s, 10 frame periods)`` close the camera and re-open it with
exponential back-off (0.5 s doubling to 10 s; reset by the first frame); every re-open
attempt counts in ``CAMERA_RECONNECTS``. A heartbeat thread writes ``camera:{line}``
(``set_camera_status``) and the ``CAMERA_CONNECTED`` gauge every 0.25 s whatever the camera
does, and at once when the camera connects or disconnects; on stop the camera is closed
and connected=0 is written.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import redis
from pypylon import genicam, pylon

from acquisition.camera import close_camera, open_camera
from core.bus import last_frame_id_key, set_camera_status, stream_key
from core.frame import Frame, missed_part
from core.metrics import (
    CAMERA_CONNECTED,
    CAMERA_RECONNECTS,
    FRAME_BRIGHTNESS,
    FRAMES,
    FRAMES_DROPPED,
    FRAMES_INCOMPLETE,
)
from core.recipe import Recipe
from core.redis_conn import connect
from core.settings import Settings
from core.stages import StageTimer

log = logging.getLogger(__name__)

HEARTBEAT_INTERVAL_S = 0.25
RETRIEVE_TIMEOUT_MS = 200
BACKOFF_INITIAL_S = 0.5
BACKOFF_MAX_S = 10.0
#: pylon reports an unsupported BlockID as UINT64_MAX.
_INVALID_BLOCK_ID = 2**64 - 1
_BLOCK_ID_16 = 65535
#: No camera produces more frames per second than this: a larger jump is a new sequence.
_MAX_PLAUSIBLE_FPS = 2000.0
#: ``Frame.missed`` reasons of a part without a complete image.
GRAB_FAILED, PART_MISSED = "grab_failed", "part_missed"

_PIXEL_TYPES = {
    pylon.PixelType_Mono8: "Mono8",
    pylon.PixelType_RGB8packed: "RGB8",
    pylon.PixelType_BGR8packed: "BGR8",
}


@dataclass
class AcquisitionStats:
    """Live counters of one acquisition worker (read by benchmarks and tests)."""

    #: Complete frames grabbed.
    grabbed: int = 0
    #: Frames written to the stream.
    streamed: int = 0
    #: All lost frames: gaps + incomplete + failed writes + trimmed unread.
    dropped: int = 0
    #: Frames missing in the camera's frame id sequence.
    gaps: int = 0
    #: Incompletely grabbed / failed buffers.
    incomplete: int = 0
    #: Frames that could not be written to Redis.
    write_failures: int = 0
    #: Stream entries trimmed by MAXLEN before any consumer group read them.
    trimmed_unread: int = 0
    #: Camera re-open attempts.
    reconnects: int = 0
    #: Trigger mode: parts streamed without an image (``grab_failed``/``part_missed``).
    missed_parts: int = 0
    #: Line frame id of the last frame written (or seen), None before the first.
    last_frame_id: int | None = None
    connected: bool = False
    started_at: float = field(default_factory=time.time)
    first_frame_at: float | None = None
    last_frame_at: float | None = None

    def fps(self) -> float:
        """Complete frames per second between the first and the last frame."""
        if not self.first_frame_at or not self.last_frame_at or self.grabbed < 2:
            return 0.0
        dt = self.last_frame_at - self.first_frame_at
        return (self.grabbed - 1) / dt if dt > 0 else 0.0

    def as_dict(self) -> dict[str, Any]:
        """The counters as a JSON-able dict."""
        d = asdict(self)
        d["fps"] = round(self.fps(), 2)
        return d


class FrameIdTracker:
    """Turns camera frame counters (BlockID) into a unique, gap-preserving line frame id."""

    def __init__(self, last_id: int = 0) -> None:
        self.last_id = last_id
        self._prev_raw: int | None = None
        self._prev_t = 0.0

    def new_session(self) -> None:
        """The camera was (re)opened: its counter may restart; continue at ``last + 1``."""
        self._prev_raw = None

    def next(self, raw: int | None, now: float | None = None) -> tuple[int, int]:
        """Line frame id for the camera counter ``raw`` and the number of frames missing."""
        now = time.monotonic() if now is None else now
        delta = 1
        if raw is not None and self._prev_raw is not None:
            d = raw - self._prev_raw
            if d <= 0 and self._prev_raw <= _BLOCK_ID_16 and raw < self._prev_raw:
                wrapped = raw + _BLOCK_ID_16 - self._prev_raw  # GigE 16-bit: 65535 -> 1
                d = wrapped if self._prev_raw > _BLOCK_ID_16 - 4096 and raw < 4096 else d
            limit = 16 + (now - self._prev_t) * _MAX_PLAUSIBLE_FPS
            if 0 < d <= limit:
                delta = d
            else:
                log.warning(
                    "camera frame counter went from %d to %d: new sequence, continuing at %d",
                    self._prev_raw, raw, self.last_id + 1,
                )
        self._prev_raw, self._prev_t = raw, now
        self.last_id += delta
        return self.last_id, delta - 1


def _parse_id(entry_id: bytes | str) -> tuple[int, int]:
    s = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
    ms, _, seq = s.partition("-")
    return int(ms), int(seq or 0)


class TrimMonitor:
    """Counts stream entries trimmed by ``MAXLEN ~`` before a consumer group read them."""

    def __init__(
        self,
        maxlen: int,
        existing: int = 0,
        first_id: tuple[int, int] | None = None,
        last_id: tuple[int, int] | None = None,
    ) -> None:
        #: The stream's MAXLEN: ``XADD MAXLEN ~`` never trims below it.
        self.maxlen = maxlen
        self.written: deque[tuple[int, int]] = deque()
        #: Entries older than ours (written before this worker started): count and id range.
        self.old_count = existing
        self.old_first = first_id or (0, 0)
        self.old_last = last_id or (0, 0)
        #: the furthest ``last-delivered-id`` seen (a group recreated after a Redis restart
        #: starts again at 0-0; what was delivered before stays delivered)
        self.delivered: tuple[int, int] = (0, 0)

    def on_xadd(
        self, entry_id: tuple[int, int], length_after: int, delivered: tuple[int, int]
    ) -> int:
        """Account for one XADD; return how many entries left the stream never delivered.

        ``delivered`` is the slowest group's ``last-delivered-id`` seen atomically with the
        XADD (``(0, 0)`` when there is no group). Entries leave the stream by ``MAXLEN ~``
        (oldest first), because the inference worker deleted them after acknowledging them
        (only delivered ones), or all at once when Redis restarted without them or the
        stream was deleted. Either way the ones newer than the furthest delivery ever seen
        were never inspected: drops.
        """
        self.delivered = max(self.delivered, delivered)
        before = self.old_count + len(self.written)
        self.written.append(entry_id)
        gone = before + 1 - length_after
        if gone < 0:
            # Someone else added entries or the bookkeeping is off: resynchronise.
            self.old_count = max(0, length_after - len(self.written))
            return 0
        unread = 0
        k = min(gone, self.old_count)
        if k:
            self.old_count -= k
            if self.delivered < self.old_first:
                unread += k
        for _ in range(min(gone - k, len(self.written) - 1)):
            if self.written.popleft() > self.delivered:
                unread += 1
        return unread


# Ids of the first and last entry and the last entry's frame_id, without moving image data
# to the client.
_STREAM_EDGES_LUA = """
local first = redis.call('XRANGE', KEYS[1], '-', '+', 'COUNT', 1)
local last = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)
local fid = ''
if last[1] then
  local f = last[1][2]
  for i = 1, #f, 2 do
    if f[i] == 'frame_id' then fid = f[i + 1] end
  end
end
local a = ''
local b = ''
if first[1] then a = first[1][1] end
if last[1] then b = last[1][1] end
return {a, b, fid, redis.call('XLEN', KEYS[1])}
"""


class AcquisitionWorker:
    """Grab loop of one line; :meth:`run` blocks until ``stop`` is set or ``max_frames``."""

    backoff_initial_s = BACKOFF_INITIAL_S
    backoff_max_s = BACKOFF_MAX_S

    def __init__(
        self,
        settings: Settings,
        recipe: Recipe,
        stop: threading.Event | None = None,
        *,
        redis_client: redis.Redis | None = None,
        stats: AcquisitionStats | None = None,
        stages: StageTimer | None = None,
        frame_id_floor: Callable[[], int | None] | None = None,
    ) -> None:
        self.settings = settings
        #: highest frame id of the line already logged (None: none); ids continue above it
        self.frame_id_floor = frame_id_floor
        #: per-stage times: ``grab_wait`` (RetrieveResult), ``grab`` (buffer -> Frame bytes),
        #: ``stream_write`` (the XADD transaction)
        self.stages = stages or StageTimer()
        self.recipe = recipe
        self.line = settings.line_id
        self.key = stream_key(self.line)
        self.id_key = last_frame_id_key(self.line)
        self.maxlen = recipe.stream_maxlen
        self.stop = stop or threading.Event()
        self.r = redis_client or connect(settings)
        self.stats = stats or AcquisitionStats()
        #: The open camera (None while disconnected); tests may poke the emulator through it.
        self.camera: pylon.InstantCamera | None = None
        self.info: dict[str, Any] = {}
        self.ids = FrameIdTracker()
        self.trim = TrimMonitor(self.maxlen)
        #: one frame per trigger: frame ids are part ids, lost ones are streamed as missed
        self._triggered = recipe.camera.triggered
        rate = settings.frame_rate or recipe.camera.frame_rate
        self._watchdog_s = max(3.0, 10.0 / rate) if rate > 0 else 3.0
        self._connected_gauge = CAMERA_CONNECTED.labels(line=self.line)
        self._hb_thread: threading.Thread | None = None
        self._hb_stop = threading.Event()
        self._hb_wake = threading.Event()
        self._last_error_log = 0.0
        self._last_buffer_t = time.monotonic()

    # ------------------------------------------------------------------ public

    def run(self, max_frames: int | None = None) -> AcquisitionStats:
        """Grab until stopped (or ``max_frames`` complete frames); never raises on camera
        or Redis faults."""
        self._set_connected(False)
        self._start_heartbeat()
        try:
            if not self._init_from_redis():
                return self.stats
            backoff = self.backoff_initial_s
            attempts = 0
            while not self.stop.is_set():
                if max_frames is not None and self.stats.grabbed >= max_frames:
                    break
                if self.camera is None:
                    if attempts:
                        self.stats.reconnects += 1
                        CAMERA_RECONNECTS.labels(line=self.line).inc()
                    attempts += 1
                    if not self._open():
                        self.stop.wait(backoff)
                        backoff = min(backoff * 2, self.backoff_max_s)
                        continue
                try:
                    got = self._grab_one()
                except Exception:  # noqa: BLE001 - a bug must not kill the line: log, re-open
                    log.exception("acquisition %s: unexpected error, re-opening the camera",
                                  self.line)
                    got = None
                if got is None:  # camera lost
                    self._close()
                    self.stop.wait(backoff)
                    backoff = min(backoff * 2, self.backoff_max_s)
                elif got:
                    backoff = self.backoff_initial_s
        finally:
            self._close()
            self._hb_stop.set()
            self._hb_wake.set()
            if self._hb_thread is not None:
                self._hb_thread.join(timeout=5)
            self._heartbeat_once()
        log.info("acquisition %s stopped: %s", self.line, self.stats.as_dict())
        return self.stats

    # ------------------------------------------------------------------ camera

    def _open(self) -> bool:
        try:
            cam, info = open_camera(self.settings, self.recipe)
        except Exception as exc:  # noqa: BLE001 - any failure: retry with back-off
            self._log_error("camera %s cannot be opened: %s", self.settings.camera or "(first)",
                            exc)
            return False
        try:
            cam.StartGrabbing(pylon.GrabStrategy_OneByOne)
        except Exception as exc:  # noqa: BLE001
            self._log_error("camera %s cannot start grabbing: %s", info.get("serial"), exc)
            close_camera(cam)
            return False
        self.camera, self.info = cam, info
        self.ids.new_session()
        self._last_buffer_t = time.monotonic()
        self._set_connected(True)
        log.info("camera %s grabbing for line %s", info.get("serial"), self.line)
        return True

    def _close(self) -> None:
        cam, self.camera = self.camera, None
        if cam is not None:
            self._set_connected(False)
            close_camera(cam)

    def _grab_one(self) -> bool | None:
        """Retrieve one buffer: True = frame streamed, False = nothing new, None = lost."""
        cam = self.camera
        assert cam is not None
        try:
            if cam.IsCameraDeviceRemoved():
                self._log_error("camera %s removed", self.info.get("serial"))
                return None
            if not cam.IsGrabbing():
                self._log_error("camera %s stopped grabbing", self.info.get("serial"))
                return None
            t_wait = time.perf_counter()
            res = cam.RetrieveResult(RETRIEVE_TIMEOUT_MS, pylon.TimeoutHandling_Return)
            self.stages.add("grab_wait", time.perf_counter() - t_wait)
        except Exception as exc:  # noqa: BLE001 - pylon runtime/timeout/logical errors
            self._log_error("camera %s grab failed: %s", self.info.get("serial"), exc)
            return None
        now = time.monotonic()
        if res is None or not res.IsValid():
            if not self._triggered and now - self._last_buffer_t > self._watchdog_s:
                self._log_error("camera %s: no frame for %.1f s", self.info.get("serial"),
                                now - self._last_buffer_t)
                return None
            return False
        self._last_buffer_t = now
        try:
            return self._handle(res, now)
        except genicam.GenericException as exc:
            self._log_error("camera %s: bad grab result: %s", self.info.get("serial"), exc)
            return None
        finally:
            res.Release()

    def _handle(self, res: pylon.GrabResult, now: float) -> bool:
        host_ts = time.time()
        t_grab = time.perf_counter()
        raw = _frame_counter(res)
        frame_id, gap = self.ids.next(raw, now)
        st = self.stats
        if gap:
            st.gaps += gap
            self._drop(gap)
            if self._triggered:  # every part the camera counted gets its result
                for part in range(frame_id - gap, frame_id):
                    self._publish_missed(part, PART_MISSED, host_ts)
        if not res.GrabSucceeded():
            st.incomplete += 1
            FRAMES_INCOMPLETE.labels(line=self.line).inc()
            self._drop(1)
            self._log_error(
                "frame %d (camera id %s) incomplete: 0x%X %s", frame_id, raw,
                res.GetErrorCode() & 0xFFFFFFFF, res.GetErrorDescription(),
            )
            if self._triggered:
                self._publish_missed(frame_id, GRAB_FAILED, host_ts, _timestamp(res))
            st.last_frame_id = frame_id
            return False
        arr = res.GetArray()
        pixel_format = _PIXEL_TYPES.get(res.GetPixelType(), "")
        if not pixel_format:
            arr = _convert(res)
            pixel_format = "Mono8" if arr.ndim == 2 else "RGB8"
        frame = Frame(
            line_id=self.line,
            frame_id=frame_id,
            camera_ts=int(res.GetTimeStamp()),
            host_ts=host_ts,
            width=int(arr.shape[1]),
            height=int(arr.shape[0]),
            pixel_format=pixel_format,
            data=np.ascontiguousarray(arr).tobytes(),
            part_id=frame_id if self._triggered else None,
        )
        st.grabbed += 1
        st.first_frame_at = st.first_frame_at or host_ts
        st.last_frame_at = host_ts
        FRAMES.labels(line=self.line).inc()
        FRAME_BRIGHTNESS.labels(line=self.line).set(float(arr[::4, ::4].mean()))
        t_write = time.perf_counter()
        self.stages.add("grab", t_write - t_grab)
        self._publish(frame)
        self.stages.add("stream_write", time.perf_counter() - t_write)
        st.last_frame_id = frame_id
        return True

    def _publish_missed(self, part_id: int, reason: str, host_ts: float,
                        camera_ts: int = 0) -> None:
        """Stream the record of a part without a complete image (logged ``UNKNOWN``)."""
        self.stats.missed_parts += 1
        self._log_error("line %s part %d: %s, streamed as UNKNOWN", self.line, part_id, reason)
        self._publish(missed_part(self.line, part_id, reason, host_ts, camera_ts))

    # ------------------------------------------------------------------ Redis

    def _init_from_redis(self) -> bool:
        """Read the line's last frame id and the stream's state (retrying while Redis is
        down); False when stopped before it succeeded."""
        backoff = 0.1
        while not self.stop.is_set():
            try:
                stored = self.r.get(self.id_key)
                first, last, fid, length = self.r.eval(_STREAM_EDGES_LUA, 1, self.key)
                logged = self.frame_id_floor() if self.frame_id_floor else None
                break
            except redis.RedisError as exc:
                self._log_error("Redis not reachable (%s): retrying", exc)
            except Exception as exc:  # noqa: BLE001 - the log's driver errors: retry
                self._log_error("inspection log not reachable (%s): retrying", exc)
            self.stop.wait(backoff)
            backoff = min(backoff * 2, 5.0)
        else:
            return False
        last_id = max(int(stored or 0), int(fid or 0), int(logged or 0))
        if logged is not None and int(logged) > max(int(stored or 0), int(fid or 0)):
            log.warning(
                "acquisition %s: Redis says frame %s, the log already holds %s: Redis lost "
                "data or was restored from an older snapshot; continuing after the log",
                self.line, max(int(stored or 0), int(fid or 0)), logged,
            )
        self.ids = FrameIdTracker(last_id)
        self.trim = TrimMonitor(
            self.maxlen,
            int(length),
            _parse_id(first) if first else None,
            _parse_id(last) if last else None,
        )
        log.info("acquisition %s: stream %s has %d entries, frame ids continue after %d",
                 self.line, self.key, int(length), last_id)
        return True

    def _publish(self, frame: Frame) -> None:
        pipe = self.r.pipeline(transaction=True)
        pipe.xadd(self.key, frame.to_fields(), maxlen=self.maxlen, approximate=True)
        pipe.set(self.id_key, frame.frame_id)
        pipe.xlen(self.key)
        pipe.xinfo_groups(self.key)
        try:
            entry_id, _, length, groups = pipe.execute(raise_on_error=False)
            if isinstance(entry_id, Exception):
                raise entry_id
        except redis.RedisError as exc:
            self.stats.write_failures += 1
            self._drop(1)
            self._log_error("frame %d not written to %s: %s", frame.frame_id, self.key, exc)
            return
        if not frame.missed:
            self.stats.streamed += 1
        delivered = (0, 0)
        if isinstance(groups, list) and groups:
            delivered = min(_parse_id(g["last-delivered-id"]) for g in groups)
        if isinstance(length, int):
            lost = self.trim.on_xadd(_parse_id(entry_id), length, delivered)
            if lost:
                self.stats.trimmed_unread += lost
                self._drop(lost)
                self._log_error("%d frames of %s left the stream unread (MAXLEN %d, or "
                                "Redis restarted without them): counted as dropped",
                                lost, self.key, self.maxlen)

    # ------------------------------------------------------------------ status

    def _drop(self, n: int) -> None:
        self.stats.dropped += n
        FRAMES_DROPPED.labels(line=self.line).inc(n)

    def _set_connected(self, connected: bool) -> None:
        self.stats.connected = connected
        self._connected_gauge.set(1 if connected else 0)
        self._hb_wake.set()  # publish the change now, not at the next tick

    def _start_heartbeat(self) -> None:
        self._hb_stop.clear()
        self._hb_thread = threading.Thread(
            target=self._heartbeat_loop, name=f"acq-heartbeat-{self.line}", daemon=True
        )
        self._hb_thread.start()

    def _heartbeat_loop(self) -> None:
        while not self._hb_stop.is_set():
            self._hb_wake.clear()
            self._heartbeat_once()
            self._hb_wake.wait(HEARTBEAT_INTERVAL_S)

    def _heartbeat_once(self) -> None:
        connected = self.stats.connected
        self._connected_gauge.set(1 if connected else 0)
        info = {
            **self.info,
            "line_id": self.line,
            "stats": {
                k: v for k, v in self.stats.as_dict().items()
                if k in ("grabbed", "dropped", "incomplete", "reconnects", "last_frame_id", "fps",
                         "missed_parts")
            },
        }
        try:
            set_camera_status(self.r, self.line, connected, info)
        except redis.RedisError as exc:
            self._log_error("heartbeat to Redis failed: %s", exc)

    def _log_error(self, msg: str, *args: object) -> None:
        """Warn, at most once per second per worker (a dead camera must not flood the log)."""
        now = time.monotonic()
        if now - self._last_error_log >= 1.0:
            self._last_error_log = now
            log.warning(msg, *args)
        else:
            log.debug(msg, *args)


def _frame_counter(res: pylon.GrabResult) -> int | None:
    """The camera's BlockID, else the InstantCamera image number, else None."""
    try:
        block = int(res.GetBlockID())
        if block != _INVALID_BLOCK_ID:
            return block
    except genicam.GenericException:
        pass
    try:
        return int(res.GetImageNumber())
    except genicam.GenericException:
        return None


def _timestamp(res: pylon.GrabResult) -> int:
    """The camera timestamp of a (possibly failed) grab result; 0 when it has none."""
    try:
        return int(res.GetTimeStamp())
    except genicam.GenericException:
        return 0


def _convert(res: pylon.GrabResult) -> np.ndarray:
    """Pixel formats the Frame message cannot carry (Mono12, Bayer...) -> Mono8 / RGB8."""
    conv = pylon.ImageFormatConverter()
    mono = pylon.IsMono(res.GetPixelType())
    conv.OutputPixelFormat = pylon.PixelType_Mono8 if mono else pylon.PixelType_RGB8packed
    return conv.Convert(res).GetArray()


def run_acquisition(
    settings: Settings,
    recipe: Recipe,
    stop: threading.Event | None = None,
    max_frames: int | None = None,
    *,
    stats: AcquisitionStats | None = None,
    redis_client: redis.Redis | None = None,
    stages: StageTimer | None = None,
    frame_id_floor: Callable[[], int | None] | None = None,
) -> AcquisitionStats:
    """Grab frames of ``settings.camera`` into ``frames:{line}`` until ``stop`` is set.

    ``max_frames`` stops after that many complete frames. Pass ``stats`` to read the
    counters live from another thread (a benchmark); the same object is returned. Pass
    ``stages`` to read the per-stage times (:class:`core.stages.StageTimer`).
    ``frame_id_floor`` returns the line's highest logged frame id: new ids start above it
    (``deploy.wiring.run_acquisition_worker`` passes the inspection log's).
    """
    worker = AcquisitionWorker(
        settings, recipe, stop, redis_client=redis_client, stats=stats, stages=stages,
        frame_id_floor=frame_id_floor,
    )
    return worker.run(max_frames=max_frames)
