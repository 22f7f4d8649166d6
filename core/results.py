"""The result sequence of a line, read side: every result after a cursor, exactly.

:func:`core.bus.publish_result` gives every inspected frame of a line the next result id
(one Lua script with the verdict publish). A reader keeps the last result id it has handled
as its *cursor* and asks for the results after it (:func:`read_line`, or
:func:`aread_line` on ``redis.asyncio``): one MULTI/EXEC returns the latest verdict record,
the camera status and a :class:`ResultPage` - a bounded page of results after the cursor
plus the exact NG / UNKNOWN counts of *every* result after it (not only the page), the
results no longer retained (``lost``) and the line's totals. The REST cursor, the Modbus
acknowledge register and the OPC UA ``Acknowledge`` method all read through here.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import redis
import redis.asyncio as aredis

from core.bus import (
    LINES_KEY,
    LineSnapshot,
    camera_key,
    parse_camera,
    result_counts_key,
    result_seq_key,
    results_key,
    results_ng_key,
    results_unknown_key,
    verdict_key,
)

#: Most results one page may hold.
MAX_PAGE = 1000


@dataclass(frozen=True)
class ResultPage:
    """Results of a line after a cursor, and what the cursor has not seen yet."""

    line_id: str
    #: the cursor asked for (0 = from the start)
    after: int
    #: compact results after the cursor, oldest first, at most the requested limit
    results: list[dict[str, Any]]
    #: the line's last result id (0: none yet)
    last_result_id: int
    #: oldest result id still retained (None: none)
    oldest_result_id: int | None
    #: NG / UNKNOWN results after the cursor (all of them, not only this page; retained ones)
    ng: int
    unknown: int
    #: results after the cursor no longer retained (the cursor fell behind the window)
    lost: int
    #: results since the line started, by verdict name
    totals: dict[str, int] = field(default_factory=dict)
    #: result id of the line's last NG (None: no NG retained)
    last_ng_result_id: int | None = None
    #: the cursor was ahead of the sequence (Redis lost its data): read as from 0
    cursor_reset: bool = False

    @property
    def pending(self) -> int:
        """Results after the cursor (this page and beyond, retained or lost)."""
        return max(0, self.last_result_id - self.effective_after)

    @property
    def effective_after(self) -> int:
        """The cursor the counts refer to (0 after a cursor reset)."""
        return 0 if self.cursor_reset else self.after

    @property
    def has_more(self) -> bool:
        """More results after this page."""
        return self.next_after < self.last_result_id

    @property
    def next_after(self) -> int:
        """The cursor for the next page: the last result id of this page (or of the lost
        range when the page is empty)."""
        if self.results:
            return int(self.results[-1]["result_id"])
        return self.effective_after + self.lost


_VERDICTS = {"0": "OK", "1": "NG", "2": "UNKNOWN"}


def _queue(pipe: Any, line_id: str, after: int, limit: int) -> None:
    lo = f"({after}"
    pipe.get(verdict_key(line_id))
    pipe.hgetall(camera_key(line_id))
    pipe.sismember(LINES_KEY, line_id)
    pipe.get(result_seq_key(line_id))
    pipe.zrangebyscore(results_key(line_id), lo, "+inf", start=0, num=limit)
    pipe.zcount(results_ng_key(line_id), lo, "+inf")
    pipe.zcount(results_unknown_key(line_id), lo, "+inf")
    pipe.zrange(results_key(line_id), 0, 0, withscores=True)
    pipe.hgetall(result_counts_key(line_id))
    pipe.zrevrange(results_ng_key(line_id), 0, 0)


def _parse(line_id: str, after: int, replies: list[Any]) -> tuple[LineSnapshot, ResultPage]:
    raw_verdict, raw_camera, known, seq, members, ng, unknown, oldest, counts, last_ng = replies
    snapshot = LineSnapshot(
        verdict=json.loads(raw_verdict) if raw_verdict else None,
        camera=parse_camera(raw_camera),
        known=bool(known),
    )
    last = int(seq or 0)
    oldest_id = int(oldest[0][1]) if oldest else None
    retained_from = oldest_id if oldest_id is not None else last + 1
    lost = max(0, min(last, retained_from - 1) - after)
    page = ResultPage(
        line_id=line_id,
        after=after,
        results=[json.loads(m) for m in members],
        last_result_id=last,
        oldest_result_id=oldest_id,
        ng=int(ng),
        unknown=int(unknown),
        lost=lost,
        totals={_VERDICTS.get(k.decode(), k.decode()): int(v) for k, v in counts.items()},
        last_ng_result_id=int(last_ng[0]) if last_ng else None,
    )
    return snapshot, page


def _check(after: int, limit: int) -> None:
    if after < 0:
        raise ValueError("after must be >= 0")
    if not 0 <= limit <= MAX_PAGE:
        raise ValueError(f"limit must be within 0..{MAX_PAGE}")


def _reset(page: ResultPage, again: ResultPage) -> ResultPage:
    return ResultPage(**{**again.__dict__, "after": page.after, "cursor_reset": True})


def read_line(
    r: redis.Redis, line_id: str, after: int = 0, limit: int = 100
) -> tuple[LineSnapshot, ResultPage]:
    """The line's latest verdict record and camera status, and up to ``limit`` results
    after result id ``after`` with the counts of every result after it - one MULTI/EXEC,
    so the page, the counts and ``last_result_id`` are one consistent state. A cursor ahead
    of the sequence (Redis lost its data) is read as 0 and flagged ``cursor_reset``."""
    _check(after, limit)
    pipe = r.pipeline(transaction=True)
    _queue(pipe, line_id, after, limit)
    snapshot, page = _parse(line_id, after, pipe.execute())
    if after > page.last_result_id:
        snapshot, again = read_line(r, line_id, 0, limit)
        return snapshot, _reset(page, again)
    return snapshot, page


async def aread_line(
    r: aredis.Redis, line_id: str, after: int = 0, limit: int = 100
) -> tuple[LineSnapshot, ResultPage]:
    """:func:`read_line` on a ``redis.asyncio`` client (the Modbus and OPC UA servers)."""
    _check(after, limit)
    pipe = r.pipeline(transaction=True)
    _queue(pipe, line_id, after, limit)
    snapshot, page = _parse(line_id, after, await pipe.execute())
    if after > page.last_result_id:
        snapshot, again = await aread_line(r, line_id, 0, limit)
        return snapshot, _reset(page, again)
    return snapshot, page
