"""``lineinspect plc modbus|opcua`` (one PLC server on its own) and ``lineinspect bench plc``."""

from __future__ import annotations

import asyncio
import json
import logging
import signal
from pathlib import Path

import typer
from rich.console import Console

from deploy.opcua_trust_cli import opcua_trust

plc_app = typer.Typer(help="PLC interfaces (docs/PLC.md)", no_args_is_help=True)
console = Console()


def _settings(**overrides: object):  # noqa: ANN202 - Settings is imported lazily
    from core.settings import Settings

    settings = Settings(**{k: v for k, v in overrides.items() if v is not None})
    logging.basicConfig(level=settings.log_level,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return settings


def _run(settings, modbus: bool, opcua: bool) -> None:  # noqa: ANN001
    from plc.service import serve

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await serve(settings, stop, modbus, opcua)

    asyncio.run(main())


@plc_app.command("modbus")
def modbus(
    host: str = typer.Option(None, help="bind address (settings: modbus_host)"),
    port: int = typer.Option(None, help="TCP port (settings: modbus_port)"),
    writable: bool = typer.Option(None, help="accept acknowledge/reset writes"),
) -> None:
    """Modbus TCP server of the lines in ``plc_lines`` (register map: docs/PLC.md)."""
    _run(_settings(modbus_host=host, modbus_port=port, modbus_writable=writable), True, False)


@plc_app.command("opcua")
def opcua(
    host: str = typer.Option(None, help="bind address (settings: opcua_host)"),
    port: int = typer.Option(None, help="TCP port (settings: opcua_port)"),
) -> None:
    """OPC UA server of the lines in ``plc_lines`` (node ids: docs/PLC.md)."""
    _run(_settings(opcua_host=host, opcua_port=port), False, True)


plc_app.command("opcua-trust")(opcua_trust)


def bench_plc(
    samples: int = typer.Option(200, min=2, help="latency samples per interface"),
    pace_ms: float = typer.Option(5.0, help="pause between samples"),
    clients: int = typer.Option(8, min=1, help="client connections for the throughput"),
    seconds: float = typer.Option(5.0, help="throughput duration"),
    opcua_interval_ms: float = typer.Option(5.0, help="OPC UA publishing interval"),
    workers: str = typer.Option("1,2", help="uvicorn worker counts for the REST poll rate "
                                "(latencies: the first)"),
    poll_ms: float = typer.Option(1.0, min=0.0, help="latency clients: pause between polls"),
    json_out: Path = typer.Option(None, "--json", help="write the report here"),
) -> None:
    """Result committed -> visible on REST, Modbus and OPC UA (p50/p99), and poll rates."""
    from deploy.bench_plc import print_report, run_bench

    try:
        counts = tuple(int(n) for n in workers.split(","))
    except ValueError:
        counts = ()
    if not counts or min(counts) < 1:
        raise typer.BadParameter("comma-separated worker counts >= 1, e.g. 1,2",
                                 param_hint="--workers")
    report = run_bench(_settings(), samples, pace_ms, clients, seconds, opcua_interval_ms,
                       counts, poll_ms)
    print_report(report, console)
    if json_out is not None:
        json_out.parent.mkdir(parents=True, exist_ok=True)
        json_out.write_text(json.dumps(report, indent=2))
