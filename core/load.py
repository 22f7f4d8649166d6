"""How much an inference worker keeps up with its line, in Redis, for the UI and the API.

Key ``load:{line}`` - hash: consumer name -> JSON :class:`LoadReport`, written by every
inference worker about twice a second while it takes frames (``inference.backlog``); the key
expires when no worker writes it. The API adds the workers of a line up
(:func:`line_load`): inspected/s from the workers' own counters (not from capture times in
the log), frames not inspected because they waited too long, the backlog, and whether the
line is overloaded.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from typing import Any

import redis

#: A report older than this no longer counts (its worker stopped or hangs).
REPORT_TIMEOUT_S = 10.0


def load_key(line_id: str) -> str:
    """Key of the inference workers' load hash of a line."""
    return f"load:{line_id}"


@dataclass(frozen=True)
class LoadReport:
    """One worker's (or, from :func:`line_load`, one line's) load."""

    #: frames inspected per second over the worker's recent window
    inspected_per_s: float = 0.0
    #: frames inspected since the worker started
    inspected: int = 0
    #: frames not inspected since the worker started (waited longer than max_backlog_ms)
    skipped: int = 0
    #: how long the last frame taken had waited in the stream, ms
    backlog_ms: float = 0.0
    #: frames were skipped recently: the line runs faster than it is inspected
    overloaded: bool = False
    #: the recipe's limit
    max_backlog_ms: int = 0
    #: Unix time of the report
    t: float = 0.0


def report(r: redis.Redis, line_id: str, consumer: str, rep: LoadReport) -> None:
    """Store ``consumer``'s report (the key expires a while after the last one)."""
    pipe = r.pipeline(transaction=True)
    pipe.hset(load_key(line_id), consumer, json.dumps(asdict(rep)))
    pipe.expire(load_key(line_id), int(REPORT_TIMEOUT_S * 6))
    pipe.execute()


def line_load(r: redis.Redis, line_id: str, now: float | None = None) -> LoadReport | None:
    """The line's load: rates, counts and backlog summed/maxed over the workers that reported
    within :data:`REPORT_TIMEOUT_S`; None when none did."""
    now = time.time() if now is None else now
    fresh: list[dict[str, Any]] = []
    for raw in r.hgetall(load_key(line_id)).values():
        try:
            rec = json.loads(raw)
            if now - float(rec["t"]) <= REPORT_TIMEOUT_S:
                fresh.append(rec)
        except (ValueError, KeyError, TypeError):
            continue
    if not fresh:
        return None
    return LoadReport(
        inspected_per_s=round(sum(float(x.get("inspected_per_s", 0)) for x in fresh), 3),
        inspected=sum(int(x.get("inspected", 0)) for x in fresh),
        skipped=sum(int(x.get("skipped", 0)) for x in fresh),
        backlog_ms=max(float(x.get("backlog_ms", 0)) for x in fresh),
        overloaded=any(bool(x.get("overloaded")) for x in fresh),
        max_backlog_ms=max(int(x.get("max_backlog_ms", 0)) for x in fresh),
        t=max(float(x["t"]) for x in fresh),
    )
