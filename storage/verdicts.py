"""Redis keys shared by the workers and the API: latest verdict and camera status per line.

* ``verdict:{line}`` — JSON of the latest committed inspection of the line.
* ``camera:{line}`` — hash ``connected`` (0/1), ``heartbeat`` (Unix s), ``info`` (JSON).
* ``lines`` — set of line ids that ever reported.

The API answers the PLC from these keys only (no database hit).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

import redis

LINES_KEY = "lines"
#: The camera counts as disconnected when the acquisition heartbeat is older than this.
CAMERA_HEARTBEAT_TIMEOUT_S = 3.0


def verdict_key(line_id: str) -> str:
    """Key of the latest verdict JSON of a line."""
    return f"verdict:{line_id}"


def camera_key(line_id: str) -> str:
    """Key of the camera status hash of a line."""
    return f"camera:{line_id}"


def publish_verdict(r: redis.Redis, line_id: str, inspection_json: dict[str, Any]) -> None:
    """Store the latest verdict of a line (called after the DB commit)."""
    pipe = r.pipeline()
    pipe.set(verdict_key(line_id), json.dumps(inspection_json))
    pipe.sadd(LINES_KEY, line_id)
    pipe.execute()


def latest_verdict(r: redis.Redis, line_id: str) -> dict[str, Any] | None:
    """The latest verdict JSON of a line, or None when the line never reported."""
    raw = r.get(verdict_key(line_id))
    return json.loads(raw) if raw else None


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


@dataclass(frozen=True)
class LineSnapshot:
    """Latest verdict, camera status and whether the line ever reported, read at once."""

    verdict: dict[str, Any] | None
    camera: CameraStatus | None
    known: bool


def line_snapshot(r: redis.Redis, line_id: str) -> LineSnapshot:
    """:func:`latest_verdict`, :func:`camera_status` and membership of ``lines`` in one
    round trip (the PLC polling path)."""
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
