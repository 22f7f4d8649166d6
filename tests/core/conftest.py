"""Fixtures of the core tests: unique line ids on the real Redis (tests/conftest.py)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
import redis

from core.bus import LINES_KEY, line_keys


@pytest.fixture()
def line_id(redis_client: redis.Redis) -> Iterator[str]:
    """A unique line id; its Redis keys are deleted afterwards."""
    line = f"test-core-{uuid.uuid4().hex[:10]}"
    yield line
    redis_client.delete(*line_keys(line))
    redis_client.srem(LINES_KEY, line)
