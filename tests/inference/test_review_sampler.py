"""Sampling for review (issue 21.5): which frames are picked and why, the daily cap, and that
sampling stays off the verdict path. Real parts: the migrated SQLite inspection log, the review
queue and the image store (``deploy.wiring.keep_sampled_image``)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from core.lifecycle import ShadowRecord
from core.recipe import ModelSpec, Recipe, ReviewSpec
from core.result import Defect, InspectionResult
from core.review import ReviewSample
from deploy.wiring import keep_sampled_image
from inference.review_sampler import ReviewSampler
from storage.db import make_engine, migrate
from storage.images import ImageStore
from storage.repository import InspectionRepository
from storage.review_queue import ReviewQueue

T0 = datetime(2026, 12, 2, 9, 0, 0, tzinfo=UTC)
RECIPE = Recipe(
    name="r",
    models=[ModelSpec(name="seg", path="seg.onnx", threshold=0.5, thresholds={"pit": 0.7})],
    review=ReviewSpec(uncertain_band=0.1, drift_distance=0.2, drift_every=3),
)


def _result(fid: int, scores: tuple[float, ...] = (), cls: str = "scratch") -> InspectionResult:
    defects = [Defect(cls=cls, score=s, bbox=(5 * i, 5, 10, 10), area_px=100, model="seg")
               for i, s in enumerate(scores)]
    return InspectionResult(line_id="line-r", frame_id=fid, captured_at=T0 + timedelta(seconds=fid),
                            verdict="NG" if defects else "OK", defects=defects, recipe="r")


@pytest.fixture()
def log_db(tmp_path: Path) -> tuple[InspectionRepository, ReviewQueue, ImageStore]:
    url = f"sqlite:///{tmp_path / 'log.db'}"
    migrate(url)
    engine = make_engine(url)
    yield InspectionRepository(engine), ReviewQueue(engine), ImageStore(tmp_path / "images")
    engine.dispose()


class _NoStore:
    def enqueue(self, sample: ReviewSample, cap: int):  # noqa: ANN201 - the protocol's
        raise AssertionError("reasons_for must not touch the store")


def test_reasons_uncertain_band_per_class_threshold_and_drift_windows() -> None:
    sampler = ReviewSampler("line-r", RECIPE, _NoStore(), cap=10)
    try:
        # highest score 0.55 is within 0.1 of the 0.5 threshold; 0.8 is sure
        (s,) = sampler.reasons_for(_result(1, (0.55, 0.52)), None)
        assert s.reason == "uncertain" and s.detail["threshold"] == 0.5
        assert s.score == pytest.approx(0.5)
        assert sampler.reasons_for(_result(2, (0.8, 0.52)), None) == []
        # pit's own threshold is 0.7: 0.75 is uncertain, 0.55 would not have been reported
        (s,) = sampler.reasons_for(_result(3, (0.75,), "pit"), None)
        assert s.detail["threshold"] == 0.7
        assert sampler.reasons_for(_result(4), None) == []  # OK, no drift
        unknown = _result(5, (0.55,)).model_copy(update={"verdict": "UNKNOWN"})
        assert sampler.reasons_for(unknown, 0.9) == []  # not inspected: nothing to review
        # a drift window: every 3rd frame while the distance is above 0.2, restarting after
        picked = [bool(sampler.reasons_for(_result(10 + k), d))
                  for k, d in enumerate([0.1, 0.3, 0.3, 0.3, 0.3, 0.1, 0.25])]
        assert picked == [False, True, False, False, True, False, True]
        assert sampler.reasons_for(_result(19), 0.1) == []  # the window ends
        both = sampler.reasons_for(_result(20, (0.58,)), 0.5)
        assert [s.reason for s in both] == ["uncertain", "drift"]
    finally:
        sampler.close()


def test_daily_cap_reasons_and_images_of_ok_frames(log_db, tmp_path: Path) -> None:
    repo, queue, images = log_db
    sampler = ReviewSampler("line-r", RECIPE, queue, cap=4,
                            keep_image=keep_sampled_image(repo, images))
    image = np.full((32, 48), 128, np.uint8)
    try:
        for fid in range(1, 8):  # 7 uncertain NG frames
            result = _result(fid, (0.52 + 0.01 * fid,))
            repo.save(result)
            sampler.consider(image, result, None)
        ok = _result(50)
        ok_id, _ = repo.save(ok)
        live_ng = _result(51, (0.9,))
        repo.save(live_ng)
        candidate = _result(51)  # the candidate says OK: a verdict disagreement
        record = ShadowRecord.of(live_ng, candidate.model_copy(update={"recipe": "cand"}), 3.0)
        assert sampler.drain()
        assert sampler.counts == {"queued": 4, "capped": 3}
        # the cap is known to be reached: later samples of the day are not even queued
        assert not sampler.disagreement(image, live_ng, record)
        assert not sampler.offer(ReviewSample("line-r", 50, ok.captured_at, "drift", 0.4),
                                 image, None)
        assert sampler.counts["capped"] == 5
        pending = queue.pending()
        assert len(pending) == 4 and {p.reason for p in pending} == {"uncertain"}
        # most uncertain (closest to the threshold) first
        assert [p.frame_id for p in pending] == [1, 2, 3, 4]
        assert queue.line_counts("2026-12-02")[0]["sampled_today"] == 4
    finally:
        sampler.close()
    # a new sampler: an OK frame sampled for drift on the next day gets its image retained
    sampler = ReviewSampler("line-r", RECIPE, queue, cap=4,
                            keep_image=keep_sampled_image(repo, images))
    try:
        next_day = _result(60).model_copy(update={"captured_at": T0 + timedelta(days=1)})
        nid, _ = repo.save(next_day)
        assert sampler.offer(ReviewSample("line-r", 60, next_day.captured_at, "drift", 0.4),
                             image, None)
        assert sampler.disagreement(image, live_ng, record) is True  # same day as the cap
        assert sampler.drain()
        assert sampler.counts == {"queued": 1, "capped": 1}
        got = repo.get_record(nid)
        assert got is not None and got.image_path is not None
        assert (images.root / got.image_path).is_file()
        assert repo.get_record(ok_id).image_path is None  # never sampled: not retained
    finally:
        sampler.close()


def test_sample_waits_for_its_inspection_to_be_logged(log_db) -> None:
    repo, queue, _ = log_db
    sampler = ReviewSampler("line-r", RECIPE, queue, cap=10, wait_s=30.0)
    try:
        result = _result(7, (0.55,))
        assert sampler.consider(np.zeros((8, 8), np.uint8), result, None) == 1
        repo.save(result)  # the writer commits after the sampler saw the frame
        assert sampler.drain()
        assert [p.frame_id for p in queue.pending()] == [7]
    finally:
        sampler.close()


class _BrokenStore:
    def enqueue(self, sample: ReviewSample, cap: int):  # noqa: ANN201 - the protocol's
        raise RuntimeError("database gone")


def test_a_failing_queue_never_reaches_the_caller() -> None:
    sampler = ReviewSampler("line-r", RECIPE, _BrokenStore(), cap=10, queue_size=1)
    try:
        results = [_result(fid, (0.55,)) for fid in range(1, 30)]
        offered = [sampler.consider(np.zeros((8, 8), np.uint8), r, 0.9) for r in results]
        assert all(n in (0, 1, 2) for n in offered)
        assert sampler.drain()
        assert sampler.counts.get("dropped", 0) >= 1 and "queued" not in sampler.counts
        # a broken result object does not raise either
        assert sampler.consider(np.zeros((8, 8), np.uint8), None, 0.5) == 0  # type: ignore[arg-type]
    finally:
        sampler.close()
