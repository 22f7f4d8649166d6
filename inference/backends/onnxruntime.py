"""The onnxruntime backend and the one onnxruntime session factory (:func:`create_session`).

Every onnxruntime session of the project - the service's models, the benchmarks and
profiles, training-side export checks and evaluation - is built by :func:`create_session`
with :func:`session_options`, so they all run the graph as the service does.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

log = logging.getLogger(__name__)

#: Providers tried first when installed, in this order; CPU is always the last resort.
PREFERRED_PROVIDERS = (
    "TensorrtExecutionProvider",
    "CUDAExecutionProvider",
    "CPUExecutionProvider",
)
#: Providers that run on a GPU (``engine: auto`` keeps onnxruntime when one is available).
GPU_PROVIDERS = frozenset({"TensorrtExecutionProvider", "CUDAExecutionProvider"})


def resolve_providers(requested: str | Sequence[str] | None = None) -> list[str]:
    """Execution providers in priority order.

    ``requested`` (``Settings.providers``: comma-separated names, or a list) overrides the
    default; names that are not available in this onnxruntime build are skipped with a
    warning. Default: TensorRT, CUDA (when installed and available), then CPU. The CPU
    provider is always appended as the last resort.
    """
    available = ort.get_available_providers()
    if isinstance(requested, str):
        wanted = [p.strip() for p in requested.split(",") if p.strip()]
    else:
        wanted = [p for p in (requested or []) if p]
    if wanted:
        chosen = [p for p in wanted if p in available]
        skipped = [p for p in wanted if p not in available]
        if skipped:
            log.warning("onnxruntime providers not available, skipped: %s", skipped)
    else:
        chosen = [p for p in PREFERRED_PROVIDERS if p in available]
    if "CPUExecutionProvider" not in chosen:
        chosen.append("CPUExecutionProvider")
    return chosen


def session_options(threads: int = 0, spinning: bool = False) -> ort.SessionOptions:
    """The onnxruntime session options every model runs with.

    ``threads`` = intra-op threads (0 = onnxruntime default: one per physical core);
    ``spinning``: let idle intra-op threads busy-wait for work.

    Session settings (measured in docs/PERFORMANCE.md): all graph optimisations
    (``ORT_ENABLE_ALL``: constant folding, node fusions and the NCHWc layout for
    AVX2/AVX-512 convolutions), one inter-op thread (the graphs are sequential), and
    spinning off by default: on a 2-core machine the spinning threads steal the CPU that
    the acquisition thread, Redis and the other models need.
    """
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.inter_op_num_threads = 1
    opts.add_session_config_entry("session.intra_op.allow_spinning", "1" if spinning else "0")
    if threads > 0:
        opts.intra_op_num_threads = threads
    return opts


def trt_options(
    path: str | Path,
    *,
    fp16: bool = False,
    cache_dir: str | Path | None = None,
    max_batch: int = 128,
    opt_batch: int = 32,
) -> dict[str, str]:
    """TensorRT execution provider options for one ONNX file.

    One optimisation profile over the batch dimension (1..``max_batch``, tuned for
    ``opt_batch``; dynamic height/width fixed at the file's ``lineinspect.input_size``, the
    size the service feeds): the service's batches are a frame's tiles, and gated models see a
    different count on every frame, which would otherwise rebuild the engine per new batch
    size. Engines are cached under ``cache_dir`` (built once per file, GPU and TensorRT
    version); ``fp16`` lets TensorRT run layers in half precision (accept it per model only
    where the scores hold: ``lineinspect bench gpu``).
    """
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    inp = model.graph.input[0]
    dims = [d.dim_value if d.dim_value > 0 else None for d in inp.type.tensor_type.shape.dim]
    props = {p.key: p.value for p in model.metadata_props}
    known = [int(props.get("lineinspect.channels", 1)),
             *json.loads(props.get("lineinspect.input_size", "[1, 1]"))]
    rest = "x".join(str(d or k) for d, k in zip(dims[1:], known, strict=False))

    def shape(n: int) -> str:
        return f"{inp.name}:{n}x{rest}"

    opts = {"trt_fp16_enable": "True" if fp16 else "False"}
    if None in dims:
        opts |= {"trt_profile_min_shapes": shape(1), "trt_profile_opt_shapes": shape(opt_batch),
                 "trt_profile_max_shapes": shape(max_batch)}
    if cache_dir is not None:
        Path(cache_dir).mkdir(parents=True, exist_ok=True)
        opts |= {"trt_engine_cache_enable": "True", "trt_engine_cache_path": str(cache_dir),
                 "trt_timing_cache_enable": "True", "trt_timing_cache_path": str(cache_dir)}
    return opts


def create_session(
    model: str | Path | bytes,
    *,
    providers: str | Sequence[str] | None = None,
    threads: int = 0,
    spinning: bool = False,
    profile_prefix: str | None = None,
    provider_options: Mapping[str, Mapping[str, str]] | None = None,
) -> ort.InferenceSession:
    """An onnxruntime session for an ONNX file (or serialized model bytes).

    Options of :func:`session_options`, providers of :func:`resolve_providers` with
    ``provider_options`` per provider name (e.g. :func:`trt_options`); ``profile_prefix``
    turns onnxruntime's profiler on (``end_profiling()`` writes the JSON).
    """
    opts = session_options(threads, spinning)
    if profile_prefix is not None:
        opts.enable_profiling = True
        opts.profile_file_prefix = profile_prefix
    source = model if isinstance(model, bytes) else str(model)
    chosen: list[Any] = []
    for name in resolve_providers(providers):
        extra = (provider_options or {}).get(name)
        chosen.append((name, dict(extra)) if extra else name)
    return ort.InferenceSession(source, sess_options=opts, providers=chosen)


class OnnxRuntimeBackend:
    """An ONNX artifact on onnxruntime (CPU, CUDA or TensorRT execution providers)."""

    engine = "onnxruntime"

    def __init__(
        self,
        path: str | Path,
        providers: str | Sequence[str] | None = None,
        threads: int = 0,
        spinning: bool = False,
        provider_options: Mapping[str, Mapping[str, str]] | None = None,
    ) -> None:
        """Load ``path`` with :func:`create_session` (sessions may run concurrently)."""
        self.path = Path(path)
        self.session = create_session(
            self.path, providers=providers, threads=threads, spinning=spinning,
            provider_options=provider_options,
        )
        self._input = self.session.get_inputs()[0]
        self._output = self.session.get_outputs()[0]

    @property
    def providers(self) -> list[str]:
        """Providers the session actually uses."""
        return self.session.get_providers()

    def metadata_props(self) -> dict[str, str]:
        """The file's ``metadata_props``."""
        return dict(self.session.get_modelmeta().custom_metadata_map)

    def input_shape(self) -> list[Any]:
        """Shape of input 0 (ints, or names of dynamic dimensions)."""
        return list(self._input.shape)

    def output_shape(self) -> list[Any]:
        """Shape of output 0."""
        return list(self._output.shape)

    def run(self, batch: np.ndarray) -> np.ndarray:
        """Output 0 of one float32 NCHW batch."""
        return self.session.run([self._output.name], {self._input.name: batch})[0]

    def describe(self) -> str:
        """``onnxruntime <version>, providers [...]``."""
        return f"onnxruntime {ort.__version__}, providers {self.providers}"
