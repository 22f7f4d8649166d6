"""Fixtures of the inference tests: tiny formula models (tests/onnx_factory.py) and Redis."""

from __future__ import annotations

import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from core.bus import line_keys  # noqa: E402
from tests.onnx_factory import make_classifier, make_segmenter  # noqa: E402


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Formula models: dark tiles/pixels are defects (see tests/onnx_factory.py)."""
    d = tmp_path_factory.mktemp("models")
    make_classifier(d / "cls.onnx", ("defect_free", "dark"), (180.0, 40.0), input_size=(64, 64))
    make_classifier(d / "screen.onnx", ("ok", "defect"), (180.0, 40.0), input_size=(32, 32))
    make_segmenter(d / "seg.onnx", ("background", "dark_spot"), (180.0, 40.0), input_size=(64, 64))
    return d


@pytest.fixture()
def line_id(redis_client: Any) -> Iterator[str]:
    """A unique line id; its Redis keys are deleted afterwards."""
    line = f"test-inf-{uuid.uuid4().hex[:10]}"
    yield line
    redis_client.delete(*line_keys(line))
    redis_client.srem("lines", line)
