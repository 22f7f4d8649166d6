"""Fixtures every test folder shares: the real Redis at 127.0.0.1:6379."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis

REDIS_URL = "redis://127.0.0.1:6379/0"


@pytest.fixture()
def redis_client() -> Iterator[redis.Redis]:
    """The real Redis (skipped with a reason when it is not running)."""
    r = redis.Redis.from_url(REDIS_URL, socket_timeout=5.0)
    try:
        r.ping()
    except redis.RedisError as exc:
        pytest.skip(f"no Redis on 127.0.0.1:6379: {exc}")
    yield r
    r.close()
