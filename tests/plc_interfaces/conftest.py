"""Fixtures of the PLC interface tests: unique line ids on the real Redis and a line that
publishes results (helpers in ``plc_helpers.py``)."""

from __future__ import annotations

import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from core.bus import LINES_KEY, line_keys  # noqa: E402
from tests.plc_interfaces.plc_helpers import Line  # noqa: E402


@pytest.fixture()
def new_line(redis_client: redis.Redis) -> Iterator[Callable[[], str]]:
    """Factory of unique line ids; their keys are deleted afterwards."""
    made: list[str] = []

    def make() -> str:
        made.append(f"test-plc-{uuid.uuid4().hex[:10]}")
        return made[-1]

    yield make
    for line in made:
        redis_client.delete(*line_keys(line))
        redis_client.srem(LINES_KEY, line)


@pytest.fixture()
def line_id(new_line: Callable[[], str]) -> str:
    """One unique line id."""
    return new_line()


@pytest.fixture()
def line(redis_client: redis.Redis, line_id: str) -> Line:
    """A line with a live camera, publishing through :class:`Line`."""
    return Line(redis_client, line_id)
