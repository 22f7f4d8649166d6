"""The worker as ``lineinspect infer`` builds it samples frames for QA review (issue 21.5):
the shadow candidate's disagreements land in the review queue up to the line's daily cap, and
the sampled OK frames keep their image. Real Redis stream, formula ONNX models, one migrated
SQLite log and the image store."""

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
from storage.images import ImageStore  # noqa: E402
from storage.repository import InspectionRepository  # noqa: E402
from storage.review_queue import ReviewQueue  # noqa: E402
from tests.onnx_factory import make_segmenter  # noqa: E402


@pytest.mark.redis
def test_disagreements_are_queued_for_review_up_to_the_cap(
    redis_client: redis.Redis, tmp_path: Path
) -> None:
    line = f"test-review-{uuid.uuid4().hex[:8]}"
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
        "review": {"reasons": ["disagreement"]},
    })
    settings = Settings(redis_url="redis://127.0.0.1:6379/0", database_url=url,
                        data_dir=tmp_path, line_id=line, ort_threads=1, review_daily_cap=2)
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
