"""core.model_meta: one reader, writer and validator of the artifact metadata."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from core.model_meta import (
    PREFIX,
    REQUIRED,
    ModelMeta,
    ModelMetadataError,
    check_signature,
    read_meta,
    read_props,
    write_meta,
)

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.onnx_factory import make_classifier  # noqa: E402


def _meta(**overrides: object) -> ModelMeta:
    values: dict = {"task": "segment", "classes": ["background", "scratch"],
                    "input_size": [128, 96], "channels": 3, "mean": [0.5] * 3,
                    "std": [0.25] * 3, "version": "1.2.0+int8", "dataset": "x sha256:0"}
    return ModelMeta(**(values | overrides))


def test_write_then_read_round_trips(tmp_path: Path) -> None:
    path = make_classifier(tmp_path / "c.onnx")
    meta = _meta(tile=256)
    write_meta(path, meta, extra={"arch": "sme_deeplabv3plus"})
    props = read_props(path)
    assert all(PREFIX + k in props for k in REQUIRED)
    assert props[PREFIX + "tile"] == "256" and props[PREFIX + "arch"] == "sme_deeplabv3plus"
    assert json.loads(props[PREFIX + "classes"]) == ["background", "scratch"]
    got = read_meta(path)
    assert got == meta and got.input_size == (128, 96) and got.source == str(path)
    assert PREFIX + "tile" not in _meta().to_props()  # 0 = not recorded


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"task": "detect"}, "task"),
        ({"classes": ["scratch", "x"]}, "background"),
        ({"classes": "background,x"}, "must be a list"),
        ({"input_size": [128]}, "input_size"),
        ({"channels": 2}, "channels"),
        ({"std": [0.25, 0.0, 0.25]}, "positive"),
        ({"version": "v1"}, "semantic version"),
        ({"dataset": " "}, "dataset"),
        ({"tile": -1}, "tile"),
    ],
)
def test_construction_validates(overrides: dict, message: str) -> None:
    with pytest.raises(ModelMetadataError, match=message):
        _meta(**overrides)


def test_signature_must_match_the_metadata() -> None:
    meta = _meta()
    check_signature(meta, ["N", 3, "H", "W"], ["N", 2, "H", "W"])
    with pytest.raises(ModelMetadataError, match="channels"):
        check_signature(meta, ["N", 1, 128, 96], ["N", 2, "H", "W"])
    with pytest.raises(ModelMetadataError, match="rank"):
        check_signature(meta, ["N", 3, 128, 96], ["N", 2])
    with pytest.raises(ModelMetadataError, match="classes"):
        check_signature(meta, ["N", 3, 128, 96], ["N", 5, 128, 96])
