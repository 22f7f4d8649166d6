"""Load clients of ``lineinspect bench plc`` that cost the servers' cores little: on a 2-core
machine the client shares the CPU with the server it measures, so a Python HTTP client in
threads (about as much CPU per request as the server) halves the rate it can show.

* REST: ``wrk`` (C, one thread, keep-alive connections) when it is on ``PATH``
  (``apt-get install wrk``), else httpx clients in threads.
* Modbus TCP: one asyncio loop with several connections, each sending the next read
  holding registers request (function 3) as soon as the last answer came, framed by hand
  (the 7-byte MBAP header and 5 bytes of PDU: nothing of the protocol is left out).
"""

from __future__ import annotations

import asyncio
import re
import shutil
import struct
import subprocess
import threading
import time
from typing import Any


def _rate(done: int, seconds: float, client: str, connections: int) -> dict[str, Any]:
    return {"client": client, "connections": connections, "seconds": seconds,
            "per_s": round(done / seconds, 1)}


def http_rate(url: str, connections: int, seconds: float) -> dict[str, Any]:
    """GET ``url`` over ``connections`` keep-alive connections for ``seconds``; answers/s."""
    wrk = shutil.which("wrk")
    if wrk:
        duration = max(1, round(seconds))  # wrk takes whole seconds
        out = subprocess.run([wrk, "-t1", f"-c{connections}", f"-d{duration}s", url],
                             capture_output=True, text=True, check=True).stdout
        done = re.search(r"(\d+) requests in ([\d.]+)s", out)
        if done and "Non-2xx" not in out and "Socket errors" not in out:
            return _rate(int(done.group(1)), float(done.group(2)), "wrk -t1", connections)
        raise RuntimeError(f"wrk reported errors:\n{out}")
    return _threads_rate(url, connections, seconds)


def _threads_rate(url: str, connections: int, seconds: float) -> dict[str, Any]:
    import httpx

    counts = [0] * connections
    stop = threading.Event()

    def worker(i: int) -> None:
        with httpx.Client() as c:
            while not stop.is_set():
                c.get(url).raise_for_status()
                counts[i] += 1

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(connections)]
    for t in threads:
        t.start()
    time.sleep(seconds)
    stop.set()
    for t in threads:
        t.join()
    return _rate(sum(counts), seconds, "httpx threads", connections)


def modbus_rate(port: int, unit: int, count: int, connections: int,
                seconds: float) -> dict[str, Any]:
    """Read ``count`` holding registers from address 0 of ``unit`` over ``connections``
    Modbus TCP connections for ``seconds``; answers/s (an exception answer raises)."""

    async def connection(deadline: float) -> int:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        done = 0
        try:
            while time.monotonic() < deadline:
                tid = done & 0xFFFF
                writer.write(struct.pack(">HHHBBHH", tid, 0, 6, unit, 3, 0, count))
                header = await reader.readexactly(7)
                got_tid, _, length, _ = struct.unpack(">HHHB", header)
                pdu = await reader.readexactly(length - 1)
                if got_tid != tid or pdu[0] != 3 or pdu[1] != 2 * count:
                    raise RuntimeError(f"unexpected Modbus answer {header + pdu!r}")
                done += 1
        finally:
            writer.close()
        return done

    async def main() -> int:
        deadline = time.monotonic() + seconds
        return sum(await asyncio.gather(*(connection(deadline) for _ in range(connections))))

    return _rate(asyncio.run(main()), seconds, "asyncio Modbus TCP", connections)
