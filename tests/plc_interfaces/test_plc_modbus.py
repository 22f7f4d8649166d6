"""The Modbus TCP server against a real pymodbus client over TCP and the real Redis: every
result and every NG visible at any poll rate, the acknowledge handshake and its overrun
bit, read-only by default, the fail-safe UNKNOWN, and Redis down."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis
from pymodbus.client import ModbusTcpClient

from core.bus import set_camera_status, verdict_ts_key
from core.settings import Settings
from plc.modbus import (
    CMD_RESET_NG_COUNT,
    ENTRY,
    FLAG_CAMERA,
    FLAG_OVERRUN,
    FLAG_WRITABLE,
    REGISTERS,
    SIZE,
    serve,
)
from tests.plc_interfaces.plc_helpers import REDIS_URL, Line, LoopThread, free_port, wait_listening

pytestmark = pytest.mark.redis


class Plc:
    """What a PLC program does, through a real pymodbus client."""

    def __init__(self, port: int, unit: int = 1) -> None:
        self.client = ModbusTcpClient("127.0.0.1", port=port, timeout=5)
        assert self.client.connect()
        self.unit = unit

    def read(self) -> dict[str, Any]:
        rr = self.client.read_holding_registers(0, count=SIZE, device_id=self.unit)
        assert not rr.isError(), rr
        regs = rr.registers

        def get(name: str) -> int:
            start, n = REGISTERS[name]
            v = 0
            for x in regs[start:start + n]:
                v = v << 16 | x
            return v

        out = {name: get(name) for name in REGISTERS if name not in ("RECIPE", "BUFFER")}
        raw = b"".join(x.to_bytes(2, "big") for x in regs[20:28])
        out["RECIPE"] = raw.rstrip(b"\0").decode()
        b0 = REGISTERS["BUFFER"][0]
        out["BUFFER"] = [
            {"result_id": regs[i] << 16 | regs[i + 1], "code": regs[i + 2],
             "frame_id": regs[i + 3] << 16 | regs[i + 4], "defects": regs[i + 5]}
            for i in range(b0, b0 + ENTRY * out["BUFFER_COUNT"], ENTRY)
        ]
        return out

    def ack(self, result_id: int) -> Any:
        return self.client.write_registers(REGISTERS["ACK_RESULT_ID"][0],
                                           [result_id >> 16, result_id & 0xFFFF],
                                           device_id=self.unit)

    def close(self) -> None:
        self.client.close()


@pytest.fixture()
def modbus(line_id: str) -> Iterator[Callable[..., Plc]]:
    """Start the server (settings overrides as kwargs) and connect a PLC to it."""
    servers: list[LoopThread] = []
    plcs: list[Plc] = []

    def start(**overrides: Any) -> Plc:
        port = free_port()
        values: dict[str, Any] = {"redis_url": REDIS_URL, "plc_lines": line_id,
                                  "modbus_port": port, "modbus_writable": True}
        values.update(overrides)
        settings = Settings(**values)
        servers.append(LoopThread(lambda stop: serve(settings, stop)))
        wait_listening(port)
        plcs.append(Plc(port))
        return plcs[-1]

    yield start
    for p in plcs:
        p.close()
    for s in servers:
        s.close()


@pytest.mark.parametrize("every", [1, 3, 7, 20])
def test_every_result_and_every_ng_through_the_handshake(
    modbus: Callable[..., Plc], line: Line, every: int
) -> None:
    """60 alternating OK/NG results; the PLC polls once per ``every`` results, handles the
    buffer and acknowledges. It accounts for every result id and every NG, and
    WORST_SINCE_ACK flags each poll interval that held an NG."""
    plc = modbus()
    seen: list[dict] = []
    flagged = 0

    def poll() -> None:
        nonlocal flagged
        while True:
            regs = plc.read()
            if regs["WORST_SINCE_ACK"] == 1:
                flagged += 1
            seen.extend(regs["BUFFER"])
            if not regs["BUFFER"]:
                return
            assert not plc.ack(regs["BUFFER"][-1]["result_id"]).isError()
            if regs["PENDING"] <= len(regs["BUFFER"]):
                return

    for i in range(1, 61):
        line.publish("NG" if i % 2 else "OK")
        if i % every == 0:
            poll()
    poll()
    assert [x["result_id"] for x in seen] == list(range(1, 61))
    assert [x["frame_id"] for x in seen] == list(range(1, 61))
    assert [x["code"] for x in seen] == [1 if i % 2 else 0 for i in range(1, 61)]
    assert all(x["defects"] == (2 if x["code"] else 0) for x in seen)
    assert flagged >= min(30, 60 // every)
    assert plc.read()["NG_COUNT"] == 30


def test_worst_since_ack_alone_never_misses_an_ng(
    modbus: Callable[..., Plc], line: Line
) -> None:
    """The simplest PLC: read LAST_RESULT_ID and WORST_SINCE_ACK, acknowledge that id. One NG
    among 25 OK results between two polls is still seen."""
    plc = modbus()
    for i in range(25):
        line.publish("NG" if i == 11 else "OK")
    regs = plc.read()
    assert (regs["VERDICT"], regs["WORST_SINCE_ACK"], regs["NG_SINCE_ACK"]) == (0, 1, 1)
    assert not plc.ack(regs["LAST_RESULT_ID"]).isError()
    regs = plc.read()
    assert (regs["WORST_SINCE_ACK"], regs["NG_SINCE_ACK"], regs["PENDING"]) == (0, 0, 0)
    assert regs["ACK_RESULT_ID"] == 25 and regs["NG_COUNT"] == 1


def test_buffer_overrun_bit_and_ack_checks(modbus: Callable[..., Plc], line: Line) -> None:
    plc = modbus()
    for _ in range(12):
        line.publish("OK")
    regs = plc.read()
    assert regs["PENDING"] == 12 and regs["BUFFER_COUNT"] == 8
    assert regs["FLAGS"] & FLAG_OVERRUN and regs["FLAGS"] & FLAG_WRITABLE
    assert [x["result_id"] for x in regs["BUFFER"]] == list(range(1, 9))
    assert not plc.ack(8).isError()
    regs = plc.read()
    assert not regs["FLAGS"] & FLAG_OVERRUN
    assert [x["result_id"] for x in regs["BUFFER"]] == [9, 10, 11, 12]
    assert plc.ack(13).isError()  # beyond the last result id: exception 03
    half = plc.client.write_register(REGISTERS["ACK_RESULT_ID"][0] + 1, 12, device_id=1)
    assert half.isError()  # half of a 32-bit acknowledge is refused
    assert plc.client.write_register(REGISTERS["STATE"][0], 1, device_id=1).isError()
    assert plc.read()["ACK_RESULT_ID"] == 8


def test_reset_command_and_recipe(modbus: Callable[..., Plc], line: Line) -> None:
    plc = modbus()
    for v in ("NG", "NG", "OK"):
        line.publish(v)
    regs = plc.read()
    assert regs["NG_COUNT"] == 2 and regs["RECIPE"] == "steel-strip"
    assert regs["VERDICT_RESULT_ID"] == 3 and regs["VERDICT_FRAME_ID"] == 3
    assert not plc.client.write_register(REGISTERS["COMMAND"][0], CMD_RESET_NG_COUNT,
                                         device_id=1).isError()
    line.publish("NG")
    assert plc.read()["NG_COUNT"] == 1
    assert plc.client.write_register(REGISTERS["COMMAND"][0], 99, device_id=1).isError()


def test_read_only_by_default(modbus: Callable[..., Plc], line: Line) -> None:
    """No writes accepted; the buffer shows the newest results and NG_COUNT still counts
    every NG, so a read-only PLC detects every NG by the counter's increase."""
    plc = modbus(modbus_writable=False)
    for i in range(10):
        line.publish("NG" if i in (2, 9) else "OK")
    regs = plc.read()
    assert not regs["FLAGS"] & FLAG_WRITABLE
    assert [x["result_id"] for x in regs["BUFFER"]] == list(range(3, 11))
    assert regs["NG_COUNT"] == 2
    assert plc.ack(5).isError()
    assert plc.client.write_register(REGISTERS["COMMAND"][0], 1, device_id=1).isError()


