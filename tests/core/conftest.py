"""Fixtures of the core tests: the real Redis at 127.0.0.1:6379 and unique line ids."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
import redis

from core.bus import LINES_KEY, line_keys

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


@pytest.fixture()
def line_id(redis_client: redis.Redis) -> Iterator[str]:
    """A unique line id; its Redis keys are deleted afterwards."""
    line = f"test-core-{uuid.uuid4().hex[:10]}"
    yield line
    redis_client.delete(*line_keys(line))
    redis_client.srem(LINES_KEY, line)
