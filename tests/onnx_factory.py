"""Tiny ONNX test fixtures built with ``onnx.helper`` (no torch, no training).

These are **formulas, not defect detectors**: their output is a known function of brightness so
that tests can predict it exactly.

* :func:`make_classifier` - global average pool -> linear layer. Class ``k`` has a brightness
  centre ``centers[k]`` (gray levels 0..255); the logits are
  ``-scale * (m - c_k)**2`` up to a term common to all classes, where ``m`` is the tile's mean
  normalised value, so the predicted class is the one whose centre is nearest the tile's mean
  gray value, and ``softmax`` gives smooth scores (``scale`` sets how sharp).
* :func:`make_segmenter` - the same rule per pixel with a 1x1 convolution: every pixel gets the
  class whose centre is nearest its gray value (dynamic N, H, W).

Both carry the complete artifact metadata (docs/CONTRACT.md); ``meta_overrides`` replaces (or, with
``None``, removes) keys to build invalid artifacts.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 17
IR_VERSION = 8


def _norm_centers(
    centers: Sequence[float], mean: Sequence[float], std: Sequence[float]
) -> np.ndarray:
    """Gray-level centres -> the channel-averaged normalised value a gray pixel would have."""
    g = np.asarray(centers, dtype=np.float64)[:, None] / 255.0
    m = np.asarray(mean, dtype=np.float64)[None, :]
    s = np.asarray(std, dtype=np.float64)[None, :]
    return ((g - m) / s).mean(axis=1)


def _metadata(
    task: str,
    classes: Sequence[str],
    input_size: Sequence[int],
    channels: int,
    mean: Sequence[float],
    std: Sequence[float],
    version: str,
    overrides: dict[str, str | None] | None,
) -> dict[str, str]:
    props = {
        "lineinspect.task": task,
        "lineinspect.classes": json.dumps(list(classes)),
        "lineinspect.input_size": json.dumps(list(input_size)),
        "lineinspect.channels": str(channels),
        "lineinspect.mean": json.dumps(list(mean)),
        "lineinspect.std": json.dumps(list(std)),
        "lineinspect.version": version,
        "lineinspect.dataset": "synthetic-brightness sha256:" + "0" * 64,
    }
    for key, value in (overrides or {}).items():
        full = key if key.startswith("lineinspect.") else "lineinspect." + key
        if value is None:
            props.pop(full, None)
        else:
            props[full] = value
    return props


def _save(graph: onnx.GraphProto, props: dict[str, str], path: Path) -> Path:
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="onnx_factory"
    )
    model.ir_version = IR_VERSION
    for k, v in props.items():
        model.metadata_props.add(key=k, value=v)
    onnx.checker.check_model(model)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path


def make_classifier(
    path: str | Path,
    classes: Sequence[str] = ("ok", "defect"),
    centers: Sequence[float] = (180.0, 40.0),
    *,
    input_size: Sequence[int] = (64, 64),
    channels: int = 1,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    scale: float = 50.0,
    version: str = "0.1.0",
    meta_overrides: dict[str, str | None] | None = None,
) -> Path:
    """Write a brightness classifier (nearest class centre of the tile mean) to ``path``.

    Default: ``ok`` for bright tiles, ``defect`` for dark ones (the decision boundary is
    halfway between the centres, gray 110).
    """
    if len(classes) != len(centers):
        raise ValueError("one centre per class")
    mean = list(mean if mean is not None else [0.5] * channels)
    std = list(std if std is not None else [0.25] * channels)
    k = len(classes)
    c = _norm_centers(centers, mean, std)
    # -s (m - c)^2 = -s m^2 + 2 s c m - s c^2; drop the class-independent -s m^2.
    weight = np.tile((2.0 * scale * c / channels)[None, :], (channels, 1)).astype(np.float32)
    bias = (-scale * c**2).astype(np.float32)
    h, w = (int(v) for v in input_size)
    nodes = [
        helper.make_node("GlobalAveragePool", ["input"], ["gap"]),
        helper.make_node("Flatten", ["gap"], ["flat"], axis=1),
        helper.make_node("MatMul", ["flat", "W"], ["mm"]),
        helper.make_node("Add", ["mm", "b"], ["logits"]),
    ]
    graph = helper.make_graph(
        nodes,
        "brightness_classifier",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", channels, h, w])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", k])],
        initializer=[numpy_helper.from_array(weight, "W"), numpy_helper.from_array(bias, "b")],
    )
    props = _metadata("classify", classes, (h, w), channels, mean, std, version, meta_overrides)
    return _save(graph, props, Path(path))


def make_segmenter(
    path: str | Path,
    classes: Sequence[str] = ("background", "dark_spot"),
    centers: Sequence[float] = (180.0, 40.0),
    *,
    input_size: Sequence[int] = (64, 64),
    channels: int = 1,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    scale: float = 50.0,
    version: str = "0.1.0",
    meta_overrides: dict[str, str | None] | None = None,
) -> Path:
    """Write a per-pixel brightness segmenter (nearest class centre per pixel) to ``path``.

    Default: ``dark_spot`` for pixels darker than gray 110, ``background`` otherwise.
    """
    if len(classes) != len(centers):
        raise ValueError("one centre per class")
    mean = list(mean if mean is not None else [0.5] * channels)
    std = list(std if std is not None else [0.25] * channels)
    k = len(classes)
    c = _norm_centers(centers, mean, std)
    weight = np.tile((2.0 * scale * c / channels)[:, None], (1, channels))
    weight = weight.reshape(k, channels, 1, 1).astype(np.float32)
    bias = (-scale * c**2).astype(np.float32)
    nodes = [helper.make_node("Conv", ["input", "W", "b"], ["logits"], kernel_shape=[1, 1])]
    graph = helper.make_graph(
        nodes,
        "brightness_segmenter",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", channels, "H", "W"])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", k, "H", "W"])],
        initializer=[numpy_helper.from_array(weight, "W"), numpy_helper.from_array(bias, "b")],
    )
    props = _metadata("segment", classes, input_size, channels, mean, std, version, meta_overrides)
    return _save(graph, props, Path(path))
