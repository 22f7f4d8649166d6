"""``quantize: int8`` runs the INT8 file only while it was made from the fp32 file beside it."""

from __future__ import annotations

import dataclasses
import logging
import shutil
import sys
from pathlib import Path

import pytest

from core.model_meta import read_meta, write_meta
from core.recipe import ModelSpec

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.onnx_factory import make_segmenter  # noqa: E402


def _set_version(path: Path, version: str) -> None:
    write_meta(path, dataclasses.replace(read_meta(path), version=version))


def test_int8_file_runs_only_with_its_own_fp32_model(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    fp32 = make_segmenter(tmp_path / "seg.onnx")
    int8 = tmp_path / "seg.int8.onnx"
    shutil.copy(fp32, int8)
    _set_version(fp32, "1.0.0")
    _set_version(int8, "1.0.0+int8")
    spec = ModelSpec(name="seg", path=str(fp32), quantize="int8")
    assert spec.resolved_path() == int8
    _set_version(fp32, "1.1.0")  # the fp32 model was replaced, the INT8 file was not
    with caplog.at_level(logging.ERROR, logger="core.recipe"):
        assert spec.resolved_path() == fp32
    assert "re-quantise" in caplog.text
    int8.unlink()
    with pytest.raises(FileNotFoundError, match="lineinspect quantize"):
        spec.resolved_path()
