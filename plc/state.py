"""A line's PLC status for one interface, and that interface's handshake, in Redis.

Each interface (``modbus``, ``opcua``) keeps, per line, the result id its PLC acknowledged
(its *cursor*) and the NG total at its last counter reset in the hash
:func:`core.bus.plc_cursor_key` - so the handshake survives a restart of the server and two
interfaces never acknowledge for each other. :meth:`PlcState.status` reads the line through
:func:`core.results.aread_line` and turns it into :func:`core.plc.plc_status`: the one
fail-safe answer, the results pending after the cursor and the first ``buffer_size`` of them.
Redis unreachable: :func:`core.plc.unavailable_status` (``UNKNOWN``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import redis
import redis.asyncio as aredis

from core.bus import plc_cursor_key, result_seq_key
from core.plc import PlcStatus, plc_status, unavailable_status
from core.results import aread_line

#: Results a PLC interface shows after its cursor (its result buffer).
BUFFER_SIZE = 8


class HandshakeError(ValueError):
    """An acknowledge the line cannot take (a result id beyond the last one)."""


@dataclass(frozen=True)
class LineView:
    """:class:`~core.plc.PlcStatus` plus the interface's NG count since its last reset."""

    status: PlcStatus
    ng_count: int


class PlcState:
    """Reads line status and keeps the acknowledge cursor of one interface.

    ``acknowledged``: the PLC acknowledges results (writable interface); otherwise the
    cursor is always the last ``buffer_size`` results (a read-only PLC sees the newest
    results and counts NGs by :attr:`LineView.ng_count`).
    """

    def __init__(self, r: aredis.Redis, interface: str, acknowledged: bool,
                 buffer_size: int = BUFFER_SIZE) -> None:
        """``r``: an async Redis client; ``interface``: the cursor's field name."""
        self.r = r
        self.interface = interface
        self.acknowledged = acknowledged
        self.buffer_size = buffer_size

    async def _cursor_and_reset(self, line_id: str) -> tuple[int, int]:
        if self.acknowledged:
            cursor, reset = await self.r.hmget(
                plc_cursor_key(line_id), [self.interface, f"{self.interface}:ng_reset"])
            return int(cursor or 0), int(reset or 0)
        pipe = self.r.pipeline(transaction=False)
        pipe.get(result_seq_key(line_id))
        pipe.hget(plc_cursor_key(line_id), f"{self.interface}:ng_reset")
        last, reset = await pipe.execute()
        return max(0, int(last or 0) - self.buffer_size), int(reset or 0)

    async def view(self, line_id: str, now: datetime | None = None) -> LineView:
        """The line's status for this interface now (``UNKNOWN`` when Redis is down or the
        record is unreadable)."""
        cursor = 0
        try:
            cursor, reset = await self._cursor_and_reset(line_id)
            snapshot, page = await aread_line(self.r, line_id, cursor, self.buffer_size)
        except (redis.RedisError, OSError):
            return LineView(unavailable_status(line_id, cursor), 0)
        except ValueError:
            return LineView(unavailable_status(line_id, cursor, "invalid_record"), 0)
        status = plc_status(line_id, snapshot, page, now or datetime.now(UTC), self.buffer_size)
        ng_total = page.totals.get("NG", 0)
        return LineView(status, ng_total - reset if reset <= ng_total else ng_total)

    async def acknowledge(self, line_id: str, result_id: int) -> None:
        """Store ``result_id`` as the PLC's cursor: results up to it are handled. Raises
        :class:`HandshakeError` beyond the line's last result id or below 0."""
        last = int(await self.r.get(result_seq_key(line_id)) or 0)
        if not 0 <= result_id <= last:
            raise HandshakeError(f"result id {result_id} outside 0..{last}")
        await self.r.hset(plc_cursor_key(line_id), self.interface, result_id)

    async def reset_ng_count(self, line_id: str) -> None:
        """Start this interface's NG count of the line from 0."""
        view = await self.view(line_id)
        await self.r.hset(plc_cursor_key(line_id), f"{self.interface}:ng_reset",
                          view.status.totals.get("NG", 0))
