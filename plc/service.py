"""Run the enabled PLC servers (Modbus TCP, OPC UA) in one asyncio loop: a supervised loop
of ``lineinspect run`` (:func:`run`), or ``lineinspect plc modbus|opcua`` on their own."""

from __future__ import annotations

import asyncio
import threading

from core.settings import Settings


async def serve(settings: Settings, stop: asyncio.Event, modbus: bool, opcua: bool) -> None:
    """Serve the chosen interfaces until ``stop`` is set."""
    from plc import modbus as mb
    from plc import opcua as ua

    tasks = []
    if modbus:
        tasks.append(asyncio.create_task(mb.serve(settings, stop)))
    if opcua:
        tasks.append(asyncio.create_task(ua.serve(settings, stop)))
    if tasks:
        await asyncio.gather(*tasks)


def run(settings: Settings, stop: threading.Event) -> None:
    """Serve the interfaces enabled in ``settings`` until ``stop`` is set (blocking; a
    supervised loop of ``lineinspect run``). Returns at once when none is enabled."""
    if not (settings.modbus_enabled or settings.opcua_enabled):
        return

    async def main() -> None:
        done = asyncio.Event()
        loop = asyncio.get_running_loop()
        threading.Thread(target=lambda: (stop.wait(), loop.call_soon_threadsafe(done.set)),
                         daemon=True, name="plc-stop").start()
        await serve(settings, done, settings.modbus_enabled, settings.opcua_enabled)

    asyncio.run(main())
