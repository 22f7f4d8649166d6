"""The worker as ``lineinspect infer`` builds it runs the recipe's shadow (issue 21): frames
from the real Redis stream, live results and shadow results in one migrated SQLite log."""

from __future__ import annotations

import sys
import time
import uuid
from pathlib import Path

import numpy as np
import pytest
import redis
from prometheus_client import REGISTRY

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from core.bus import line_keys, stream_key  # noqa: E402
from core.frame import Frame  # noqa: E402
from core.recipe import Recipe  # noqa: E402
from core.settings import Settings  # noqa: E402
from deploy.wiring import run_inference_worker  # noqa: E402
from inference.drift import reference_key  # noqa: E402
from storage.db import make_engine, migrate  # noqa: E402
from storage.repository import InspectionRepository  # noqa: E402
from storage.shadow import ShadowRepository  # noqa: E402
from tests.onnx_factory import make_segmenter  # noqa: E402


@pytest.mark.redis
def test_the_worker_logs_shadow_results_beside_the_live_ones(
    redis_client: redis.Redis, tmp_path: Path
) -> None:
    line = f"test-shadow-{uuid.uuid4().hex[:8]}"
    url = f"sqlite:///{tmp_path / 'log.db'}"
    migrate(url)
    live = make_segmenter(tmp_path / "live.onnx", ("background", "dark"), (180.0, 40.0),
                          input_size=(32, 32))
    cand = make_segmenter(tmp_path / "cand.onnx", ("background", "dark"), (180.0, 100.0),
                          input_size=(32, 32))
    recipe = Recipe.model_validate({
        "name": "live", "max_backlog_ms": 0,
        "models": [{"name": "seg", "path": str(live), "tile": 64, "min_area": 50}],
        "shadow": {"models": {"seg": str(cand)}, "max_share": 1.0, "queue": 16},
    })
    settings = Settings(redis_url="redis://127.0.0.1:6379/0", database_url=url,
                        data_dir=tmp_path, line_id=line, ort_threads=1)
    before = REGISTRY.get_sample_value("lineinspect_shadow_disagreements_total",
                                       {"line": line, "kind": "verdict"}) or 0.0
    for fid in range(1, 7):  # even frames hold a 120-gray patch: OK live, NG for the candidate
        img = np.full((96, 128), 200, np.uint8)
        if fid % 2 == 0:
            img[30:60, 40:90] = 120
        redis_client.xadd(stream_key(line), Frame(line, fid, fid, time.time(), 128, 96, "Mono8",
                                                  img.tobytes()).to_fields())
    try:
        stats = run_inference_worker(settings, recipe, max_frames=6, block_ms=100)
    finally:
        redis_client.delete(*line_keys(line), reference_key(line))
        redis_client.srem("lines", line)
    engine = make_engine(url)
    try:
        assert stats.processed == 6 and InspectionRepository(engine).count(line, "NG") == 0
        shadow = ShadowRepository(engine)
        assert len(shadow.results(line)) == 6  # the close drained the shadow's queue
        assert sorted(r.frame_id for r in shadow.results(line, disagreeing=True)) == [2, 4, 6]
    finally:
        engine.dispose()
    after = REGISTRY.get_sample_value("lineinspect_shadow_disagreements_total",
                                      {"line": line, "kind": "verdict"})
    assert after == before + 3
