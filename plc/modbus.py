"""Modbus TCP server (pymodbus, async): one unit id per line, one block of holding registers.

Every read is answered from Redis at that moment (:meth:`plc.state.PlcState.view`, one
MULTI/EXEC): no cache, so a committed result is visible at the next poll, and the fail-safe
of :func:`core.plc.plc_answer` holds at read time. Writes (the acknowledge register and the
command register) are refused with exception 02 unless ``modbus_writable`` is set. The map
is :data:`REGISTERS`; docs/PLC.md explains it for the PLC programmer.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import redis.asyncio as aredis
from pymodbus.constants import ExcCodes
from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

from core.settings import Settings
from plc.state import BUFFER_SIZE, HandshakeError, LineView, PlcState

log = logging.getLogger(__name__)

#: Register map: name -> (address, registers). 32-bit values are high word first.
REGISTERS: dict[str, tuple[int, int]] = {
    "HEARTBEAT": (0, 1), "STATE": (1, 1), "VERDICT": (2, 1), "WORST_SINCE_ACK": (3, 1),
    "LAST_RESULT_ID": (4, 2), "VERDICT_RESULT_ID": (6, 2), "VERDICT_FRAME_ID": (8, 2),
    "NG_COUNT": (10, 2), "ACK_RESULT_ID": (12, 2), "PENDING": (14, 1), "NG_SINCE_ACK": (15, 1),
    "FLAGS": (16, 1), "AGE_MS": (17, 1), "COMMAND": (18, 1), "BUFFER_COUNT": (19, 1),
    "RECIPE": (20, 8), "VERDICT_PART_ID": (28, 2), "BUFFER": (30, 6 * BUFFER_SIZE),
}
#: Registers of one buffer entry: result id (2), code, frame id (2), number of defects.
ENTRY = 6
#: FLAGS bits.
FLAG_OVERRUN, FLAG_LOST, FLAG_CAMERA, FLAG_WRITABLE, FLAG_CURSOR_RESET = 1, 2, 4, 8, 16
#: COMMAND values.
CMD_RESET_NG_COUNT = 1
SIZE = REGISTERS["BUFFER"][0] + REGISTERS["BUFFER"][1]
WRITABLE = ("ACK_RESULT_ID", "COMMAND")


def _u16(value: Any) -> int:
    return max(0, min(0xFFFF, int(value or 0)))


def _u32(value: Any) -> list[int]:
    v = int(value or 0) & 0xFFFFFFFF
    return [v >> 16, v & 0xFFFF]


def _ascii(text: str, registers: int) -> list[int]:
    raw = text.encode("ascii", "replace")[: 2 * registers].ljust(2 * registers, b"\0")
    return [raw[i] << 8 | raw[i + 1] for i in range(0, len(raw), 2)]


def encode(view: LineView, heartbeat: int, writable: bool) -> list[int]:
    """The register block of a line (:data:`REGISTERS`)."""
    s, a = view.status, view.status.answer
    regs = [0] * SIZE

    def put(name: str, values: list[int]) -> None:
        start, n = REGISTERS[name]
        regs[start:start + n] = values[:n]

    flags = ((FLAG_OVERRUN if s.overrun else 0) | (FLAG_LOST if s.lost else 0)
             | (FLAG_CAMERA if a.get("camera_connected") else 0)
             | (FLAG_WRITABLE if writable else 0) | (FLAG_CURSOR_RESET if s.cursor_reset else 0))
    age = a.get("age_ms")
    put("HEARTBEAT", [heartbeat & 0xFFFF])
    put("STATE", [s.state])
    put("VERDICT", [s.code])
    put("WORST_SINCE_ACK", [s.worst_code])
    put("LAST_RESULT_ID", _u32(s.last_result_id))
    put("VERDICT_RESULT_ID", _u32(a.get("result_id")))
    put("VERDICT_FRAME_ID", _u32(a.get("frame_id")))
    put("NG_COUNT", _u32(view.ng_count))
    put("ACK_RESULT_ID", _u32(s.cursor))
    put("PENDING", [_u16(s.pending)])
    put("NG_SINCE_ACK", [_u16(s.ng_since)])
    put("FLAGS", [flags])
    put("AGE_MS", [0xFFFF if age is None else _u16(abs(age))])
    put("BUFFER_COUNT", [len(s.buffer)])
    put("RECIPE", _ascii(str(a.get("recipe") or ""), REGISTERS["RECIPE"][1]))
    put("VERDICT_PART_ID", _u32(a.get("part_id")))  # 0: free-run (not a part)
    entries: list[int] = []
    for r in s.buffer:
        entries += [*_u32(r["result_id"]), _u16(r.get("code")), *_u32(r.get("frame_id")),
                    _u16(sum((r.get("counts") or {}).values()))]
    put("BUFFER", entries)
    return regs


class LineRegisters:
    """The action pymodbus calls on every request to one line's unit: reads fill the block
    from Redis, writes run the handshake."""

    def __init__(self, state: PlcState, line_id: str, writable: bool) -> None:
        """``state``: the interface's :class:`PlcState`; ``writable``: accept commands."""
        self.state, self.line_id, self.writable = state, line_id, writable

    async def __call__(self, function_code: int, start_address: int, address: int,
                       count: int, registers: list[int],
                       set_values: list[int] | list[bool] | None) -> ExcCodes | None:
        """pymodbus' ``SimDevice.action``: refresh ``registers`` in place, or apply a write."""
        if set_values:
            return await self._write(address, [int(v) for v in set_values])
        view = await self.state.view(self.line_id)
        heartbeat = int(time.monotonic() * 10)
        registers[:SIZE] = encode(view, heartbeat, self.writable)  # the block from 0
        return None

    async def _write(self, address: int, values: list[int]) -> ExcCodes | None:
        ack, cmd = REGISTERS["ACK_RESULT_ID"][0], REGISTERS["COMMAND"][0]
        if address == ack and len(values) == 2:
            try:
                await self.state.acknowledge(self.line_id, values[0] << 16 | values[1])
            except HandshakeError as exc:
                log.warning("modbus %s: acknowledge refused: %s", self.line_id, exc)
                return ExcCodes.ILLEGAL_VALUE
            return None
        if address == cmd and len(values) == 1:
            if values[0] == CMD_RESET_NG_COUNT:
                await self.state.reset_ng_count(self.line_id)
                return None
            return ExcCodes.ILLEGAL_VALUE
        return ExcCodes.ILLEGAL_ADDRESS  # half of the acknowledge, or beyond the commands


