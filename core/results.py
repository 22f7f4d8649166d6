"""The result sequence of a line, read side: every result after a cursor, exactly.

:func:`core.bus.publish_result` gives every inspected frame of a line the next result id
(one Lua script with the verdict publish). A reader keeps the last result id it has handled
as its *cursor* and asks for the results after it (:func:`read_line`, or
:func:`aread_line` on ``redis.asyncio``): one read-only Lua script (atomic, one round trip)
returns the latest verdict record, the camera status and a :class:`ResultPage` - a bounded
page of results after the cursor plus the exact NG / UNKNOWN counts of *every* result after
it (not only the page), the results no longer retained (``lost``) and the line's totals.
The REST cursor, the Modbus acknowledge register and the OPC UA ``Acknowledge`` method
all read through here.
"""

from __future__ import annotations

import asyncio
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
    plc_cursor_key,
    result_counts_key,
    result_seq_key,
    results_key,
    results_ng_key,
    results_unknown_key,
    verdict_key,
)

#: Most results one page may hold.
MAX_PAGE = 1000
#: Longest wait for Redis on the PLCs' async read path (REST, Modbus, OPC UA): a hung Redis
#: turns into ``UNKNOWN`` / 503 after this instead of after the client's retried socket
#: timeouts (4-8 s here), during which OPC UA would keep showing the last verdict.
READ_TIMEOUT_S = 0.5


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

# The whole read in one script (atomic like MULTI/EXEC, one command and one reply instead of
# ten queued ones - half the client time per poll). ARGV: cursor, page size, line id, and
# the PLC interface whose stored cursor replaces ARGV[1] ('' = none; ARGV[5] 'ack': its
# acknowledged result id, 'last': the last ``limit`` results). A cursor ahead of the
# sequence (Redis lost its data) reads from 0 and says so. Returns the verdict record, the
# camera hash, membership of ``lines``, the last result id, the page, the NG / UNKNOWN
# counts after the cursor, the oldest retained result, the totals, the last NG id, the
# cursor asked for, 1 if it was reset, and the interface's ``ng_reset`` field.
_READ_LINE = """
local seq = tonumber(redis.call('GET', KEYS[4]) or '0')
local limit = tonumber(ARGV[2])
local after = tonumber(ARGV[1])
local ng_reset = false
if ARGV[4] ~= '' then
  local stored = redis.call('HMGET', KEYS[9], ARGV[4], ARGV[4] .. ':ng_reset')
  ng_reset = stored[2]
  if ARGV[5] == 'ack' then after = tonumber(stored[1] or '0') else
    after = math.max(0, seq - limit) end
end
local asked, reset = after, 0
if after > seq then after, reset = 0, 1 end
local lo = string.format('(%.0f', after)
local members = {}
if limit > 0 then
  members = redis.call('ZRANGEBYSCORE', KEYS[5], lo, '+inf', 'LIMIT', 0, limit)
end
return {redis.call('GET', KEYS[1]), redis.call('HGETALL', KEYS[2]),
        redis.call('SISMEMBER', KEYS[3], ARGV[3]), seq, members,
        redis.call('ZCOUNT', KEYS[6], lo, '+inf'), redis.call('ZCOUNT', KEYS[7], lo, '+inf'),
        redis.call('ZRANGE', KEYS[5], 0, 0, 'WITHSCORES'), redis.call('HGETALL', KEYS[8]),
        redis.call('ZREVRANGE', KEYS[6], 0, 0), string.format('%.0f', asked), reset, ng_reset}
"""


def _keys(line_id: str) -> list[str]:
    return [verdict_key(line_id), camera_key(line_id), LINES_KEY, result_seq_key(line_id),
            results_key(line_id), results_ng_key(line_id), results_unknown_key(line_id),
            result_counts_key(line_id), plc_cursor_key(line_id)]


def _pairs(flat: list[bytes]) -> dict[bytes, bytes]:
    return dict(zip(flat[::2], flat[1::2], strict=True))


def _parse(line_id: str, replies: list[Any]) -> tuple[LineSnapshot, ResultPage, int]:
    (raw_verdict, raw_camera, known, seq, members, ng, unknown, oldest, counts, last_ng,
     asked, reset, ng_reset) = replies
    snapshot = LineSnapshot(
        verdict=json.loads(raw_verdict) if raw_verdict else None,
        camera=parse_camera(_pairs(raw_camera)),
        known=bool(known),
    )
    last, after = int(seq or 0), int(asked)
    effective = 0 if reset else after
    oldest_id = int(float(oldest[1])) if oldest else None
    retained_from = oldest_id if oldest_id is not None else last + 1
    page = ResultPage(
        line_id=line_id,
        after=after,
        results=[json.loads(m) for m in members],
        last_result_id=last,
        oldest_result_id=oldest_id,
        ng=int(ng),
        unknown=int(unknown),
        lost=max(0, min(last, retained_from - 1) - effective),
        totals={_VERDICTS.get(k.decode(), k.decode()): int(v)
                for k, v in _pairs(counts).items()},
        last_ng_result_id=int(last_ng[0]) if last_ng else None,
        cursor_reset=bool(reset),
    )
    return snapshot, page, int(ng_reset or 0)


def _check(after: int, limit: int) -> None:
    if after < 0:
        raise ValueError("after must be >= 0")
    if not 0 <= limit <= MAX_PAGE:
        raise ValueError(f"limit must be within 0..{MAX_PAGE}")


def read_line(
    r: redis.Redis, line_id: str, after: int = 0, limit: int = 100
) -> tuple[LineSnapshot, ResultPage]:
    """The line's latest verdict record and camera status, and up to ``limit`` results
    after result id ``after`` with the counts of every result after it - one atomic script
    (one round trip), so the page, the counts and ``last_result_id`` are one consistent
    state. A cursor ahead of the sequence (Redis lost its data) is read as 0 and flagged
    ``cursor_reset``."""
    _check(after, limit)
    replies = r.register_script(_READ_LINE)(keys=_keys(line_id),
                                            args=[after, limit, line_id, "", ""])
    snapshot, page, _ = _parse(line_id, replies)
    return snapshot, page


async def aread_line(
    r: aredis.Redis, line_id: str, after: int = 0, limit: int = 100
) -> tuple[LineSnapshot, ResultPage]:
    """:func:`read_line` on a ``redis.asyncio`` client (the Modbus and OPC UA servers)."""
    _check(after, limit)
    snapshot, page, _ = _parse(line_id, await _bounded(r, _keys(line_id),
                                                       [after, limit, line_id, "", ""]))
    return snapshot, page


async def aread_line_at_cursor(
    r: aredis.Redis, line_id: str, interface: str, acknowledged: bool, limit: int
) -> tuple[LineSnapshot, ResultPage, int]:
    """:func:`aread_line` after the cursor a PLC interface keeps in
    :func:`core.bus.plc_cursor_key` (``acknowledged``: the result id it acknowledged; else
    the last ``limit`` results), in the same round trip; also that interface's
    ``ng_reset`` (0 when none)."""
    _check(0, limit)
    return _parse(line_id, await _bounded(
        r, _keys(line_id), [0, limit, line_id, interface, "ack" if acknowledged else "last"]))


async def _bounded(r: aredis.Redis, keys: list[str], args: list[Any]) -> Any:
    """The script's reply within :data:`READ_TIMEOUT_S` (``TimeoutError`` after it)."""
    async with asyncio.timeout(READ_TIMEOUT_S):
        return await r.register_script(_READ_LINE)(keys=keys, args=args)
