"""The Redis key schema and the messages between the workers and the API.

Keys (``{line}`` = line id):

* ``frames:{line}`` - stream of :class:`core.frame.Frame` entries (``XADD MAXLEN ~``), read
  by the consumer group :data:`GROUP`;
* ``frameid:{line}`` - last frame id the acquisition worker wrote (same MULTI as its XADD);
* ``verdict:{line}`` - JSON of the latest verdict record (:func:`core.plc.verdict_record`);
* ``verdict_ts:{line}`` - ``captured_at`` of that record in integer microseconds, the order
  key of the atomic compare-and-set in :func:`publish_verdict`;
* ``camera:{line}`` - hash ``connected`` (0/1), ``heartbeat`` (Unix s), ``info`` (JSON);
* ``lines`` - set of line ids that ever reported.

The API answers the PLC from these keys only (no database hit).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

import redis

from core.timeutil import parse_iso

LINES_KEY = "lines"
#: Consumer group of the inference workers on every ``frames:{line}`` stream.
GROUP = "inference"
#: The camera counts as disconnected when the acquisition heartbeat is older than this.
CAMERA_HEARTBEAT_TIMEOUT_S = 3.0

# Compare-and-set of the latest verdict, atomic inside Redis: store ARGV[1] unless the stored
# verdict was captured later (KEYS[2] > ARGV[2]). Equal times overwrite (a re-delivered frame).
_PUBLISH_IF_NOT_OLDER = """
local stored = tonumber(redis.call('GET', KEYS[2]))
if stored and stored > tonumber(ARGV[2]) then
  return 0
end
redis.call('SET', KEYS[1], ARGV[1])
redis.call('SET', KEYS[2], ARGV[2])
redis.call('SADD', KEYS[3], ARGV[3])
return 1
"""


# -- keys -------------------------------------------------------------------------------------
def stream_key(line_id: str) -> str:
    """Redis stream key holding the frames of one line."""
    return f"frames:{line_id}"


def last_frame_id_key(line_id: str) -> str:
    """Key of the last frame id the acquisition worker wrote for the line.

    Written in the same transaction as the frame's XADD and read at start-up, so frame ids
    keep increasing per line across reconnects and worker restarts.
    """
    return f"frameid:{line_id}"


def verdict_key(line_id: str) -> str:
    """Key of the latest verdict JSON of a line."""
    return f"verdict:{line_id}"


def verdict_ts_key(line_id: str) -> str:
    """Key of the capture time (integer microseconds) of the verdict in :func:`verdict_key`."""
    return f"verdict_ts:{line_id}"


def camera_key(line_id: str) -> str:
    """Key of the camera status hash of a line."""
    return f"camera:{line_id}"


def line_keys(line_id: str) -> list[str]:
    """Every per-line key (membership of :data:`LINES_KEY` aside), e.g. to remove a line."""
    return [
        stream_key(line_id),
        last_frame_id_key(line_id),
        verdict_key(line_id),
        verdict_ts_key(line_id),
        camera_key(line_id),
    ]


# -- stream -----------------------------------------------------------------------------------
def ensure_group(r: redis.Redis, line_id: str) -> None:
    """Create the consumer group :data:`GROUP` on ``frames:{line}`` (MKSTREAM, from id 0)."""
    try:
        r.xgroup_create(stream_key(line_id), GROUP, id="0", mkstream=True)
    except redis.ResponseError as exc:
        if "BUSYGROUP" not in str(exc):
            raise


def stream_lag(r: redis.Redis, line_id: str) -> int | None:
    """Entries of ``frames:{line}`` not yet read by the group (None: no stream or group yet).

    Redis 7 reports ``lag``; when it does not know it (older Redis, or after trimming) the
    group's pending count is the best estimate.
    """
    try:
        groups = r.xinfo_groups(stream_key(line_id))
    except redis.ResponseError:  # no such stream
        return None
    for group in groups:
        if group.get("name") in (GROUP, GROUP.encode()):
            lag = group.get("lag")
            return int(group.get("pending", 0) if lag is None else lag)
    return None


# -- verdicts ---------------------------------------------------------------------------------
def publish_verdict(r: redis.Redis, line_id: str, record: dict[str, Any]) -> bool:
    """Store ``record`` as the latest verdict of a line unless a later-captured one is stored.

    One atomic compare-and-set (a Lua script): two workers publishing at once can never let
    an older frame's verdict (e.g. a reclaimed frame) replace a newer one. ``record`` needs
    an ISO-8601 ``captured_at``. Returns True when stored, False when a newer one was kept.
    """
    captured_us = round(parse_iso(str(record["captured_at"])).timestamp() * 1_000_000)
    script = r.register_script(_PUBLISH_IF_NOT_OLDER)
    stored = script(
        keys=[verdict_key(line_id), verdict_ts_key(line_id), LINES_KEY],
        args=[json.dumps(record), captured_us, line_id],
    )
    return bool(stored)


def latest_verdict(r: redis.Redis, line_id: str) -> dict[str, Any] | None:
    """The latest verdict record of a line, or None when the line never reported one."""
    raw = r.get(verdict_key(line_id))
    return json.loads(raw) if raw else None


# -- camera -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class CameraStatus:
    """What the acquisition worker last said about its camera."""

    connected: bool
    heartbeat: float
    info: dict[str, Any]

    def alive(self, now: float | None = None) -> bool:
        """Connected and the acquisition worker's heartbeat is recent."""
        now = time.time() if now is None else now
        return self.connected and now - self.heartbeat <= CAMERA_HEARTBEAT_TIMEOUT_S


