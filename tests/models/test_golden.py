"""Golden-image parity: the service's tiler + preprocessing + ONNX engine give the scores the
PyTorch checkpoint gave at export (``models/golden.py``), for every released model that
recorded them."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from inference.model import OnnxModel
from inference.tiler import make_tiles
from models.golden import GOLDEN_DIR, summarize

ZOO = GOLDEN_DIR.parent
RELEASED = sorted(
    p for p in ZOO.glob("*.json") if "golden" in json.loads(p.read_text())
)


def test_some_released_model_carries_golden_scores() -> None:
    assert RELEASED, "no model in models/zoo recorded golden scores at export"


@pytest.mark.parametrize("engine", ["onnxruntime", "openvino"])
@pytest.mark.parametrize("facts_file", RELEASED, ids=lambda p: p.stem)
def test_service_path_scores_like_the_checkpoint(facts_file: Path, engine: str) -> None:
    facts = json.loads(facts_file.read_text())
    model = OnnxModel(facts_file.with_suffix(".onnx"), engine)
    for golden in facts["golden"]:
        frame = cv2.imread(str(GOLDEN_DIR / golden["image"]), cv2.IMREAD_GRAYSCALE)
        tiles = make_tiles(frame, tile=0)  # the whole frame as one tile, as the recipes cut
        logits = model.predict(tiles.arrays)[0]
        got = summarize(logits, model.task)
        if model.task == "classify":
            np.testing.assert_allclose(got["logits"], golden["logits"], atol=2e-3)
            assert np.argmax(got["logits"]) == np.argmax(golden["logits"])
        else:
            np.testing.assert_allclose(got["mean_logits"], golden["mean_logits"], atol=2e-3)
            pixels = np.asarray(golden["class_pixels"])
            # argmax may flip on a handful of tie pixels, never on a visible area
            assert np.abs(np.asarray(got["class_pixels"]) - pixels).sum() <= 0.001 * pixels.sum()
