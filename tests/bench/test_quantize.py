"""INT8 static quantisation: outputs agree with fp32, metadata kept, recipes select the file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from core.model_meta import read_meta, read_props
from core.preprocess import preprocess
from core.recipe import ModelSpec
from inference.model import OnnxModel
from models.data import read_gray_or_rgb
from models.quantize import int8_path, quantize_int8
from tests.bench.conftest import export_tiny_net

#: INT8 error allowed, relative to the largest fp32 logit magnitude
REL_TOL = 0.1


def _logits(path: Path, x: np.ndarray) -> np.ndarray:
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return sess.run(None, {sess.get_inputs()[0].name: x})[0]


@pytest.fixture(scope="module")
def quantized(tmp_path_factory: pytest.TempPathFactory, calib_dir: Path) -> tuple[Path, Path]:
    d = tmp_path_factory.mktemp("q")
    fp32 = export_tiny_net(d / "net.onnx")
    facts = quantize_int8(fp32, calib_dir, images=16)
    int8 = Path(facts["out"])
    assert int8 == int8_path(fp32) and int8.is_file()
    return fp32, int8


def test_int8_outputs_agree_with_fp32(quantized: tuple[Path, Path], calib_dir: Path) -> None:
    fp32, int8 = quantized
    meta = read_meta(fp32)
    imgs = [read_gray_or_rgb(p, 1) for p in sorted(calib_dir.rglob("*.png"))]
    x = preprocess(imgs, 1, meta.input_size, meta.mean, meta.std)
    a, b = _logits(fp32, x), _logits(int8, x)
    assert a.shape == b.shape
    assert np.abs(a - b).max() <= REL_TOL * np.abs(a).max()


def test_int8_keeps_metadata_and_marks_version(quantized: tuple[Path, Path]) -> None:
    fp32, int8 = quantized
    a, b = read_meta(fp32), read_meta(int8)
    assert (a.task, a.classes, a.input_size, a.mean, a.std) == (
        b.task, b.classes, b.input_size, b.mean, b.std)
    assert b.version == a.version + "+int8"
    assert "int8" in read_props(int8)["lineinspect.quantization"]
    has_qdq = any(n.op_type == "QuantizeLinear" for n in __import__("onnx").load(str(int8))
                  .graph.node)
    assert has_qdq
    OnnxModel(int8)  # the service engine accepts it (artifact metadata valid)


def test_recipe_quantize_int8_selects_the_quantised_file(quantized: tuple[Path, Path]) -> None:
    fp32, int8 = quantized
    assert ModelSpec(name="n", path=str(fp32)).resolved_path() == fp32
    assert ModelSpec(name="n", path=str(fp32), quantize="int8").resolved_path() == int8
    missing = ModelSpec(name="n", path=str(fp32.with_name("other.onnx")), quantize="int8")
    with pytest.raises(FileNotFoundError, match="lineinspect quantize"):
        missing.resolved_path()


def test_quantize_cli_writes_model_and_validation_comparison(
    calib_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import json

    from typer.testing import CliRunner

    from deploy.cli import app

    monkeypatch.chdir(tmp_path)  # the grouped-split cache goes to ./runs/cache
    fp32 = export_tiny_net(tmp_path / "ab.onnx", classes=2, names=["a", "b"])
    res = CliRunner().invoke(app, ["quantize", "--model", str(fp32), "--data", str(calib_dir),
                                   "--images", "12"])
    assert res.exit_code == 0, res.output
    facts = json.loads(int8_path(fp32).with_suffix(".json").read_text())
    val = facts["validation"]
    assert val["split"] == "val" and val["images"] > 0
    assert set(val["accuracy"]) == {"fp32", "int8", "change"}
    from deploy.bench_models import INT8_FLAGS

    machine = facts["machine"]  # the CPU the figures hold for, and its INT8 features
    cpuinfo = Path("/proc/cpuinfo")
    words = set(cpuinfo.read_text().split()) if cpuinfo.exists() else set()
    assert machine["cpu"] and machine["int8_flags"] == [f for f in INT8_FLAGS if f in words]


def test_int8_is_accepted_only_within_half_a_point_of_fp32() -> None:
    from models.quantize import acceptance

    seg = acceptance({"miou": {"fp32": 0.8118, "int8": 0.8070}, "pixel_accuracy": {
        "fp32": 0.97, "int8": 0.90}})
    assert seg["accepted"] and seg["metric"] == "miou" and seg["points"] == -0.48
    cls = acceptance({"accuracy": {"fp32": 0.923, "int8": 0.636},
                      "macro_f1": {"fp32": 0.91, "int8": 0.91}})
    assert not cls["accepted"] and cls["metric"] == "accuracy" and "more than" in cls["why"]
    assert not acceptance({"split": "val"})["accepted"]


def test_int8_segmenter_that_stops_more_clean_tiles_is_rejected() -> None:
    from models.quantize import acceptance

    figures = {"miou": {"fp32": 0.8195, "int8": 0.8196},
               "false_alarm_rate": {"fp32": 0.031, "int8": 0.125},
               "miss_rate": {"fp32": 0.040, "int8": 0.045}}
    verdict = acceptance(figures)
    assert not verdict["accepted"] and verdict["metric"] == "miou"
    assert "false_alarm_rate 0.0310 -> 0.1250" in verdict["why"] and "more than" in verdict["why"]
    figures["false_alarm_rate"]["int8"] = 0.035
    assert acceptance(figures)["accepted"]
    figures["miss_rate"]["int8"] = 0.060
    assert not acceptance(figures)["accepted"]


def _weight_is_dequantized(graph: onnx.GraphProto, conv: str) -> bool:
    """Whether node ``conv``'s weight reaches it through a DequantizeLinear (INT8)."""
    producers = {o: n for n in graph.node for o in n.output}
    node = next(n for n in graph.node if n.name == conv)
    source = producers.get(node.input[1])
    return source is not None and source.op_type == "DequantizeLinear"


def test_keep_float_leaves_the_named_nodes_unquantised(
    tmp_path: Path, calib_dir: Path
) -> None:
    fp32 = export_tiny_net(tmp_path / "net.onnx")
    facts = quantize_int8(fp32, calib_dir, images=8, keep_float=("/0/",))
    assert facts["kept_float"] == {"prefixes": ["/0/"], "nodes": ["/0/Conv"]}
    graph = onnx.load(facts["out"]).graph
    assert not _weight_is_dequantized(graph, "/0/Conv")
    assert _weight_is_dequantized(graph, "/2/Conv")
    assert "1 nodes kept in float (/0/)" in read_props(Path(facts["out"]))[
        "lineinspect.quantization"]
    full = Path(quantize_int8(fp32, calib_dir, tmp_path / "all.onnx", images=8)["out"])
    assert _weight_is_dequantized(onnx.load(str(full)).graph, "/0/Conv")


def test_keep_float_prefix_that_matches_nothing_is_refused(
    tmp_path: Path, calib_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from deploy.cli import app

    monkeypatch.chdir(tmp_path)
    fp32 = export_tiny_net(tmp_path / "net.onnx")
    res = CliRunner().invoke(app, ["quantize", "--model", str(fp32), "--data", str(calib_dir),
                                   "--images", "8", "--keep-float", "/backbone/"])
    assert res.exit_code == 2
    assert "--keep-float /backbone/: no node of net.onnx starts with it" in res.output
    assert not int8_path(fp32).exists() and not int8_path(fp32).with_suffix(".json").exists()
