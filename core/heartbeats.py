"""Inference workers' heartbeats in Redis, so that an API on another machine can tell
whether anyone inspects a line (``/readyz``, part ``inference``).

Key ``workers:{line}`` - hash: consumer name -> JSON ``{"t": unix s, "trouble": str|null}``,
written by every inference worker at least every :data:`HEARTBEAT_INTERVAL_S` while its loop
runs; the key expires when no worker writes it. A worker whose Redis refuses writes
(``MISCONF``) cannot beat either: its entry ages, and the line counts as not inspected.
"""

from __future__ import annotations

import json
import time
from typing import Any

import redis

HEARTBEAT_INTERVAL_S = 1.0
#: A worker counts as alive while its heartbeat is younger than this (one inspection of a
#: large frame on a slow CPU takes a few seconds; the loop beats between frames).
HEARTBEAT_TIMEOUT_S = 30.0


def workers_key(line_id: str) -> str:
    """Key of the inference workers' heartbeat hash of a line."""
    return f"workers:{line_id}"


def beat(r: redis.Redis, line_id: str, consumer: str, trouble: str | None = None) -> None:
    """Record that ``consumer`` runs (``trouble``: why it cannot work right now)."""
    pipe = r.pipeline(transaction=True)
    pipe.hset(workers_key(line_id), consumer, json.dumps({"t": time.time(), "trouble": trouble}))
    pipe.expire(workers_key(line_id), int(HEARTBEAT_TIMEOUT_S * 4))
    pipe.execute()


def workers(r: redis.Redis, line_id: str, now: float | None = None) -> dict[str, dict[str, Any]]:
    """Every worker that beat within :data:`HEARTBEAT_TIMEOUT_S`: name -> ``{age_s, trouble}``."""
    now = time.time() if now is None else now
    out: dict[str, dict[str, Any]] = {}
    for name, raw in r.hgetall(workers_key(line_id)).items():
        try:
            rec = json.loads(raw)
            age = now - float(rec["t"])
        except (ValueError, KeyError, TypeError):
            continue
        if age <= HEARTBEAT_TIMEOUT_S:
            key = name.decode() if isinstance(name, bytes) else str(name)
            out[key] = {"age_s": round(age, 3), "trouble": rec.get("trouble")}
    return out


def remove(r: redis.Redis, line_id: str, consumer: str) -> None:
    """A worker that stops on purpose takes its entry out."""
    r.hdel(workers_key(line_id), consumer)
