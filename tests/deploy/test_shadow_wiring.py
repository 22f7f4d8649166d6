"""The worker as ``lineinspect infer`` builds it runs the recipe's shadow (issue 21): frames
from the real Redis stream, live results and shadow results in one migrated SQLite log."""

from __future__ import annotations

import sys
import uuid
from pathlib import Path

import pytest
import redis
from prometheus_client import REGISTRY

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from core.bus import line_keys  # noqa: E402
from core.settings import Settings  # noqa: E402
from deploy.wiring import run_inference_worker  # noqa: E402
from inference.drift import reference_key  # noqa: E402
from storage.db import make_engine, migrate  # noqa: E402
from storage.repository import InspectionRepository  # noqa: E402
from storage.shadow import ShadowRepository  # noqa: E402
from tests.deploy.shadow_line import feed_frames, shadow_recipe  # noqa: E402


@pytest.mark.redis
def test_the_worker_logs_shadow_results_beside_the_live_ones(
    redis_client: redis.Redis, tmp_path: Path
) -> None:
    line = f"test-shadow-{uuid.uuid4().hex[:8]}"
    url = f"sqlite:///{tmp_path / 'log.db'}"
    migrate(url)
    recipe = shadow_recipe(tmp_path)
    settings = Settings(redis_url="redis://127.0.0.1:6379/0", database_url=url,
                        data_dir=tmp_path, line_id=line, ort_threads=1)
    before = REGISTRY.get_sample_value("lineinspect_shadow_disagreements_total",
                                       {"line": line, "kind": "verdict"}) or 0.0
    feed_frames(redis_client, line)
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