def set_camera_status(
    r: redis.Redis, line_id: str, connected: bool, info: dict[str, Any] | None = None
) -> None:
    """Heartbeat from the acquisition worker (call at least every second)."""
    mapping: dict[str, str] = {
        "connected": "1" if connected else "0",
        "heartbeat": repr(time.time()),
    }
    if info is not None:
        mapping["info"] = json.dumps(info)
    pipe = r.pipeline()
    pipe.hset(camera_key(line_id), mapping=mapping)
    pipe.sadd(LINES_KEY, line_id)
    pipe.execute()


def _parse_camera(raw: dict[bytes, bytes]) -> CameraStatus | None:
    if not raw:
        return None
    return CameraStatus(
        connected=raw.get(b"connected") == b"1",
        heartbeat=float(raw.get(b"heartbeat", b"0")),
        info=json.loads(raw[b"info"]) if b"info" in raw else {},
    )


def camera_status(r: redis.Redis, line_id: str) -> CameraStatus | None:
    """The camera status of a line, or None when no acquisition worker ever reported."""
    return _parse_camera(r.hgetall(camera_key(line_id)))


# -- what the PLC endpoint reads --------------------------------------------------------------
@dataclass(frozen=True)
class LineSnapshot:
    """Latest verdict record, camera status and whether the line ever reported, read at once."""

    verdict: dict[str, Any] | None
    camera: CameraStatus | None
    known: bool


def line_snapshot(r: redis.Redis, line_id: str) -> LineSnapshot:
    """:func:`latest_verdict`, :func:`camera_status` and membership of ``lines`` in one
    round trip (the PLC polling path). Raises ValueError on a corrupt record."""
    pipe = r.pipeline(transaction=False)
    pipe.get(verdict_key(line_id))
    pipe.hgetall(camera_key(line_id))
    pipe.sismember(LINES_KEY, line_id)
    raw_verdict, raw_camera, known = pipe.execute()
    return LineSnapshot(
        verdict=json.loads(raw_verdict) if raw_verdict else None,
        camera=_parse_camera(raw_camera),
        known=bool(known),
    )


def known_lines(r: redis.Redis) -> list[str]:
    """Line ids that have reported a camera status or a verdict."""
    return sorted(x.decode() for x in r.smembers(LINES_KEY))
