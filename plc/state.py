"""A line's PLC status for one interface, and that interface's handshake, in Redis.

Each interface (``modbus``, ``opcua``) keeps, per line, the result id its PLC acknowledged
(its *cursor*) and the NG total at its last counter reset in the hash
:func:`core.bus.plc_cursor_key` - so the handshake survives a restart of the server and two
interfaces never acknowledge for each other. :meth:`PlcState.view` reads the cursor and the
line in one round trip (:func:`core.results.aread_line_at_cursor`) and turns them into
:func:`core.plc.plc_status`: the one fail-safe answer, the results pending after the cursor
and the first ``buffer_size`` of them. Redis unreachable:
:func:`core.plc.unavailable_status` (``UNKNOWN``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import redis
import redis.asyncio as aredis

from core.bus import plc_cursor_key, result_seq_key
from core.plc import PlcStatus, plc_status, unavailable_status
from core.results import aread_line_at_cursor

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

    async def view(self, line_id: str, now: datetime | None = None) -> LineView:
        """The line's status for this interface now (``UNKNOWN`` when Redis is down or the
        record is unreadable); the cursor and the line are read in one round trip."""
        try:
            snapshot, page, reset = await aread_line_at_cursor(
                self.r, line_id, self.interface, self.acknowledged, self.buffer_size)
        except (redis.RedisError, OSError):
            return LineView(unavailable_status(line_id, 0), 0)
        except ValueError:
            return LineView(unavailable_status(line_id, 0, "invalid_record"), 0)
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
