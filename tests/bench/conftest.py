"""Fixtures of the benchmark tests: tiny ONNX models built on the fly (no zoo, no training)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.onnx_factory import make_classifier, make_segmenter  # noqa: E402

TINY_SIZE = 32


def export_tiny_net(
    path: Path, classes: int = 3, size: int = TINY_SIZE, names: list[str] | None = None
) -> Path:
    """A small conv net exported like the zoo (artifact + arch metadata); needs torch."""
    torch = pytest.importorskip("torch")
    from core.model_meta import ModelMeta, write_meta
    from models.export import export_onnx

    torch.manual_seed(0)
    net = torch.nn.Sequential(
        torch.nn.Conv2d(1, 8, 3, padding=1),
        torch.nn.ReLU(),
        torch.nn.Conv2d(8, 16, 3, stride=2, padding=1),
        torch.nn.ReLU(),
        torch.nn.AdaptiveAvgPool2d(1),
        torch.nn.Flatten(),
        torch.nn.Linear(16, classes),
    ).eval()
    export_onnx(net, path, 1, [size, size], "classify")
    names = names or [f"c{i}" for i in range(classes)]
    meta = ModelMeta("classify", names, [size, size], 1, [0.5], [0.25], "0.1.0", "synthetic")
    write_meta(path, meta)
    return path


def export_tiny_arch(path: Path, size: int = 64) -> Path:
    """A registered architecture (mm, small) exported with ``lineinspect.arch`` metadata."""
    torch = pytest.importorskip("torch")
    from core.model_meta import ModelMeta, write_meta
    from models import arch
    from models.export import export_onnx

    torch.manual_seed(0)
    net = arch.build("mm", 3, 1, "small").eval()
    export_onnx(net, path, 1, [size, size], "classify", tolerance=1e-2)
    meta = ModelMeta("classify", ["a", "b", "c"], [size, size], 1, [0.5], [0.25], "0.1.0",
                     "synthetic")
    write_meta(path, meta, extra={"arch": "mm", "variant": "small"})
    return path


@pytest.fixture(scope="session")
def tiny_zoo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A zoo folder: one architecture export with arch metadata, two formula models without."""
    d = tmp_path_factory.mktemp("zoo")
    export_tiny_arch(d / "mm.onnx")
    make_classifier(d / "brightness.onnx", ("ok", "dark"), (180.0, 40.0), input_size=(32, 32))
    make_segmenter(d / "spots.onnx", ("background", "spot"), (180.0, 40.0), input_size=(32, 32))
    return d


@pytest.fixture(scope="session")
def calib_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny classification data set layout ``<class>/<image>.png`` of textured images."""
    import cv2

    d = tmp_path_factory.mktemp("calib")
    rng = np.random.default_rng(0)
    for cls in ("a", "b"):
        (d / cls).mkdir()
        for i in range(10):
            base = rng.integers(60, 200)
            img = np.clip(base + rng.normal(0, 25, (48, 48)), 0, 255).astype(np.uint8)
            cv2.imwrite(str(d / cls / f"{cls}_{i}.png"), img)
    return d
