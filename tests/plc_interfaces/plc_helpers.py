"""Helpers of the PLC interface tests: servers in a thread of their own (real TCP on
127.0.0.1), free ports, and a line publishing results the way the inference worker does."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime, timedelta
from typing import Any

import redis

from core.bus import publish_result, set_camera_status

REDIS_URL = "redis://127.0.0.1:6379/0"


def free_port() -> int:
    """A TCP port nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_listening(port: int, timeout_s: float = 20.0,
                   alive: Callable[[], bool] = lambda: True) -> None:
    """Block until something accepts connections on 127.0.0.1:``port`` (or ``alive()``
    says the server gave up)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and alive():
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise AssertionError(f"nothing listens on port {port}")


class LoopThread:
    """An asyncio loop in a daemon thread running ``main(stop)`` until :meth:`close`."""

    def __init__(self, main: Callable[[asyncio.Event], Coroutine[Any, Any, None]]) -> None:
        self.loop = asyncio.new_event_loop()
        self.stop: asyncio.Event | None = None
        self.error: BaseException | None = None
        self._main = main
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        async def go() -> None:
            self.stop = asyncio.Event()
            await self._main(self.stop)

        try:
            self.loop.run_until_complete(go())
        except BaseException as exc:  # noqa: BLE001 - reported by close()
            self.error = exc

    def call(self, coro: Coroutine[Any, Any, Any], timeout_s: float = 30.0) -> Any:
        """Run ``coro`` on the loop and return its result."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout_s)

    def close(self) -> None:
        """Stop ``main`` and join the thread."""
        if self.stop is not None:
            self.loop.call_soon_threadsafe(self.stop.set)
        self.thread.join(timeout=30)
        assert not self.thread.is_alive(), "server thread did not stop"
        if self.error is not None:
            raise self.error


class Line:
    """Publishes results of one line the way the inference worker does."""

    def __init__(self, r: redis.Redis, line_id: str) -> None:
        self.r, self.line_id, self.frame = r, line_id, 0
        self.beat()

    def beat(self) -> None:
        """The acquisition heartbeat: the camera is alive (it counts as dead after 3 s)."""
        set_camera_status(self.r, self.line_id, True)

    def publish(self, verdict: str, age_s: float = 0.0, stale_after_ms: int = 60000,
                maxlen: int = 10000) -> int:
        """The next frame's result (the camera heartbeat too); its result id."""
        self.beat()
        self.frame += 1
        captured = datetime.now(UTC) - timedelta(seconds=age_s)
        defects = [{"class": "scratch", "score": 0.9, "bbox": [1, 2, 3, 4], "area_px": 12,
                    "model": "m"}] * (2 if verdict == "NG" else 0)
        record = {"inspection_id": self.frame, "line_id": self.line_id, "frame_id": self.frame,
                  "captured_at": captured.isoformat().replace("+00:00", "Z"),
                  "verdict": verdict, "code": {"OK": 0, "NG": 1, "UNKNOWN": 2}[verdict],
                  "defects": defects, "recipe": "steel-strip", "latency_ms": 12.5,
                  "stale_after_ms": stale_after_ms}
        return publish_result(self.r, self.line_id, record, maxlen=maxlen).result_id
