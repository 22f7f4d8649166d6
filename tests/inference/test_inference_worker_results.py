"""The worker puts every inspected frame into the line's result sequence (core.results)."""

from __future__ import annotations

import pytest
import redis

from core.results import read_line
from inference.pipeline import Inspector
from storage.repository import InspectionRepository
from tests.inference.test_inference_worker import (  # noqa: F401 - the fixtures are used
    _push,
    _run,
    _settings,
    inspector,
    repo,
)

pytestmark = pytest.mark.redis


def test_two_workers_give_every_frame_one_result_id(
    redis_client: redis.Redis, line_id: str, inspector: Inspector,  # noqa: F811
    repo: InspectionRepository,  # noqa: F811 - the real log (SQLite and PostgreSQL)
) -> None:
    r = redis_client
    _push(r, line_id, 8)
    for worker, n in (("w1", 5), ("w2", 3)):
        _run(settings=_settings(line_id, worker), recipe=inspector.recipe, repository=repo,
             inspector=inspector, redis_client=r, max_frames=n)
    _, page = read_line(r, line_id, after=0)
    assert [x["result_id"] for x in page.results] == list(range(1, 9))
    assert sorted(x["frame_id"] for x in page.results) == list(range(1, 9))
    assert all(x["verdict"] == ("NG" if x["frame_id"] % 2 else "OK") for x in page.results)
    assert page.ng == 4 and page.totals == {"OK": 4, "NG": 4}
    assert all(x["inspection_id"] is not None for x in page.results)
