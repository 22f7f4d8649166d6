"""Exact ONNX graph rewrites that make exported models faster in onnxruntime (CPU).

``PRelu`` with a per-channel slope ``s`` has no fused kernel in onnxruntime's CPU provider and
no NCHWc (blocked-layout) implementation, so every PRelu costs a layout reorder out of and back
into NCHWc besides its own pass. With ``s < 1`` it is rewritten as

    PRelu(y) = s * y + (1 - s) * Relu(y) = DW(y; s) + Relu(DW(y; 1 - s))

where ``DW(y; a)`` is a depthwise 1x1 ``Conv`` with weights ``a`` (``(1 - s) > 0`` lets the
scale move inside the Relu). onnxruntime runs both depthwise convs in NCHWc and fuses the Relu
and the Add into them. The weights are not retrained: the result equals the original up to
float rounding (~1e-6 on the ESG-ConvNeXt logits; docs/PERFORMANCE.md section 8).

Used by :func:`models.export.export_onnx`; ``python -m models.onnx_rewrite IN.onnx OUT.onnx``
rewrites an already released file (``metadata_props`` kept).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import onnx
from onnx import helper, numpy_helper


def _constants(graph: onnx.GraphProto) -> dict[str, np.ndarray]:
    """Values of initializers, ``Constant`` outputs and ``Identity`` copies of them."""
    values = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    for node in graph.node:
        if node.op_type == "Constant" and node.attribute and node.attribute[0].name == "value":
            values[node.output[0]] = numpy_helper.to_array(node.attribute[0].t)
        elif node.op_type == "Identity" and node.input[0] in values:
            values[node.output[0]] = values[node.input[0]]
    return values


def _prune(graph: onnx.GraphProto) -> None:
    """Drop initializers, ``Constant`` and ``Identity`` nodes that nothing reads any more."""
    while True:
        used = {i for n in graph.node for i in n.input} | {o.name for o in graph.output}
        dead = [
            n
            for n in graph.node
            if n.op_type in ("Constant", "Identity") and not used.intersection(n.output)
        ]
        for node in dead:
            graph.node.remove(node)
        if not dead:
            break
    keep = [i for i in graph.initializer if i.name in used]
    if len(keep) != len(graph.initializer):
        del graph.initializer[:]
        graph.initializer.extend(keep)


def rewrite_prelu(model: onnx.ModelProto) -> int:
    """Replace every per-channel ``PRelu`` on an NCHW tensor by depthwise 1x1 ``Conv`` + ``Relu``
    + ``Add`` (see the module docstring), in place; returns how many were replaced.

    Skipped: slopes that are not constants of shape ``[C, 1, 1]``, or any slope ``>= 1``.
    """
    graph = model.graph
    values = _constants(graph)
    new_nodes: list[onnx.NodeProto] = []
    done = 0
    for node in graph.node:
        slope = values.get(node.input[1]) if node.op_type == "PRelu" else None
        if slope is None or slope.ndim != 3 or slope.shape[1:] != (1, 1) or (slope >= 1).any():
            new_nodes.append(node)
            continue
        y, name, channels = node.input[0], node.name or node.output[0], slope.shape[0]
        s = slope.astype(np.float32).reshape(channels, 1, 1, 1)
        pos_w, pos, pos_relu, lin_w, lin = (
            f"{name}/{k}" for k in ("pos_w", "pos", "pos_relu", "lin_w", "lin")
        )
        graph.initializer.extend(
            [numpy_helper.from_array(s, lin_w), numpy_helper.from_array(1 - s, pos_w)]
        )
        dw = {"group": channels, "kernel_shape": [1, 1]}
        new_nodes += [
            helper.make_node("Conv", [y, pos_w], [pos], pos, **dw),
            helper.make_node("Relu", [pos], [pos_relu], pos_relu),
            helper.make_node("Conv", [y, lin_w], [lin], lin, **dw),
            helper.make_node("Add", [lin, pos_relu], [node.output[0]], f"{name}/sum"),
        ]
        done += 1
    if done:
        del graph.node[:]
        graph.node.extend(new_nodes)
        _prune(graph)
        onnx.checker.check_model(model)
    return done


def optimize_file(src: str | Path, dst: str | Path | None = None) -> int:
    """Apply :func:`rewrite_prelu` to the ONNX file ``src`` and save it to ``dst`` (default:
    over ``src``) with its ``metadata_props``; returns the number of rewritten nodes."""
    model = onnx.load(str(src))
    done = rewrite_prelu(model)
    onnx.save(model, str(dst or src))
    return done


if __name__ == "__main__":
    print(f"{optimize_file(*sys.argv[1:3])} PRelu nodes rewritten")
