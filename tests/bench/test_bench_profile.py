"""``lineinspect bench profile``: per-operator time of onnxruntime beside PyTorch eager."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from core.model_meta import ModelMeta, write_meta
from deploy.cli import app
from deploy.profile_ops import (
    CATEGORIES,
    OTHER,
    conv_gflop,
    openvino_category,
    ort_category,
    profile_onnxruntime,
    torch_category,
)


def _profile(model: Path, out: Path, *extra: str) -> dict:
    args = ["bench", "profile", "--model", str(model), "--json", str(out), "--batch", "2",
            "--threads", "1", "--runs", "3", *extra]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    assert "ms per batch of 2" in res.output and f"wrote {out}" in res.output.replace("\n", "")
    return json.loads(out.read_text())


def test_profile_has_both_engines_and_categories_add_up(tiny_zoo: Path, tmp_path: Path) -> None:
    pytest.importorskip("torch")
    report = _profile(tiny_zoo / "mm.onnx", tmp_path / "prof.json")
    has_openvino = importlib.util.find_spec("openvino") is not None
    expected = {"onnxruntime", "pytorch"} | ({"openvino"} if has_openvino else set())
    assert set(report["engines"]) == expected
    assert [s["engine"] for s in report["skipped"]] == ([] if has_openvino else ["openvino"])
    for engine in report["engines"].values():
        cats = engine["categories"]
        assert list(cats) == [*CATEGORIES, OTHER]
        assert sum(cats.values()) == pytest.approx(engine["profiled_ms"], rel=1e-3, abs=1e-2)
        assert sum(o["ms"] for o in engine["ops"]) == pytest.approx(engine["profiled_ms"], 1e-3)
        assert cats["convolution"] > 0 and engine["wall_ms"] > 0 and engine["conv_gflop_per_s"] > 0
        # a conv net spends most of its time in convolutions on either engine
        assert max(cats, key=cats.get) == "convolution"
    # the same convolutions: each engine's GFLOP/s is the model's GFLOP over its conv time
    for engine in report["engines"].values():
        rate = report["conv_gflop_per_batch"] / (engine["categories"]["convolution"] / 1000)
        assert engine["conv_gflop_per_s"] == pytest.approx(rate, rel=1e-2)
    ort_ops = {o["op"] for o in report["engines"]["onnxruntime"]["ops"]}
    assert ort_ops & {"Conv", "FusedConv"}
    assert any("conv" in o["op"] for o in report["engines"]["pytorch"]["ops"])


def test_ort_profile_counts_each_node_once_per_run(tiny_zoo: Path) -> None:
    """Warm-up runs are left out and the totals are per batch: the node calls per run do not
    depend on how many runs were profiled."""
    x = np.random.default_rng(0).standard_normal((2, 1, 64, 64)).astype(np.float32)
    calls = []
    for runs in (2, 5):
        ops, wall = profile_onnxruntime(tiny_zoo / "mm.onnx", x, threads=1, runs=runs)
        calls.append({o.op: o.calls for o in ops})
        assert wall > 0
    assert calls[0] == calls[1]
    assert all(float(n).is_integer() and n >= 1 for n in calls[0].values())


def test_models_without_a_torch_net_skip_pytorch(tiny_zoo: Path, tmp_path: Path) -> None:
    report = _profile(tiny_zoo / "brightness.onnx", tmp_path / "b.json")
    assert "onnxruntime" in report["engines"] and "pytorch" not in report["engines"]
    skipped = {s["engine"]: s["reason"] for s in report["skipped"]}
    assert "cannot rebuild the PyTorch net" in skipped["pytorch"]


def test_categories_map_both_engines_names() -> None:
    assert ort_category("ReorderOutput") == torch_category("aten::copy_") == "layout / copy"
    assert ort_category("FusedConv") == torch_category("aten::mkldnn_convolution")
    assert ort_category("LayerNormalization") == torch_category("aten::native_layer_norm")
    assert ort_category("ReduceMean") == torch_category("aten::mean") == "reduction / pool"
    assert ort_category("PRelu") == torch_category("aten::_prelu_kernel")
    assert ort_category("Gemm") == torch_category("aten::addmm") == "matmul"
    assert openvino_category("Subgraph") == ort_category("Mul") == "elementwise"
    assert openvino_category("GroupConvolution") == ort_category("Conv")
    assert openvino_category("MVN") == ort_category("LayerNormalization")
    assert ort_category("SomethingNew") == torch_category("aten::something_new") == OTHER


def test_profile_rejects_bad_options(tiny_zoo: Path, tmp_path: Path) -> None:
    out = tmp_path / "x.json"
    for extra, message in (
        (["--model", str(tmp_path / "missing.onnx")], "model not found"),
        (["--model", str(tiny_zoo / "mm.onnx"), "--engines", "tensorrt"], "--engines"),
    ):
        res = CliRunner().invoke(app, ["bench", "profile", "--json", str(out), *extra])
        assert res.exit_code != 0 and message in res.output, res.output
    assert not out.exists()


def _conv_model(path: Path, groups: int) -> Path:
    """A 1x1 Conv (3 -> 16 channels) then a 3x3 Conv (16 -> 8 channels, ``groups``), input
    [N, 3, 20, 20], 'same' padding, with artifact metadata so that the service's backend
    loads it."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    w1 = rng.standard_normal((16, 3, 1, 1)).astype(np.float32)
    w3 = rng.standard_normal((8, 16 // groups, 3, 3)).astype(np.float32)
    nodes = [
        helper.make_node("Conv", ["x", "w1"], ["h"]),
        helper.make_node("Conv", ["h", "w3"], ["y"], pads=[1, 1, 1, 1], group=groups),
    ]
    graph = helper.make_graph(
        nodes, "conv",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 20, 20])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 8, 20, 20])],
        [numpy_helper.from_array(w1, "w1"), numpy_helper.from_array(w3, "w3")],
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    classes = ["background", *(f"c{i}" for i in range(7))]
    write_meta(path, ModelMeta("segment", classes, [20, 20], 3, [0.0] * 3, [1.0] * 3, "0.0.0", "x"))
    return path


@pytest.mark.parametrize("groups", [1, 4])
def test_conv_flops_follow_the_conv_shapes(tmp_path: Path, groups: int) -> None:
    path = _conv_model(tmp_path / "c.onnx", groups)
    # 2 x output elements x multiply-adds per output, for each conv:
    # 1x1: (3 x 16 x 20 x 20) x 3; 3x3: (3 x 8 x 20 x 20) x (16 / groups x 3 x 3)
    expected = 2 * 3 * 16 * 20 * 20 * 3 + 2 * 3 * 8 * 20 * 20 * (16 // groups) * 9
    assert conv_gflop(path, (3, 3, 20, 20)) * 1e9 == pytest.approx(expected)
    ops, _ = profile_onnxruntime(path, np.ones((3, 3, 20, 20), np.float32), 1, 2)
    assert {o.op for o in ops if o.category == "convolution"} == {"Conv"}


def test_int8_files_skip_pytorch(tiny_zoo: Path, tmp_path: Path) -> None:
    """bench models and bench profile share the rule through ``torch_runner``."""
    import shutil

    int8 = shutil.copy(tiny_zoo / "mm.onnx", tmp_path / "mm.int8.onnx")
    report = _profile(Path(int8), tmp_path / "i.json", "--engines", "onnxruntime,pytorch")
    assert list(report["engines"]) == ["onnxruntime"]
    assert report["skipped"] == [
        {"engine": "pytorch", "reason": "INT8 artifact: no PyTorch eager equivalent"}
    ]
