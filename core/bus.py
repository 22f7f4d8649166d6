"""The Redis key schema and the messages between the workers and the API.

Keys (``{line}`` = line id):

* ``frames:{line}`` - stream of :class:`core.frame.Frame` entries (``XADD MAXLEN ~``), read
  by the consumer group :data:`GROUP`;
* ``frameid:{line}`` - last frame id the acquisition worker wrote (same MULTI as its XADD);
* ``verdict:{line}`` - JSON of the latest verdict record (:func:`core.plc.verdict_record`);
* ``verdict_ts:{line}`` - ``captured_at`` of that record in integer microseconds, the order
  key of the atomic compare-and-set in :func:`publish_verdict`;
* ``camera:{line}`` - hash ``connected`` (0/1), ``heartbeat`` (Unix s), ``info`` (JSON);
* ``lines`` - set of line ids that ever reported;
* the result sequence (:func:`publish_result`, read by :mod:`core.results`):
  ``resultseq:{line}`` - the last result id (INCR, never reset); ``results:{line}`` - sorted
  set of compact results scored by result id; ``resultframes:{line}`` - frame id -> result
  id (a re-delivered frame keeps its result id); ``results_ng:{line}``,
  ``results_unknown:{line}`` - the NG / UNKNOWN result ids; ``resultcounts:{line}`` - hash
  code -> results since the line started. The four sorted sets keep the last
  ``results_maxlen`` result ids; channel ``resultevents:{line}`` carries each new result id.

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

#: Result ids kept per line in the result sequence (about 5.5 min at 30 frames/s).
DEFAULT_RESULTS_MAXLEN = 10000

# One atomic step per inspected frame (docs/DECISIONS.md, "Result sequence"):
# 1. the result sequence: a frame already in ``resultframes`` keeps its result id (a frame
#    re-delivered after a crash); otherwise INCR the line's counter, add the compact result
#    (ARGV[6] with the id appended), its frame, its NG/UNKNOWN id and count, trim every set to
#    the last ARGV[7] ids, PUBLISH the id on ARGV[8];
# 2. the compare-and-set of the latest verdict: store ARGV[1] (with the id appended) unless
#    the stored verdict was captured later (KEYS[2] > ARGV[2]). Equal times overwrite.
# Returns {result id, 1 if stored as the latest verdict, 1 if the frame already had an id}.
_PUBLISH_RESULT = """
local rid = redis.call('ZSCORE', KEYS[6], ARGV[4])
local dup = 0
if rid then
  rid = tonumber(rid)
  dup = 1
else
  rid = redis.call('INCR', KEYS[4])
  redis.call('ZADD', KEYS[5], rid, string.sub(ARGV[6], 1, -2) .. ',"result_id":' .. rid .. '}')
  redis.call('ZADD', KEYS[6], rid, ARGV[4])
  if ARGV[5] == '1' then
    redis.call('ZADD', KEYS[7], rid, rid)
  elseif ARGV[5] == '2' then
    redis.call('ZADD', KEYS[8], rid, rid)
  end
  redis.call('HINCRBY', KEYS[9], ARGV[5], 1)
  local floor = rid - tonumber(ARGV[7])
  if floor > 0 then
    for i = 5, 8 do redis.call('ZREMRANGEBYSCORE', KEYS[i], '-inf', floor) end
  end
  redis.call('PUBLISH', ARGV[8], rid)
end
local latest = 0
local stored = tonumber(redis.call('GET', KEYS[2]))
if not (stored and stored > tonumber(ARGV[2])) then
  redis.call('SET', KEYS[1], string.sub(ARGV[1], 1, -2) .. ',"result_id":' .. rid .. '}')
  redis.call('SET', KEYS[2], ARGV[2])
  latest = 1
end
redis.call('SADD', KEYS[3], ARGV[3])
return {rid, latest, dup}
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


def result_seq_key(line_id: str) -> str:
    """Key of the line's last result id (INCR; never reset, never reused)."""
    return f"resultseq:{line_id}"


def results_key(line_id: str) -> str:
    """Sorted set of the line's compact results (JSON), scored by result id."""
    return f"results:{line_id}"


def result_frames_key(line_id: str) -> str:
    """Sorted set: member frame id, score its result id (re-delivered frames keep theirs)."""
    return f"resultframes:{line_id}"


def results_ng_key(line_id: str) -> str:
    """Sorted set of the line's NG result ids (member = score = result id)."""
    return f"results_ng:{line_id}"


def results_unknown_key(line_id: str) -> str:
    """Sorted set of the line's UNKNOWN result ids (member = score = result id)."""
    return f"results_unknown:{line_id}"


def result_counts_key(line_id: str) -> str:
    """Hash verdict code (``0``/``1``/``2``) -> results since the line started."""
    return f"resultcounts:{line_id}"


def result_events_channel(line_id: str) -> str:
    """Pub/sub channel on which every new result id of the line is published."""
    return f"resultevents:{line_id}"


def plc_cursor_key(line_id: str) -> str:
    """Hash interface -> result id a PLC acknowledged (Modbus/OPC UA handshake), and
    ``<interface>:ng_reset`` -> NG total when that PLC last reset its NG count."""
    return f"plccursor:{line_id}"


