"""``lineinspect bench profile``: where one model's time goes on onnxruntime, PyTorch eager and
OpenVINO, operator by operator.

``bench models`` says *how fast* each engine is; this says *why*: the engines run the same
input (seeded standard normal at the model's ``input_size``, one batch size, the same thread
count) under their own profilers, and the time is summed per operator and per operator
category, in milliseconds per batch.

* onnxruntime: the service's session options (:func:`inference.backends.onnxruntime.
  session_options`, through :func:`~inference.backends.onnxruntime.create_session`) with
  ``enable_profiling``; an operator's time is the sum of its nodes' ``*_kernel_time`` events
  (the optimised graph, so fused nodes such as ``FusedConv`` and the NCHWc layout reorders
  ``ReorderInput``/``ReorderOutput`` appear as onnxruntime runs them).
* PyTorch: the network rebuilt as in ``bench models`` (:mod:`deploy.bench_torch`), under
  ``torch.inference_mode()`` and ``torch.profiler``; an operator's time is its ``self`` CPU time
  (time inside nested ``aten::`` calls counts for the inner op only), so the rows add up.
* OpenVINO: compiled as in ``bench models`` plus ``PERF_COUNT``; a node's ``real_time`` from
  ``get_profiling_info`` (nodes fused into others report ``NOT_RUN`` and no time).

Every profiler times each operator on the calling thread, with the intra-op worker threads
inside it, so the columns are comparable; profiling adds a little overhead per operator,
which is why ``wall_ms`` (the unprofiled call, measured separately) is reported too.
Categories (:data:`CATEGORIES`) put the engines' different operator names side by side, and
the convolutions' GFLOP/s (:func:`conv_gflop` over each engine's convolution time) shows how
close each engine's convolution kernels come to the machine.
"""

from __future__ import annotations

import json
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np


class CategoryNames(NamedTuple):
    """How each engine names the operators of one category."""

    onnxruntime: frozenset[str]
    #: fragments of the op name after ``aten::`` (see :func:`torch_category`)
    pytorch: tuple[str, ...]
    #: OpenVINO CPU plugin node types (``get_profiling_info``)
    openvino: frozenset[str]


CATEGORIES: dict[str, CategoryNames] = {
    "convolution": CategoryNames(
        frozenset({"Conv", "FusedConv", "ConvTranspose", "QLinearConv", "ConvInteger"}),
        ("conv", "mkldnn_convolution", "slow_conv", "thnn_conv"),
        frozenset({"Convolution", "GroupConvolution", "Deconvolution"}),
    ),
    "matmul": CategoryNames(
        frozenset({"Gemm", "MatMul", "FusedMatMul", "FusedGemm", "MatMulInteger", "QGemm"}),
        ("addmm", "mm", "bmm", "matmul", "linear"),
        frozenset({"FullyConnected", "MatMul", "Gemm"}),
    ),
    "normalise": CategoryNames(
        frozenset(
            {"LayerNormalization", "SimplifiedLayerNormalization", "BatchNormalization",
             "InstanceNormalization", "GroupNorm", "MeanVarianceNormalization"}
        ),
        ("layer_norm", "batch_norm", "group_norm", "instance_norm"),
        frozenset({"MVN", "BatchNormInference", "NormalizeL2", "GroupNormalization"}),
    ),
    "reduction / pool": CategoryNames(
        frozenset(
            {"ReduceMean", "ReduceSum", "ReduceMax", "ReduceL2", "ReduceSumSquare",
             "GlobalAveragePool", "GlobalMaxPool", "MaxPool", "AveragePool", "ArgMax"}
        ),
        ("mean", "sum", "norm", "amax", "max_pool", "avg_pool", "adaptive", "var", "std"),
        frozenset({"ReduceMean", "ReduceSum", "ReduceMax", "ReduceL2", "Pooling", "MaxPool",
                   "AvgPool", "AdaptivePooling"}),
    ),
    "layout / copy": CategoryNames(
        frozenset(
            {"ReorderInput", "ReorderOutput", "Transpose", "Reshape", "Flatten", "Concat",
             "Slice", "Split", "Pad", "Expand", "Squeeze", "Unsqueeze", "Identity", "Gather",
             "Tile", "Cast", "Shape"}
        ),
        ("copy", "contiguous", "clone", "permute", "cat", "empty", "view", "reshape", "pad",
         "to", "slice", "split", "chunk", "expand", "flatten", "transpose", "stack", "select",
         "squeeze", "unsqueeze", "as_strided", "zeros", "fill", "resolve"),
        frozenset({"Reorder", "Transpose", "Reshape", "Concat", "Split", "Gather",
                   "StridedSlice", "Pad", "Broadcast", "Convert", "Squeeze", "Unsqueeze",
                   "ShapeOf", "Parameter", "Result", "Input", "Output"}),
    ),
    "resize": CategoryNames(
        frozenset({"Resize", "Upsample"}),
        ("upsample", "interpolate", "grid_sampler"),
        frozenset({"Interpolate"}),
    ),
    "elementwise": CategoryNames(
        frozenset(
            {"Add", "Sub", "Mul", "Div", "Pow", "Sqrt", "Relu", "Sigmoid", "PRelu", "Clip",
             "Erf", "Gelu", "BiasGelu", "FastGelu", "Tanh", "Exp", "Log", "Neg", "Abs",
             "LeakyRelu", "HardSigmoid", "Softmax", "Where", "Max", "Min", "Reciprocal",
             "QuickGelu", "QuantizeLinear", "DequantizeLinear"}
        ),
        ("add", "sub", "mul", "div", "pow", "sqrt", "rsqrt", "relu", "sigmoid", "prelu",
         "clamp", "hardtanh", "gelu", "erf", "tanh", "exp", "log", "neg", "abs", "softmax",
         "where", "maximum", "minimum", "reciprocal", "silu", "leaky_relu", "threshold"),
        # "Subgraph": elementwise chains JIT-compiled into one kernel (OpenVINO snippets)
        frozenset({"Subgraph", "Eltwise", "MulAdd", "Multiply", "Add", "Subtract", "Divide",
                   "Power", "PowerStatic", "Sqrt", "Relu", "Sigmoid", "PRelu", "Erf", "Gelu",
                   "Clamp", "Exp", "Swish", "Math", "SoftMax", "Softmax", "Select"}),
    ),
}
OTHER = "other"
ENGINES = ("onnxruntime", "pytorch", "openvino")
SHORT_NAMES = {"onnxruntime": "ORT", "pytorch": "PyTorch", "openvino": "OpenVINO"}


