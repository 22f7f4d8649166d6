"""Shadow model (issue 21): a candidate recipe on the live frames, off the verdict path.

Real parts: the formula ONNX models on onnxruntime (tests/onnx_factory.py), the real
``Inspector``, the SQLite inspection log migrated to head (``shadow_results``). The live
segmenter calls pixels darker than 110 defects, the candidate those darker than 140, so a
frame with a 120-gray patch is OK live and NG for the candidate.
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
from prometheus_client import REGISTRY

from core.frame import Frame
from core.recipe import ModelSpec, Recipe, ShadowSpec
from core.result import InspectionResult
from inference.drift import DriftMonitor
from inference.pipeline import Inspector
from inference.shadow import ShadowRunner, candidate_recipe
from inference.watched import WatchedInspector
from storage.db import make_engine, migrate
from storage.shadow import ShadowRepository
from tests.onnx_factory import make_segmenter

H, W = 96, 128


def _frame(line: str, fid: int, patch: int | None) -> Frame:
    img = np.full((H, W), 200, np.uint8)
    if patch is not None:
        img[30:60, 40:90] = patch
    return Frame(line, fid, fid, time.time(), W, H, "Mono8", img.tobytes())


@pytest.fixture()
def recipes(tmp_path: Path) -> tuple[Recipe, Recipe]:
    live_seg = make_segmenter(tmp_path / "live.onnx", ("background", "dark"), (180.0, 40.0),
                              input_size=(32, 32))
    cand_seg = make_segmenter(tmp_path / "cand.onnx", ("background", "dark"), (180.0, 100.0),
                              input_size=(32, 32), version="2.0.0")
    live = Recipe(name="live", models=[ModelSpec(name="seg", path=str(live_seg), tile=64,
                                                 min_area=50)],
                  shadow=ShadowSpec(models={"seg": str(cand_seg)}))
    return live, candidate_recipe(live, live.shadow)


@pytest.fixture()
def store(tmp_path: Path) -> ShadowRepository:
    url = f"sqlite:///{tmp_path / 'log.db'}"
    migrate(url)
    return ShadowRepository(make_engine(url))


def _sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_candidate_recipe_swaps_and_renames_models(recipes: tuple[Recipe, Recipe]) -> None:
    live, cand = recipes
    assert [m.name for m in cand.models] == ["seg@shadow"]
    assert cand.models[0].path.endswith("cand.onnx") and cand.shadow is None
    gated = live.model_copy(update={"models": [
        *live.models, ModelSpec(name="cls", path="x.onnx", gate="seg")]})
    assert candidate_recipe(gated, live.shadow).models[1].gate == "seg@shadow"
    with pytest.raises(ValueError, match="not models of recipe"):
        candidate_recipe(live, ShadowSpec(models={"nope": "x.onnx"}))
    with pytest.raises(ValueError, match="either recipe or models"):
        ShadowSpec(recipe="other", models={"seg": "x.onnx"})


def test_shadow_logs_beside_live_and_counts_disagreements(
    recipes: tuple[Recipe, Recipe], store: ShadowRepository
) -> None:
    live_recipe, cand_recipe = recipes
    line = "shadow-line-1"
    before = _sample("lineinspect_shadow_disagreements_total", line=line, kind="verdict")
    runner = ShadowRunner(line, Inspector(cand_recipe), store, max_share=1.0, queue_size=4)
    watched = WatchedInspector(Inspector(live_recipe), DriftMonitor(line), runner)
    try:
        results = [watched.inspect_frame(_frame(line, 1, None)),
                   watched.inspect_frame(_frame(line, 2, 120))]
        runner.drain()
    finally:
        watched.close()
    assert [r.verdict for r in results] == ["OK", "OK"]  # the live verdicts
    assert (runner.stats.agree, runner.stats.disagree, runner.stats.stored) == (1, 1, 2)
    assert _sample("lineinspect_shadow_disagreements_total", line=line, kind="verdict") \
        == before + 1
    rows = store.results(line, disagreeing=True)
    assert [(r.frame_id, r.live_verdict, r.verdict, r.classes) for r in rows] == [
        (2, "OK", "NG", ["dark"])]
    assert rows[0].models == {"seg@shadow": "2.0.0"} and rows[0].recipe == "live@shadow"
    assert len(store.results(line)) == 2
    (day,) = store.daily_summary(line)
    assert (day.runs, day.verdict, day.classes) == (2, 1, 0)
    assert store.save_shadow(rows[0]) is False  # a re-delivered frame is logged once


class _Failing:
    def inspect(self, *args: object) -> InspectionResult:
        raise RuntimeError("candidate broke")


class _Blocking:
    """A candidate that hangs until released (a slow model)."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.started = threading.Event()

    def inspect(self, image: np.ndarray, line_id: str, frame_id: int,
                captured_at: datetime) -> InspectionResult:
        self.started.set()
        self.release.wait(30)
        return InspectionResult(line_id=line_id, frame_id=frame_id, captured_at=captured_at,
                                verdict="OK", recipe="slow")


def test_a_failing_candidate_never_touches_the_live_result(
    recipes: tuple[Recipe, Recipe],
) -> None:
    runner = ShadowRunner("shadow-line-2", _Failing())
    watched = WatchedInspector(Inspector(recipes[0]), None, runner)
    try:
        result = watched.inspect_frame(_frame("shadow-line-2", 1, 20))
        runner.drain()
    finally:
        watched.close()
    assert result.verdict == "NG" and runner.stats.failed == 1


def test_a_hanging_candidate_skips_frames_and_never_blocks_the_live_path(
    recipes: tuple[Recipe, Recipe],
) -> None:
    slow = _Blocking()
    runner = ShadowRunner("shadow-line-3", slow, queue_size=2)
    watched = WatchedInspector(Inspector(recipes[0]), None, runner)
    try:
        verdicts = [watched.inspect_frame(_frame("shadow-line-3", 1, 20)).verdict]
        assert slow.started.wait(10)  # the candidate now hangs on frame 1
        verdicts += [watched.inspect_frame(_frame("shadow-line-3", i, 20)).verdict
                     for i in range(2, 8)]
    finally:
        slow.release.set()
        watched.close()
    assert verdicts == ["NG"] * 7  # every live verdict came while the shadow hung
    assert runner.stats.skipped == 4  # 2 waited in its queue, the other 4 were skipped


def test_budget_limits_the_share_of_time_the_candidate_computes() -> None:
    now = [0.0]
    slow = _Blocking()
    slow.release.set()
    runner = ShadowRunner("shadow-line-4", slow, max_share=0.25, clock=lambda: now[0])
    live = InspectionResult(line_id="shadow-line-4", frame_id=1,
                            captured_at=datetime.now(UTC), verdict="OK")
    image = np.zeros((4, 4), np.uint8)
    try:
        assert runner.offer(image, live)
        runner.drain()  # it ran for t seconds: now it rests 3 t (25 % duty)
        assert not runner.offer(image, live)
        now[0] = 1e6
        assert runner.offer(image, live)
        runner.drain()
    finally:
        runner.close()
    assert (runner.stats.agree, runner.stats.skipped) == (2, 1)