def test_stale_line_and_dead_camera_read_unknown(
    modbus: Callable[..., Plc], line: Line, redis_client: redis.Redis
) -> None:
    plc = modbus()
    line.publish("OK", stale_after_ms=500)
    regs = plc.read()
    assert (regs["STATE"], regs["VERDICT"], regs["WORST_SINCE_ACK"]) == (1, 0, 0)
    assert regs["FLAGS"] & FLAG_CAMERA and regs["AGE_MS"] < 500
    redis_client.delete(verdict_ts_key(line.line_id))  # the line stopped 0.6 s ago:
    line.publish("OK", age_s=0.6, stale_after_ms=500)  # its last verdict is that old
    regs = plc.read()
    assert (regs["STATE"], regs["VERDICT"], regs["WORST_SINCE_ACK"]) == (2, 2, 2)
    line.publish("OK", stale_after_ms=500)
    set_camera_status(redis_client, line.line_id, False)
    regs = plc.read()
    assert (regs["STATE"], regs["VERDICT"]) == (3, 2) and not regs["FLAGS"] & FLAG_CAMERA


def test_redis_down_reads_unknown(modbus: Callable[..., Plc]) -> None:
    port = free_port()  # nothing listens there
    plc = modbus(redis_url=f"redis://127.0.0.1:{port}/0")
    regs = plc.read()
    assert (regs["STATE"], regs["VERDICT"], regs["WORST_SINCE_ACK"]) == (6, 2, 2)


def test_one_unit_per_line(modbus: Callable[..., Plc], new_line: Callable[[], str],
                           line: Line, redis_client: redis.Redis) -> None:
    other = Line(redis_client, new_line())
    plc = modbus(plc_lines=f"{line.line_id},{other.line_id}")
    line.publish("OK")
    other.publish("NG")
    other.publish("NG")
    second = Plc(plc.client.comm_params.port, unit=2)
    try:
        assert plc.read()["LAST_RESULT_ID"] == 1 and second.read()["LAST_RESULT_ID"] == 2
        assert second.read()["VERDICT"] == 1
    finally:
        second.close()
