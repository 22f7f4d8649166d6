"""How far from the machine's limit: the recipe's arithmetic per frame against measured peak.

* **GFLOP per frame**: per model, the convolution GFLOP of one tile (:func:`deploy.
  profile_ops.conv_gflop`: 2 x output elements x multiply-adds, from the shape-inferred ONNX
  graph; the same figure for every engine and for a model's INT8 file) times the tiles it ran
  per inspected frame (gated models run on the tiles the segmenter flagged, so this is
  measured, not the grid size).
* **Peak**: :func:`conv_peak` times dense 3 x 3 convolutions (the kind that dominates the zoo
  models) on onnxruntime and OpenVINO with every core, f32; the best GFLOP/s is the machine's
  convolution peak as these engines reach it.
* **Achieved**: GFLOP per frame x inspected frames/s (the whole machine, all workers), and
  its share of the peak; plus the rate while the models run (GFLOP / inference seconds).
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

#: (batch, channels in = out, height = width) of the peak's 3 x 3 convolutions
PEAK_SHAPES = ((8, 64, 56), (8, 128, 28), (8, 256, 14))


def tile_gflop(path: Path) -> float:
    """Convolution GFLOP of one tile at the model's input size (a batch of 32, divided)."""
    from core.model_meta import ModelMeta
    from deploy.profile_ops import conv_gflop
    from inference.backends.onnxruntime import OnnxRuntimeBackend

    meta = ModelMeta.from_props(
        OnnxRuntimeBackend(path, providers="CPUExecutionProvider", threads=1).metadata_props(),
        source=str(path),
    )
    # shape inference of some graphs (Reshape/Slice chains) loses shapes at batch 1
    return conv_gflop(path, (32, meta.channels, *meta.input_size)) / 32.0


def _conv_graph(path: Path, channels: int, size: int) -> float:
    """Write a one-Conv ONNX model (3 x 3, ``channels`` -> ``channels``, pad 1, dynamic
    batch); return its GFLOP per batch item."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    w = np.random.default_rng(0).standard_normal((channels, channels, 3, 3)).astype(np.float32)
    node = helper.make_node("Conv", ["x", "w"], ["y"], pads=[1, 1, 1, 1])
    graph = helper.make_graph(
        [node], "peak",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", channels, size, size])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", channels, size, size])],
        [numpy_helper.from_array(w, "w")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return 2.0 * channels * size * size * channels * 9 / 1e9


def conv_peak(seconds: float = 1.0, threads: int = 0) -> dict[str, Any]:
    """Best f32 GFLOP/s of dense 3 x 3 convolutions per engine (``threads`` 0 = every core):
    ``{"gflops_per_s": best, "engine": which, "shape": ..., "per_engine": {...}}``."""
    from inference.backends import BackendUnavailable
    from inference.backends.onnxruntime import OnnxRuntimeBackend

    per_engine: dict[str, float] = {}
    best: tuple[float, str, str] = (0.0, "", "")
    with tempfile.TemporaryDirectory(prefix="lineinspect-peak-") as tmp:
        for batch, channels, size in PEAK_SHAPES:
            path = Path(tmp) / f"conv{channels}.onnx"
            gflop = _conv_graph(path, channels, size) * batch
            x = np.random.default_rng(1).standard_normal(
                (batch, channels, size, size), dtype=np.float32
            )
            engines: dict[str, Any] = {
                "onnxruntime": lambda p=path: OnnxRuntimeBackend(
                    p, providers="CPUExecutionProvider", threads=threads
                )
            }
            try:
                from inference.backends.openvino import OpenVinoBackend

                engines["openvino"] = lambda p=path: OpenVinoBackend(p, threads=threads)
            except ImportError:  # pragma: no cover - openvino is a dependency
                pass
            for name, make in engines.items():
                try:
                    backend = make()
                except BackendUnavailable:
                    continue
                rate = gflop / _best_call_s(backend.run, x, seconds)
                per_engine[name] = round(max(per_engine.get(name, 0.0), rate), 1)
                if rate > best[0]:
                    best = (rate, name, f"{batch}x{channels}x{size}x{size}, 3x3")
    return {"gflops_per_s": round(best[0], 1), "engine": best[1], "shape": best[2],
            "per_engine": per_engine, "threads": threads or "engine default (all cores)"}


def _best_call_s(fn: Any, x: np.ndarray, seconds: float) -> float:
    """Fastest of the calls made in ``seconds`` (after two warm-up calls)."""
    fn(x)
    fn(x)
    best, end = float("inf"), time.perf_counter() + seconds
    while time.perf_counter() < end or best == float("inf"):
        t0 = time.perf_counter()
        fn(x)
        best = min(best, time.perf_counter() - t0)
    return best


def roofline(
    gflop_per_tile: Mapping[str, float],
    tiles_per_frame: Mapping[str, float],
    fps: float,
    infer_s_per_frame: float,
    peak: Mapping[str, Any] | None,
) -> dict[str, Any]:
    """The roofline figures of one pipeline run (see the module docstring)."""
    per_model = {
        name: round(gflop_per_tile[name] * tiles_per_frame.get(name, 0.0), 3)
        for name in gflop_per_tile
    }
    per_frame = sum(per_model.values())
    achieved = per_frame * fps
    out: dict[str, Any] = {
        "gflop_per_frame": round(per_frame, 3),
        "gflop_per_frame_by_model": per_model,
        "gflop_per_tile": {k: round(v, 4) for k, v in gflop_per_tile.items()},
        "tiles_per_frame": {k: round(v, 2) for k, v in tiles_per_frame.items()},
        "achieved_gflops_per_s": round(achieved, 1),
        "while_inferring_gflops_per_s": round(per_frame / infer_s_per_frame, 1)
        if infer_s_per_frame else None,
    }
    if peak and peak.get("gflops_per_s"):
        out["peak"] = dict(peak)
        out["share_of_peak"] = round(achieved / peak["gflops_per_s"], 3)
    return out
