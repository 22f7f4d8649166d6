"""Tests for the exact onnxruntime graph rewrites (``models.onnx_rewrite``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from models.onnx_rewrite import optimize_file  # noqa: E402


def _prelu_model(slope: np.ndarray) -> onnx.ModelProto:
    """Conv 3x3 (4 -> 8 channels) -> per-channel PRelu, with one metadata entry."""
    rng = np.random.default_rng(0)
    w = rng.standard_normal((8, 4, 3, 3)).astype(np.float32)
    graph = helper.make_graph(
        [
            helper.make_node("Conv", ["x", "w"], ["y"], pads=[1, 1, 1, 1]),
            helper.make_node("PRelu", ["y", "s"], ["out"], name="act"),
        ],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4, 6, 6])],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, ["N", 8, 6, 6])],
        [numpy_helper.from_array(w, "w"), numpy_helper.from_array(slope, "s")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    helper.set_model_props(model, {"lineinspect.task": "classify"})
    return model


def _run(path: Path, x: np.ndarray) -> np.ndarray:
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return sess.run(None, {"x": x})[0]


def test_prelu_rewrite_is_exact_and_keeps_metadata(tmp_path: Path) -> None:
    slope = np.linspace(-0.5, 0.9, 8, dtype=np.float32).reshape(8, 1, 1)
    src, dst = tmp_path / "a.onnx", tmp_path / "b.onnx"
    onnx.save(_prelu_model(slope), str(src))
    assert optimize_file(src, dst) == 1
    model = onnx.load(str(dst))
    assert [n.op_type for n in model.graph.node].count("PRelu") == 0
    assert {i.name for i in model.graph.initializer}.isdisjoint({"s"})  # old slope pruned
    assert {p.key: p.value for p in model.metadata_props} == {"lineinspect.task": "classify"}
    x = np.random.default_rng(1).standard_normal((3, 4, 6, 6)).astype(np.float32)
    np.testing.assert_allclose(_run(dst, x), _run(src, x), atol=1e-5)


def test_prelu_with_slope_at_least_one_is_left_alone(tmp_path: Path) -> None:
    slope = np.full((8, 1, 1), 1.5, dtype=np.float32)
    onnx.save(_prelu_model(slope), str(tmp_path / "a.onnx"))
    assert optimize_file(tmp_path / "a.onnx", tmp_path / "b.onnx") == 0
