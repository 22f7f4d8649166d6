"""Inference backends: OpenVINO serves every zoo model it can read with onnxruntime's scores.

The golden images are fixed images shipped in the repository (``models/zoo/golden`` when
present, and two demo frames); each goes through the service's own path (``OnnxModel``:
contract preprocessing, batched runs) on both engines. OpenVINO runs at f32: its default on
CPUs with bf16 support would move the scores by up to 3e-2.
"""

from __future__ import annotations

import importlib.util
import logging
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import cv2
import numpy as np
import pytest

from core.recipe import Recipe, load_recipe
from core.settings import DEMO_FRAMES_DIR, REPO_ROOT, Settings
from inference.backends import BackendUnavailable, open_backend
from inference.backends.probe import PROBE_BATCH, choose, clear_cache
from inference.model import OnnxModel
from inference.pipeline import Inspector
from inference.postprocess import softmax

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.onnx_factory import make_segmenter  # noqa: E402

ZOO = REPO_ROOT / "models" / "zoo"
ZOO_MODELS = sorted(ZOO.glob("*.onnx"))
#: What OpenVINO cannot serve: the AlexNet-SVM screens' ai.onnx.ml SVM (it cannot read it)
#: and the INT8 (QDQ) artifacts (its int8 kernels give other scores: refused).
NOT_ON_OPENVINO = {"alexnet_svm": "SVM", "alexnet_svm_fast": "SVM"} | {
    p.stem: "quantized" for p in ZOO_MODELS if p.name.endswith(".int8.onnx")
}
TOLERANCE = 1e-3

needs_openvino = pytest.mark.skipif(
    importlib.util.find_spec("openvino") is None, reason="openvino is not installed"
)


def golden_images() -> list[np.ndarray]:
    """The golden images (``models/zoo/golden/*.png``) and the first two demo frames."""
    paths = sorted((ZOO / "golden").glob("*.png")) + sorted(DEMO_FRAMES_DIR.glob("*.png"))[:2]
    return [cv2.imread(str(p), cv2.IMREAD_UNCHANGED) for p in paths]


@needs_openvino
@pytest.mark.parametrize("path", ZOO_MODELS, ids=[p.stem for p in ZOO_MODELS])
def test_openvino_scores_equal_onnxruntime_scores(path: Path) -> None:
    if path.stem in NOT_ON_OPENVINO:
        with pytest.raises(BackendUnavailable, match=NOT_ON_OPENVINO[path.stem]):
            OnnxModel(path, "openvino", threads=1)
        return
    images = golden_images()
    ort = OnnxModel(path, "onnxruntime", threads=1).predict(images, batch_size=4)
    ov_model = OnnxModel(path, "openvino", threads=1)
    assert ov_model.engine == "openvino"
    ov = ov_model.predict(images, batch_size=4)
    assert ov.shape == ort.shape
    diff = np.abs(softmax(ov, axis=1) - softmax(ort, axis=1)).max()
    assert diff < TOLERANCE, f"{path.stem}: scores differ by {diff:.2e}"


@needs_openvino
def test_openvino_compiles_at_f32(tmp_path: Path) -> None:
    import openvino as ov

    backend = open_backend(make_segmenter(tmp_path / "s.onnx"), "openvino")
    assert backend.compiled.get_property("INFERENCE_PRECISION_HINT") == ov.Type.f32
    assert "f32" in backend.describe()


@needs_openvino
def test_a_recipe_served_on_openvino_gives_onnxruntime_verdicts() -> None:
    """The steel-strip recipe (its fp32 segmenter: OpenVINO refuses the INT8 one) on a demo
    frame: the same verdict, defects and boxes on both engines, scores within 1e-3."""
    recipe = load_recipe("steel-strip")
    models = [m.model_copy(update={"quantize": "none"}) for m in recipe.models]
    recipe = recipe.model_copy(update={"models": models})
    settings = Settings(ort_threads=1)
    defective = [p for p in sorted(DEMO_FRAMES_DIR.glob("*.png")) if "clean" not in p.name]
    if not defective:
        pytest.skip("no demo frame with a defect")
    frame = cv2.imread(str(defective[0]), cv2.IMREAD_GRAYSCALE)
    results = {}
    for engine in ("onnxruntime", "openvino"):
        inspector = Inspector(recipe.model_copy(update={"engine": engine}), settings)
        assert {m.engine for _, m in inspector.models} == {engine}
        results[engine] = inspector.inspect(frame, "l1", 1, datetime.now(UTC))
    ort, ov = results["onnxruntime"], results["openvino"]
    assert ov.verdict == ort.verdict and len(ov.defects) == len(ort.defects) > 0
    for a, b in zip(ort.defects, ov.defects, strict=True):
        assert (a.cls, a.bbox, a.model) == (b.cls, b.bbox, b.model)
        assert abs(a.score - b.score) < TOLERANCE


