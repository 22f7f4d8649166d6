"""``lineinspect run``'s PLC loop (plc.service.run) serves both interfaces and stops with the
service; ``lineinspect bench plc`` measures every interface."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import pytest
from asyncua import Client
from pymodbus.client import ModbusTcpClient

from core.settings import Settings
from deploy.bench_plc import run_bench
from plc.modbus import SIZE
from plc.service import run
from tests.plc_interfaces.plc_helpers import REDIS_URL, Line, free_port, wait_listening

pytestmark = pytest.mark.redis


def test_run_serves_the_enabled_interfaces_until_stopped(line: Line, tmp_path: Path) -> None:
    settings = Settings(redis_url=REDIS_URL, plc_lines=line.line_id, modbus_enabled=True,
                        modbus_port=free_port(), opcua_enabled=True, opcua_port=free_port(),
                        opcua_cert_dir=tmp_path / "pki")
    stop = threading.Event()
    thread = threading.Thread(target=run, args=(settings, stop))
    thread.start()
    try:
        wait_listening(settings.modbus_port, 60, thread.is_alive)
        wait_listening(settings.opcua_port, 60, thread.is_alive)
        line.publish("NG")  # the camera heartbeat is fresh when the PLC reads
        mb = ModbusTcpClient("127.0.0.1", port=settings.modbus_port)
        assert mb.connect()
        regs = mb.read_holding_registers(0, count=SIZE, device_id=1).registers
        assert regs[2] == 1 and regs[4:6] == [0, 1]  # VERDICT NG, LAST_RESULT_ID 1
        mb.close()
        url = f"opc.tcp://127.0.0.1:{settings.opcua_port}/lineinspect/"
        endpoints = asyncio.run(Client(url, timeout=20).connect_and_get_server_endpoints())
        assert endpoints
    finally:
        stop.set()
        thread.join(30)
    assert not thread.is_alive()


def test_nothing_enabled_returns_at_once() -> None:
    run(Settings(redis_url=REDIS_URL), threading.Event())


def test_bench_plc_measures_every_interface() -> None:
    report = run_bench(Settings(redis_url=REDIS_URL), samples=3, pace_ms=1.0, clients=1,
                       seconds=0.3, opcua_interval_ms=10.0)
    for k in ("rest_verdict", "rest_results", "modbus", "opcua_read", "opcua_event"):
        assert report[k]["n"] == 3 and report[k]["p99_ms"] >= report[k]["p50_ms"] > 0
    assert report["rest_verdict_polls"]["1"]["per_s"] > 0 and report["modbus_reads"]["per_s"] > 0