def line_keys(line_id: str) -> list[str]:
    """Every per-line key (membership of :data:`LINES_KEY` aside), e.g. to remove a line."""
    return [
        stream_key(line_id),
        last_frame_id_key(line_id),
        verdict_key(line_id),
        verdict_ts_key(line_id),
        camera_key(line_id),
        result_seq_key(line_id),
        results_key(line_id),
        result_frames_key(line_id),
        results_ng_key(line_id),
        results_unknown_key(line_id),
        result_counts_key(line_id),
        plc_cursor_key(line_id),
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

    Redis 7 reports ``lag`` while it can; without it (Redis 6.2 - the embedded server -, or
    after deletions) it is ``XLEN - pending``: the inference worker deletes every entry it
    acknowledges, so what stays in the stream is either pending or not yet delivered (issue
    17.7: the pending count alone read 1 with a full stream).
    """
    key = stream_key(line_id)
    pipe = r.pipeline(transaction=True)
    pipe.xinfo_groups(key)
    pipe.xlen(key)
    try:
        groups, length = pipe.execute()
    except redis.ResponseError:  # no such stream
        return None
    for group in groups:
        if group.get("name") in (GROUP, GROUP.encode()):
            lag = group.get("lag")
            if lag is not None:
                return int(lag)
            return max(0, int(length) - int(group.get("pending", 0)))
    return None
    for group in groups:
        if group.get("name") in (GROUP, GROUP.encode()):
            lag = group.get("lag")
            return int(group.get("pending", 0) if lag is None else lag)
    return None


# -- verdicts ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Published:
    """What :func:`publish_result` did with one record."""

    #: the frame's result id in the line's sequence
    result_id: int
    #: stored as the line's latest verdict (False: a later-captured verdict was kept)
    latest: bool
    #: the frame already had a result id (re-delivered): the sequence did not move
    duplicate: bool


def defect_counts(record: dict[str, Any] | None) -> dict[str, int]:
    """Defects per class of a verdict record."""
    counts: dict[str, int] = {}
    for d in (record or {}).get("defects") or []:
        name = str(d.get("class"))
        counts[name] = counts.get(name, 0) + 1
    return counts


def compact_result(record: dict[str, Any]) -> dict[str, Any]:
    """The entry of the result sequence for a verdict record: ids, time, verdict, code,
    ``counts`` (defect class -> number of defects), latency, recipe, and in trigger mode the
    ``part_id`` (None in free-run) with the ``unknown_reason`` of an uninspected part."""
    return {
        "frame_id": record.get("frame_id"),
        "part_id": record.get("part_id"),
        "unknown_reason": record.get("unknown_reason"),
        "inspection_id": record.get("inspection_id"),
        "captured_at": record.get("captured_at"),
        "verdict": record.get("verdict"),
        "code": record.get("code"),
        "counts": defect_counts(record),
        "latency_ms": record.get("latency_ms"),
        "recipe": record.get("recipe"),
    }


def publish_result(
    r: redis.Redis,
    line_id: str,
    record: dict[str, Any],
    maxlen: int = DEFAULT_RESULTS_MAXLEN,
) -> Published:
    """Give the inspected frame of ``record`` its result id and publish its verdict.

    One Lua script, atomic inside Redis: the frame gets the next result id of the line (or
    keeps the one it already has: a re-delivered frame is not counted twice), its compact
    result joins the line's sequence (last ``maxlen`` ids kept) and the id is published on
    :func:`result_events_channel`; then the verdict record, with ``result_id``, replaces the
    latest verdict unless a later-captured one is stored (a reclaimed old frame never hides a
    newer verdict). Result ids follow the order of publishing, so a reader who has seen id
    ``n`` has seen every result up to ``n`` - however the workers interleave. ``record``
    needs ``frame_id``, ``code`` and an ISO-8601 ``captured_at``.
    """
    if maxlen < 1:
        raise ValueError("maxlen must be at least 1")
    body = {k: v for k, v in record.items() if k != "result_id"}
    captured_us = round(parse_iso(str(body["captured_at"])).timestamp() * 1_000_000)
    script = r.register_script(_PUBLISH_RESULT)
    rid, latest, dup = script(
        keys=[
            verdict_key(line_id), verdict_ts_key(line_id), LINES_KEY,
            result_seq_key(line_id), results_key(line_id), result_frames_key(line_id),
            results_ng_key(line_id), results_unknown_key(line_id), result_counts_key(line_id),
        ],
        args=[
            json.dumps(body), captured_us, line_id, int(body["frame_id"]), int(body["code"]),
            json.dumps(compact_result(body)), int(maxlen), result_events_channel(line_id),
        ],
    )
    return Published(result_id=int(rid), latest=bool(latest), duplicate=bool(dup))


def publish_verdict(r: redis.Redis, line_id: str, record: dict[str, Any]) -> bool:
    """:func:`publish_result`; True when ``record`` became the latest verdict of the line,
    False when a later-captured one was kept."""
    return publish_result(r, line_id, record).latest


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


def parse_camera(raw: dict[bytes, bytes]) -> CameraStatus | None:
    """The :class:`CameraStatus` of a ``camera:{line}`` hash (None when empty)."""
    if not raw:
        return None
    return CameraStatus(
        connected=raw.get(b"connected") == b"1",
        heartbeat=float(raw.get(b"heartbeat", b"0")),
        info=json.loads(raw[b"info"]) if b"info" in raw else {},
    )


def camera_status(r: redis.Redis, line_id: str) -> CameraStatus | None:
    """The camera status of a line, or None when no acquisition worker ever reported."""
    return parse_camera(r.hgetall(camera_key(line_id)))


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
        camera=parse_camera(raw_camera),
        known=bool(known),
    )


def known_lines(r: redis.Redis) -> list[str]:
    """Line ids that have reported a camera status or a verdict."""
    return sorted(x.decode() for x in r.smembers(LINES_KEY))
