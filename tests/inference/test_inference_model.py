"""OnnxModel: artifact metadata validation, preprocessing, batching (onnxruntime backend)."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from core.model_meta import ModelMetadataError
from inference.backends.onnxruntime import resolve_providers
from inference.model import OnnxModel
from tests.onnx_factory import make_classifier, make_segmenter


def reference_preprocess(
    tiles: list[np.ndarray],
    channels: int,
    size: tuple[int, int],
    mean: list[float],
    std: list[float],
) -> np.ndarray:
    """The contract's preprocessing written out independently: channels -> resize -> /255 ->
    mean/std."""
    out = []
    for t in tiles:
        if channels == 1 and t.ndim == 3:
            t = cv2.cvtColor(t, cv2.COLOR_RGB2GRAY)
        if channels == 3 and t.ndim == 2:
            t = np.repeat(t[:, :, None], 3, axis=2)
        t = cv2.resize(t, (size[1], size[0]), interpolation=cv2.INTER_LINEAR)
        if t.ndim == 2:
            t = t[:, :, None]
        x = t.astype(np.float32) / np.float32(255.0)
        x = (x - np.asarray(mean, np.float32)) / np.asarray(std, np.float32)
        out.append(x.transpose(2, 0, 1))
    return np.stack(out)


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("tile_shape", [(64, 64), (100, 80), (40, 40, 3), (64, 64, 3)])
def test_preprocess_equals_reference(
    tmp_path: Path, channels: int, tile_shape: tuple[int, ...]
) -> None:
    mean = [0.485, 0.456, 0.406][:channels]
    std = [0.229, 0.224, 0.225][:channels]
    path = make_classifier(
        tmp_path / "c.onnx", input_size=(64, 48), channels=channels, mean=mean, std=std
    )
    model = OnnxModel(path)
    rng = np.random.default_rng(7)
    tiles = [rng.integers(0, 256, tile_shape, dtype=np.uint8) for _ in range(5)]
    got = model.preprocess(tiles)
    ref = reference_preprocess(tiles, channels, (64, 48), mean, std)
    assert got.dtype == np.float32 and got.shape == (5, channels, 64, 48)
    np.testing.assert_allclose(got, ref, rtol=0, atol=1e-6)


def test_preprocess_reuses_buffer_and_accepts_out(tmp_path: Path) -> None:
    model = OnnxModel(make_classifier(tmp_path / "c.onnx", input_size=(32, 32)))
    tiles = [np.full((32, 32), v, np.uint8) for v in (0, 255)]
    a = model.preprocess(tiles)
    b = model.preprocess(tiles[:1])
    assert np.shares_memory(a, b)  # preallocated, reused
    out = np.empty((2, 1, 32, 32), np.float32)
    assert model.preprocess(tiles, out=out) is out
    np.testing.assert_allclose(out[:, 0, 0, 0], [(0 - 0.5) / 0.25, (1 - 0.5) / 0.25])
    with pytest.raises(ValueError):
        model.preprocess(tiles, out=np.empty((1, 1, 32, 32), np.float32))
    with pytest.raises(ValueError):
        model.preprocess([np.zeros((32, 32), np.float32)])


def test_batches_equal_single_run(tmp_path: Path) -> None:
    model = OnnxModel(make_classifier(tmp_path / "c.onnx", input_size=(32, 32), scale=0.5))
    rng = np.random.default_rng(0)
    tiles = [rng.integers(0, 256, (40, 40), dtype=np.uint8) for _ in range(11)]
    full = model.predict(tiles, batch_size=32)
    np.testing.assert_allclose(model.predict(tiles, batch_size=3), full, rtol=1e-6)
    assert full.shape == (11, 2)
    chunks = [len(lg) for _, lg, _, _ in model.predict_iter(tiles, batch_size=4)]
    assert chunks == [4, 4, 3]


def test_formula_models_predict_brightness(tmp_path: Path) -> None:
    cls = OnnxModel(make_classifier(tmp_path / "c.onnx"))
    assert cls.task == "classify" and cls.classes == ("ok", "defect")
    assert cls.version == "0.1.0" and cls.meta.input_size == (64, 64)
    tiles = [np.full((64, 64), v, np.uint8) for v in (20, 100, 120, 230)]
    assert cls.predict(tiles).argmax(axis=1).tolist() == [1, 1, 0, 0]
    seg = OnnxModel(make_segmenter(tmp_path / "s.onnx"))
    img = np.full((64, 64), 200, np.uint8)
    img[10:20, 5:9] = 30
    out = seg.predict([img])
    assert out.shape == (1, 2, 64, 64)
    assert (out[0].argmax(axis=0) == (img < 110)).all()


def test_providers() -> None:
    assert resolve_providers(None)[-1] == "CPUExecutionProvider"
    assert resolve_providers("NoSuchExecutionProvider") == ["CPUExecutionProvider"]
    assert resolve_providers(["CPUExecutionProvider"]) == ["CPUExecutionProvider"]


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"version": None}, "lineinspect.version"),
        ({"classes": None, "dataset": None}, "lineinspect.classes"),
        ({"task": "detect"}, "task"),
        ({"classes": "not json"}, "not valid JSON"),
        ({"classes": json.dumps(["ok"])}, "at least two"),
        ({"classes": json.dumps(["ok", "ok"])}, "unique"),
        ({"input_size": json.dumps([64])}, "input_size"),
        ({"channels": "2"}, "channels"),
        ({"mean": json.dumps([0.5, 0.5])}, "mean"),
        ({"std": json.dumps([0.0])}, "std"),
        ({"version": "latest"}, "semantic version"),
        ({"classes": json.dumps(["ok", "defect", "extra"])}, "classes"),  # != output width
        ({"channels": "3", "mean": "[0,0,0]", "std": "[1,1,1]"}, "channels"),  # != input
        ({"tile": "-256"}, "lineinspect.tile"),
        ({"tile": "large"}, "lineinspect.tile"),
    ],
)
def test_bad_metadata_rejected(
    tmp_path: Path, overrides: dict[str, str | None], message: str
) -> None:
    path = make_classifier(tmp_path / "bad.onnx", meta_overrides=overrides)
    with pytest.raises(ModelMetadataError, match=message):
        OnnxModel(path)


def test_segmenter_classes_must_start_with_background(tmp_path: Path) -> None:
    path = make_segmenter(tmp_path / "s.onnx", meta_overrides={"classes": '["defect", "x"]'})
    with pytest.raises(ModelMetadataError, match="background"):
        OnnxModel(path)


def test_missing_file() -> None:
    with pytest.raises(FileNotFoundError):
        OnnxModel("/nonexistent/model.onnx")


def test_service_modules_do_not_import_torch() -> None:
    import subprocess
    import sys

    code = (
        "import sys; import inference.worker, inference.pipeline, inference.model; "
        "assert 'torch' not in sys.modules, 'torch imported'"
    )
    root = Path(__file__).resolve().parents[2]
    subprocess.run([sys.executable, "-c", code], check=True, cwd=root)
