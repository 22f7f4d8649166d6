"""Flip views of the screen input: test-time averaging of the SVM decision.

A KolektorSDD frame and its mirror images are equally valid commutator surfaces, and the
feature network is trained with random flips. Averaging the SVM decision value over a few
flipped copies of a frame lowers the variance of a single pass: on the out-of-fold CV of the
training split the candidate view sets are compared, and the chosen one is baked into the ONNX
graph (:func:`add_view_average`), so the released file still maps one frame to one pair of
logits and ``lineinspect evaluate`` needs nothing extra.

Views: ``id`` (as is), ``h`` (mirrored left-right), ``v`` (upside down), ``hv`` (both).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from onnx import GraphProto, helper, numpy_helper

#: image axes (of ``[N, H, W]`` arrays) each view flips
VIEW_AXES: dict[str, tuple[int, ...]] = {"id": (), "h": (2,), "v": (1,), "hv": (1, 2)}
#: view sets compared on the out-of-fold CV (the plain single pass first)
CANDIDATES: tuple[tuple[str, ...], ...] = (
    ("id",),
    ("id", "h"),
    ("id", "v"),
    ("id", "h", "v", "hv"),
)


def flip_images(images: np.ndarray, view: str) -> np.ndarray:
    """``images`` ``[N, H, W]`` seen in ``view`` (a contiguous copy unless ``id``)."""
    axes = VIEW_AXES[view]
    return np.ascontiguousarray(np.flip(images, axes)) if axes else images


def average_views(decisions: dict[str, np.ndarray], views: Sequence[str]) -> np.ndarray:
    """Mean decision value over ``views`` (``decisions``: view -> per-image values)."""
    return np.mean([decisions[v] for v in views], axis=0)


def add_view_average(
    graph: GraphProto, input_name: str, scores_name: str, views: Sequence[str], width: int = 2
) -> str:
    """Make ``graph`` run every image in ``views`` and average ``scores_name`` over them.

    The NCHW input is flipped per view (``Slice`` with step -1) and stacked on the batch axis
    in front of the first node that reads it; the ``[V * N, width]`` scores are reshaped to
    ``[V, N, width]`` and averaged. Returns the name of the averaged ``[N, K]`` scores.
    """
    if list(views) == ["id"]:
        return scores_name
    stacked = "views_input"
    for node in graph.node:
        node.input[:] = [stacked if i == input_name else i for i in node.input]
    lo = np.iinfo(np.int64).min
    graph.initializer.extend(
        [
            numpy_helper.from_array(np.array([-1], np.int64), "views_start"),
            numpy_helper.from_array(np.array([lo], np.int64), "views_end"),
            numpy_helper.from_array(np.array([-1], np.int64), "views_step"),
            numpy_helper.from_array(np.array([len(views), -1, width], np.int64), "views_shape"),
        ]
    )
    used_axes = sorted({a + 1 for v in views for a in VIEW_AXES[v]})  # [N, H, W] -> NCHW axis
    graph.initializer.extend(
        numpy_helper.from_array(np.array([a], np.int64), f"views_axis{a}") for a in used_axes
    )
    front: list = []
    names: list[str] = []
    for view in views:
        current = input_name
        for nchw_axis in (a + 1 for a in VIEW_AXES[view]):  # [N, H, W] axis -> NCHW axis
            out = f"views_{view}_flip{nchw_axis}"
            front.append(
                helper.make_node(
                    "Slice",
                    [current, "views_start", "views_end", f"views_axis{nchw_axis}", "views_step"],
                    [out],
                    name=out,
                )
            )
            current = out
        names.append(current)
    front.append(helper.make_node("Concat", names, [stacked], axis=0, name="views_concat"))
    back = [
        helper.make_node(
            "Reshape", [scores_name, "views_shape"], ["views_scores"], name="views_reshape"
        ),
        helper.make_node(
            "ReduceMean",
            ["views_scores"],
            ["views_mean"],
            axes=[0],
            keepdims=0,
            name="views_mean",
        ),
    ]
    nodes = front + list(graph.node) + back
    del graph.node[:]
    graph.node.extend(nodes)
    return "views_mean"
