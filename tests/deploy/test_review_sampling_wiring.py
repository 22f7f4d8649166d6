"""The worker as ``lineinspect infer`` builds it samples frames for QA review (issue 21.5):
the shadow candidate's disagreements land in the review queue up to the line's daily cap, and
the sampled OK frames keep their image. Real Redis stream, formula ONNX models, one migrated
SQLite log and the image store."""

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
from storage.images import ImageStore  # noqa: E402
from storage.repository import InspectionRepository  # noqa: E402
from storage.review_queue import ReviewQueue  # noqa: E402
from tests.deploy.shadow_line import feed_frames, shadow_recipe  # noqa: E402


@pytest.mark.redis
def test_disagreements_are_queued_for_review_up_to_the_cap(
    redis_client: redis.Redis, tmp_path: Path
) -> None:
    line = f"test-review-{uuid.uuid4().hex[:8]}"
    url = f"sqlite:///{tmp_path / 'log.db'}"
    migrate(url)
    recipe = shadow_recipe(tmp_path, review={"reasons": ["disagreement"]})
    settings = Settings(redis_url="redis://127.0.0.1:6379/0", database_url=url,
                        data_dir=tmp_path, line_id=line, ort_threads=1, review_daily_cap=2)
    feed_frames(redis_client, line)
    try:
        stats = run_inference_worker(settings, recipe, max_frames=6, block_ms=100)
    finally:
        redis_client.delete(*line_keys(line), reference_key(line))
        redis_client.srem("lines", line)
    engine = make_engine(url)
    try:
        assert stats.processed == 6
        repo = InspectionRepository(engine)
        assert repo.count(line, "NG") == 0  # the live verdicts are the live recipe's
        pending = ReviewQueue(engine).pending(line)
        # three frames disagree, the cap of the day takes the first two the shadow reported
        assert len(pending) == 2 and {p.reason for p in pending} == {"disagreement"}
        assert {p.frame_id for p in pending} <= {2, 4, 6}
        assert all(p.detail["disagreement"]["kind"] == "verdict" for p in pending)
        images = ImageStore.from_settings(settings)
        for item in pending:  # live OK frames: retained because they were sampled
            record = repo.get_record(item.inspection_id)
            assert record is not None and record.image_path is not None
            assert images.load_image(record.image_path).shape == (96, 128)
        kept = [r for r in repo.query(line_id=line, limit=10)[0] if r.image_path]
        assert len(kept) == 2  # nothing else of this OK-only line was retained
    finally:
        engine.dispose()
    labels = {"line": line, "reason": "disagreement"}
    assert REGISTRY.get_sample_value("lineinspect_review_samples_total",
                                     {**labels, "outcome": "queued"}) == 2
    assert REGISTRY.get_sample_value("lineinspect_review_samples_total",
                                     {**labels, "outcome": "capped"}) == 1