def ort_category(op_type: str) -> str:
    """Category of an onnxruntime operator type (``Conv``, ``ReorderOutput``, ...)."""
    return next((c for c, n in CATEGORIES.items() if op_type in n.onnxruntime), OTHER)


def openvino_category(node_type: str) -> str:
    """Category of an OpenVINO CPU node type (``Convolution``, ``Subgraph``, ...)."""
    return next((c for c, n in CATEGORIES.items() if node_type in n.openvino), OTHER)


def torch_category(name: str) -> str:
    """Category of a PyTorch profiler key (``aten::mkldnn_convolution``, ...): the first
    category with a fragment that starts the op name, is one of its ``_``-separated words, or
    (fragments with a ``_``) occurs in it."""
    op = name.split("::")[-1].strip("_")
    words = set(op.split("_"))
    for category, names in CATEGORIES.items():
        if any(op.startswith(f) or f in words or ("_" in f and f in op) for f in names.pytorch):
            return category
    return OTHER


@dataclass
class OpTime:
    """Time of one operator type per batch."""

    op: str
    category: str
    ms: float
    calls: float


def _wall_ms(fn: Callable[[], object], runs: int) -> float:
    """Median wall time of ``runs`` unprofiled calls, in ms."""
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1000.0)
    return float(np.median(times))