class FakeBackend:
    """A backend whose speed and scores the test sets (``run`` sleeps ``delay`` s)."""

    def __init__(self, engine: str, delay: float, shift: float = 0.0) -> None:
        self.engine, self.delay, self.shift = engine, delay, shift
        self.path = Path("fake.onnx")

    def metadata_props(self) -> dict[str, str]:
        return {"lineinspect.channels": "1", "lineinspect.input_size": "[8, 8]"}

    def input_shape(self) -> list[object]:
        return ["batch", 1, 8, 8]

    def output_shape(self) -> list[object]:
        return ["batch", 3]

    def run(self, batch: np.ndarray) -> np.ndarray:
        time.sleep(self.delay)
        out = batch.reshape(len(batch), -1)[:, :3].astype(np.float32)
        out[:, 0] += self.shift
        return out

    def describe(self) -> str:
        return self.engine


def test_auto_picks_the_fastest_engine_with_onnxruntime_scores() -> None:
    ort = FakeBackend("onnxruntime", 0.02)
    faster = choose(ort, {"openvino": FakeBackend("openvino", 0.002)})
    assert faster.engine == "openvino" and faster.probe_batch == PROBE_BATCH
    assert faster.ms_per_batch["openvino"] < faster.ms_per_batch["onnxruntime"]
    assert faster.max_score_diff["openvino"] == 0.0
    assert "x onnxruntime" in faster.reason and "ms" in faster.reason
    # faster but its scores are off by more than 1e-3: not a candidate
    off = choose(ort, {"openvino": FakeBackend("openvino", 0.002, shift=0.05)})
    assert off.engine == "onnxruntime" and "scores differ" in off.rejected["openvino"]
    # slower: the reference stays
    slower = choose(FakeBackend("onnxruntime", 0.002), {"openvino": FakeBackend("openvino", 0.02)})
    assert slower.engine == "onnxruntime" and "no other engine" in slower.reason
    # refused by the other engine: no probe at all
    alone = choose(ort, {}, {"openvino": "quantized graph"})
    assert alone.engine == "onnxruntime" and "quantized" in alone.reason
    assert alone.ms_per_batch == {}


def test_auto_probe_is_logged_kept_and_reused(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A real file: the probe's choice is on the backend, logged with its reason, and a second
    load in the process reuses it; a model OpenVINO cannot serve runs on onnxruntime."""
    clear_cache()
    path = make_segmenter(tmp_path / "s.onnx")
    with caplog.at_level(logging.INFO, logger="inference.backends"):
        first = open_backend(path, "auto", threads=1, name="seg")
    choice = first.choice
    assert first.engine == choice.engine
    has_openvino = importlib.util.find_spec("openvino") is not None
    if has_openvino:
        assert set(choice.ms_per_batch) == {"onnxruntime", "openvino"}
        assert choice.max_score_diff["openvino"] <= 1e-3
        assert choice.probe_s > 0
    assert f"model seg: engine auto -> {choice.engine}" in caplog.text
    again = open_backend(path, "auto", threads=1)
    assert again.choice is choice and again.engine == choice.engine  # cached, not re-probed
    screen = open_backend(ZOO / "alexnet_svm_fast.onnx", "auto", threads=1)
    assert screen.engine == "onnxruntime"
    if has_openvino:
        assert "openvino" in screen.choice.rejected
    with pytest.raises(ValueError, match="unknown engine"):
        open_backend(path, "tensorflow")


def test_inspector_reports_each_models_engine_and_why(tmp_path: Path) -> None:
    seg = make_segmenter(tmp_path / "seg.onnx", input_size=(32, 32))
    recipe = Recipe.model_validate(
        {"name": "t", "engine": "auto",
         "models": [{"name": "seg", "path": str(seg), "tile": 32}]}
    )
    choices = Inspector(recipe, Settings(ort_threads=1)).engine_choices
    assert set(choices) == {"seg"}
    assert choices["seg"]["engine"] in ("onnxruntime", "openvino")
    assert choices["seg"]["reason"] and "ms_per_batch" in choices["seg"]
    fixed = Inspector(recipe.model_copy(update={"engine": "onnxruntime"}), Settings())
    assert fixed.engine_choices["seg"]["engine"] == "onnxruntime"