def _block(writable: bool) -> list[SimData]:
    """The holding registers: read-only except the writable ones when ``writable``."""
    ranges, pos = [], 0
    for name in WRITABLE:
        start, n = REGISTERS[name]
        ranges.append(SimData(pos, count=start - pos, datatype=DataType.REGISTERS,
                              readonly=True))
        ranges.append(SimData(start, count=n, datatype=DataType.REGISTERS,
                              readonly=not writable))
        pos = start + n
    ranges.append(SimData(pos, count=SIZE - pos, datatype=DataType.REGISTERS, readonly=True))
    return ranges


def create_server(settings: Settings, r: aredis.Redis) -> ModbusTcpServer:
    """The Modbus TCP server for ``settings.plc_line_ids`` (unit id n = n-th line) on
    ``modbus_host:modbus_port``."""
    writable = settings.modbus_writable
    state = PlcState(r, "modbus", acknowledged=writable)
    devices = [
        SimDevice(unit, simdata=_block(writable),
                  action=LineRegisters(state, line, writable).__call__)
        for unit, line in enumerate(settings.plc_line_ids, start=1)
    ]
    return ModbusTcpServer(devices, address=(settings.modbus_host, settings.modbus_port))


async def serve(settings: Settings, stop: asyncio.Event | None = None) -> None:
    """Run the Modbus server until ``stop`` is set (or forever)."""
    from core.redis_conn import redis_url

    r = aredis.Redis.from_url(redis_url(settings), socket_timeout=2.0)
    server = create_server(settings, r)
    log.info("modbus: %s:%d, lines %s, writable %s", settings.modbus_host,
             settings.modbus_port, settings.plc_line_ids, settings.modbus_writable)
    task = asyncio.create_task(server.serve_forever())
    try:
        await (stop.wait() if stop is not None else asyncio.Event().wait())
    finally:
        await server.shutdown()
        task.cancel()
        await r.aclose()