def conv_gflop(path: Path, shape: tuple[int, ...]) -> float:
    """GFLOP of the model's convolutions for one input of ``shape`` (NCHW): 2 x output
    elements x multiply-adds per output (input channels per group x kernel elements), from
    the ONNX graph with shapes inferred for that input (the model's own arithmetic, not the
    channel padding of onnxruntime's NCHWc kernels); the same figure for every engine."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(path))
    for dim, value in zip(model.graph.input[0].type.tensor_type.shape.dim, shape, strict=True):
        dim.Clear()
        dim.dim_value = int(value)
    g = onnx.shape_inference.infer_shapes(model, data_prop=True).graph
    shapes = {
        v.name: [d.dim_value for d in v.type.tensor_type.shape.dim]
        for v in [*g.value_info, *g.output, *g.input]
    }
    shapes.update({i.name: list(numpy_helper.to_array(i).shape) for i in g.initializer})
    flops = 0.0
    for node in g.node:
        if node.op_type != "Conv" or node.output[0] not in shapes or node.input[1] not in shapes:
            continue
        out, weight = shapes[node.output[0]], shapes[node.input[1]]
        flops += 2.0 * float(np.prod(out)) * float(np.prod(weight[1:]))
    return flops / 1e9


def profile_onnxruntime(
    path: Path, x: np.ndarray, threads: int, runs: int, warmup: int = 3
) -> tuple[list[OpTime], float]:
    """Per-op-type kernel time (ms per batch) of the service's session options with
    profiling on, and the unprofiled wall ms per batch (median of ``runs``) of
    the onnxruntime backend as ``bench models`` runs it."""
    from core.settings import Settings
    from deploy.bench_models import ort_runner
    from inference.backends.onnxruntime import create_session

    run, _ = ort_runner(path, threads)
    for _ in range(warmup):
        run(x)
    wall = _wall_ms(lambda: run(x), runs)
    with tempfile.TemporaryDirectory() as tmp:
        sess = create_session(  # as ort_runner, plus the profiler
            path, providers="CPUExecutionProvider", threads=threads,
            spinning=Settings().ort_spinning, profile_prefix=str(Path(tmp) / "ort"),
        )
        name = sess.get_inputs()[0].name
        for _ in range(warmup + runs):
            sess.run(None, {name: x})
        events = json.loads(Path(sess.end_profiling()).read_text())
    kernels = [
        e for e in events
        if e.get("cat") == "Node" and str(e.get("name", "")).endswith("_kernel_time")
    ]
    # every run executes the same nodes in the same order: keep the last `runs` runs
    per_run = len(kernels) // (warmup + runs)
    per_op: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0])
    for e in kernels[len(kernels) - per_run * runs:]:
        op = e.get("args", {}).get("op_name", "?")
        per_op[op][0] += e["dur"] / 1000.0
        per_op[op][1] += 1
    ops = [OpTime(op, ort_category(op), ms / runs, n / runs) for op, (ms, n) in per_op.items()]
    return sorted(ops, key=lambda o: -o.ms), wall


def profile_pytorch(
    path: Path, x: np.ndarray, threads: int, runs: int, checkpoint_dir: Path | None = None,
    warmup: int = 3,
) -> tuple[list[OpTime], float]:
    """Per-op self CPU time (ms per batch) of the PyTorch eager net behind ``path``, and its
    unprofiled wall ms per batch (median of ``runs``)."""
    from torch.profiler import ProfilerActivity, profile

    from deploy.bench_models import torch_runner

    run, _ = torch_runner(path, threads, checkpoint_dir)
    for _ in range(warmup):
        run(x)
    wall = _wall_ms(lambda: run(x), runs)
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(runs):
            run(x)
    ops = [
        OpTime(ev.key, torch_category(ev.key), ev.self_cpu_time_total / 1000.0 / runs,
               ev.count / runs)
        for ev in prof.key_averages()
        if ev.self_cpu_time_total > 0
    ]
    return sorted(ops, key=lambda o: -o.ms), wall


def profile_openvino(
    path: Path, x: np.ndarray, threads: int, runs: int, warmup: int = 3
) -> tuple[list[OpTime], float]:
    """Per-node-type time (ms per batch) of the OpenVINO runtime compiled as ``bench models``
    compiles it (plus ``PERF_COUNT``), and its unprofiled wall ms per batch. Nodes fused into
    another (status ``NOT_RUN``) take no time; an op is labelled ``type (kernel)``."""
    from deploy.bench_models import openvino_runner
    from inference.backends.openvino import OpenVinoBackend

    run, _ = openvino_runner(path, threads, x.shape)
    for _ in range(warmup):
        run(x)
    wall = _wall_ms(lambda: run(x), runs)
    request = OpenVinoBackend(path, threads=threads, shape=x.shape, perf_count=True).request()
    for _ in range(warmup):
        request.infer({0: x})
    per_op: dict[tuple[str, str], list[float]] = defaultdict(lambda: [0.0, 0.0])
    for _ in range(runs):
        request.infer({0: x})
        for node in request.get_profiling_info():
            if node.status != node.Status.EXECUTED:
                continue
            key = (node.node_type, node.exec_type)
            per_op[key][0] += node.real_time.total_seconds() * 1000.0
            per_op[key][1] += 1
    ops = [
        OpTime(f"{kind} ({kernel})", openvino_category(kind), ms / runs, n / runs)
        for (kind, kernel), (ms, n) in per_op.items()
    ]
    return sorted(ops, key=lambda o: -o.ms), wall


def by_category(ops: list[OpTime]) -> dict[str, float]:
    """ms per batch summed per category, in :data:`CATEGORIES` order (``other`` last)."""
    sums = dict.fromkeys([*CATEGORIES, OTHER], 0.0)
    for o in ops:
        sums[o.category] += o.ms
    return sums


def run_profile(
    path: Path,
    batch: int = 32,
    threads: int = 2,
    runs: int = 10,
    engines: tuple[str, ...] = ENGINES,
    checkpoint_dir: Path | None = None,
) -> dict[str, Any]:
    """Profile ``path`` on each engine; the report holds per-op and per-category ms/batch."""
    from core.model_meta import read_meta
    from deploy.bench_models import machine_info
    from inference.backends import BackendUnavailable

    meta = read_meta(path)
    shape = (int(batch), meta.channels, *meta.input_size)
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    report: dict[str, Any] = {
        "machine": machine_info(),
        "settings": {"model": str(path), "batch": batch, "threads": threads, "runs": runs,
                     "input": "float32 NCHW, standard normal, seed 0"},
        "engines": {},
        "skipped": [],
    }
    for engine in engines:
        try:
            if engine == "onnxruntime":
                ops, wall = profile_onnxruntime(path, x, threads, runs)
            elif engine == "pytorch":
                ops, wall = profile_pytorch(path, x, threads, runs, checkpoint_dir)
            elif engine == "openvino":
                ops, wall = profile_openvino(path, x, threads, runs)
            else:
                raise BackendUnavailable(f"unknown engine {engine!r}")
        except (BackendUnavailable, ImportError) as exc:
            report["skipped"].append({"engine": engine, "reason": str(exc)})
            continue
        report["engines"][engine] = {
            "wall_ms": round(wall, 3),
            "profiled_ms": round(sum(o.ms for o in ops), 3),
            "categories": {k: round(v, 3) for k, v in by_category(ops).items()},
            "ops": [asdict(o) | {"ms": round(o.ms, 4)} for o in ops],
        }
    # the same convolutions on either engine: their FLOP rate says how close each engine's
    # convolution kernels come to the machine
    gflop = conv_gflop(path, shape)
    report["conv_gflop_per_batch"] = round(gflop, 4)
    for e in report["engines"].values():
        ms = e["categories"]["convolution"]
        e["conv_gflop_per_s"] = round(gflop / (ms / 1000.0), 2) if ms else None
    return report


def print_profile(report: dict[str, Any], console: Any, top: int = 12) -> None:
    """Category table (engines side by side, ms per batch and share) and each engine's top ops."""
    from rich.table import Table

    engines = report["engines"]
    s = report["settings"]
    table = Table(title=f"{Path(s['model']).name}: ms per batch of {s['batch']}, "
                        f"{s['threads']} threads, {s['runs']} runs")
    table.add_column("category")
    for name in engines:
        table.add_column(f"{SHORT_NAMES.get(name, name)} ms", justify="right")
        table.add_column("share", justify="right")
    for category in [*CATEGORIES, OTHER]:
        cells = []
        for e in engines.values():
            ms, total = e["categories"][category], e["profiled_ms"] or 1.0
            cells += [f"{ms:.2f}", f"{100 * ms / total:.1f} %"]
        table.add_row(category, *cells)
    table.add_row("sum of ops", *[c for e in engines.values()
                                  for c in (f"{e['profiled_ms']:.2f}", "")])
    table.add_row("wall (unprofiled)", *[c for e in engines.values()
                                         for c in (f"{e['wall_ms']:.2f}", "")])
    table.add_row(f"conv GFLOP/s ({report['conv_gflop_per_batch']:.2f} GFLOP)",
                  *[c for e in engines.values()
                    for c in (f"{e.get('conv_gflop_per_s') or 0:.1f}", "")])
    console.print(table)
    for name, e in engines.items():
        ops = Table(title=f"{name}: top {top} operators")
        for col in ("op", "category", "ms", "calls"):
            ops.add_column(col, justify="left" if col in ("op", "category") else "right")
        for o in e["ops"][:top]:
            ops.add_row(o["op"], o["category"], f"{o['ms']:.2f}", f"{o['calls']:g}")
        console.print(ops)
    for sk in report["skipped"]:
        console.print(f"[yellow]skipped {sk['engine']}: {sk['reason']}[/yellow]")
