"""The worker puts every inspected frame into the line's result sequence (core.results):
two workers one after the other on the real Redis and the real inspection log (SQLite)."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import pytest
import redis

from core.bus import stream_key
from core.frame import Frame
from core.recipe import Recipe
from core.results import read_line
from core.settings import Settings
from inference.pipeline import Inspector
from inference.worker import run_inference
from storage.db import make_engine, migrate
from storage.repository import InspectionRepository

pytestmark = pytest.mark.redis
FW, FH = 256, 192
REDIS_URL = "redis://127.0.0.1:6379/0"


def _push(r: redis.Redis, line: str, n: int) -> None:
    """n frames; odd frame ids carry a dark square (NG), even ones are clean (OK)."""
    for fid in range(1, n + 1):
        img = np.full((FH, FW), 200, np.uint8)
        if fid % 2:
            img[40:60, 100:130] = 10
        f = Frame(line, fid, fid * 1000, time.time(), FW, FH, "Mono8", img.tobytes())
        r.xadd(stream_key(line), f.to_fields())


def test_two_workers_give_every_frame_one_result_id(
    redis_client: redis.Redis, line_id: str, model_dir: Path, tmp_path: Path
) -> None:
    recipe = Recipe.model_validate({"name": "t", "models": [
        {"name": "seg", "path": str(model_dir / "seg.onnx"), "tile": 64, "min_area": 20}]})
    inspector = Inspector(recipe, Settings())
    url = f"sqlite:///{tmp_path / 'log.db'}"
    migrate(url)
    engine = make_engine(url)
    repo = InspectionRepository(engine)
    r = redis_client
    _push(r, line_id, 8)
    for worker, n in (("w1", 5), ("w2", 3)):
        stop = threading.Event()
        timer = threading.Timer(60.0, stop.set)  # safety net: never hang the suite
        timer.start()
        try:
            run_inference(Settings(line_id=line_id, redis_url=REDIS_URL, worker_name=worker),
                          recipe, repo, stop=stop, max_frames=n, inspector=inspector,
                          redis_client=r, block_ms=100)
        finally:
            timer.cancel()
    engine.dispose()
    _, page = read_line(r, line_id, after=0)
    assert [x["result_id"] for x in page.results] == list(range(1, 9))
    assert sorted(x["frame_id"] for x in page.results) == list(range(1, 9))
    assert all(x["verdict"] == ("NG" if x["frame_id"] % 2 else "OK") for x in page.results)
    assert page.ng == 4 and page.totals == {"OK": 4, "NG": 4}
    assert len({x["inspection_id"] for x in page.results}) == 8
