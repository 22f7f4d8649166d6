"""Screen cascade measurement (``models.svm.cascade``) and the ``commutator`` recipe.

Formula models from tests/onnx_factory.py: the screen calls a frame defective when its mean
gray is dark, the segmenter marks dark pixels. A small dark defect on a bright frame is
therefore missed by the whole-frame screen but found by the segmenter alone: the measured
recall cost must show exactly that, and the cascade must skip the segmenter on OK frames.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import cv2
import numpy as np
import pytest

from core.model_meta import read_props
from core.recipe import Recipe, load_recipe
from core.settings import Settings
from models.data import Sample
from models.svm.cascade import measure
from tests.onnx_factory import make_segmenter

REPO = Path(__file__).resolve().parents[2]

H, W = 160, 64


def _sample(d: Path, name: str, box: tuple[int, int, int, int] | None) -> Sample:
    img = np.full((H, W), 200, np.uint8)
    mask = np.zeros((H, W), np.uint8)
    if box is not None:
        x, y, w, h = box
        img[y : y + h, x : x + w] = 20
        mask[y : y + h, x : x + w] = 255
    cv2.imwrite(str(d / f"{name}.png"), img)
    cv2.imwrite(str(d / f"{name}_mask.png"), mask)
    return Sample(d / f"{name}.png", int(box is not None), d / f"{name}_mask.png")


@pytest.fixture()
def cascade_recipe(model_dir: Path, tmp_path: Path) -> Recipe:
    seg = make_segmenter(tmp_path / "seg_exact.onnx", input_size=(H, W))  # exact boxes
    return Recipe.model_validate(
        {
            "name": "cascade-test",
            "models": [{"name": "seg", "path": str(seg), "tile": 0, "min_area": 10}],
            "screen": {
                "model": {"name": "screen", "path": str(model_dir / "screen.onnx"), "tile": 0},
                "scope": "frame",
                "threshold": 0.5,
            },
        }
    )


def test_measure_speedup_and_recall_cost(cascade_recipe: Recipe, tmp_path: Path) -> None:
    samples = [_sample(tmp_path, f"ok{i}", None) for i in range(3)]
    samples += [
        _sample(tmp_path, "big0", (0, 0, 64, 120)),  # mostly dark: the screen fires
        _sample(tmp_path, "big1", (0, 30, 64, 110)),
        _sample(tmp_path, "small", (20, 50, 10, 10)),  # bright frame: the screen misses it
    ]
    r = measure(cascade_recipe, samples, Settings(ort_threads=1))
    full, casc = r["no_screen"], r["cascade"]
    assert (r["images"], r["defective"]) == (6, 3)
    assert full["recall_defective"] == 1.0 and full["accuracy"] == 1.0
    assert full["heavy_ran_fraction"] == 1.0
    assert casc["recall_defective"] == pytest.approx(2 / 3)
    assert casc["missed_defective"] == 1 and casc["false_alarms_ok"] == 0
    assert casc["heavy_ran_fraction"] == pytest.approx(2 / 6, abs=1e-4)
    assert r["recall_cost"] == pytest.approx(1 / 3, abs=1e-4)
    assert r["speedup"] > 0 and full["mean_ms"] > 0
    # the segmenter's boxes are exact on the frames it ran on
    assert full["boxes_on_defective"]["box_recall@0.5"] == 1.0
    assert full["boxes_on_defective"]["mean_iou"] == pytest.approx(1.0)
    assert casc["boxes_on_defective"]["box_recall@0.5"] == pytest.approx(2 / 3)
    assert full["boxes_on_ok_images"] == casc["boxes_on_ok_images"] == 0


def test_measure_needs_a_screen(cascade_recipe: Recipe) -> None:
    with pytest.raises(ValueError):
        measure(cascade_recipe.model_copy(update={"screen": None}), [])


def test_commutator_recipe_declares_the_cascade() -> None:
    r = load_recipe("commutator")
    assert r.screen is not None and r.screen.model.name == "alexnet_svm"
    # a single-pass, smaller-input screen of the same task and data than the stand-alone
    # alexnet_svm (the cascade only needs 99 % recall, and the screen's cost is its overhead)
    assert r.screen.model.path == "models/zoo/alexnet_svm_fast.onnx"
    fast, full = (
        read_props(REPO / r.screen.model.path),
        read_props(REPO / "models/zoo/alexnet_svm.onnx"),
    )
    assert json.loads(fast["lineinspect.views"]) == ["id"]
    assert len(json.loads(full["lineinspect.views"])) > 1
    assert all(fast["lineinspect." + k] == full["lineinspect." + k] for k in ("classes", "dataset"))
    fast_px, full_px = (
        math.prod(json.loads(p["lineinspect.input_size"])) * len(json.loads(p["lineinspect.views"]))
        for p in (fast, full)
    )
    assert fast_px < full_px  # the screen must be the cheaper pass
    assert r.screen.scope == "frame" and r.screen.model.tile == 0
    assert 0.0 < r.screen.threshold < 0.5  # lowered for >= 0.99 recall of defective frames
    assert [m.name for m in r.models] == ["sme_deeplabv3plus_ksdd"]
    assert r.models[0].path == "models/zoo/sme_deeplabv3plus_ksdd.onnx"
    # the segmenter was trained on 256-px tiles: the recipe must cut the same tiles
    assert str(r.models[0].tile) == read_props(REPO / r.models[0].path)["lineinspect.tile"]
