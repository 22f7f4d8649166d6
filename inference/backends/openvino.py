"""The OpenVINO backend: the same ONNX file on the OpenVINO CPU runtime, at f32 precision.

OpenVINO's CPU plugin would otherwise pick bf16 on CPUs with AVX-512 BF16 or AMX
(``INFERENCE_PRECISION_HINT`` defaults to the fastest precision): scores would then differ
from onnxruntime's and from the validation numbers on the model cards. The service compiles
with the latency hint (one stream; requests run one at a time, as onnxruntime's do) and
``INFERENCE_NUM_THREADS`` threads; the batch dimension stays dynamic unless ``shape`` fixes
the whole input shape (``lineinspect bench``).

Quantized (QDQ / INT8) artifacts are refused: OpenVINO reads them, but its int8 kernels give
other scores than the onnxruntime kernels the artifact was validated on (on the golden
images up to 0.9 apart in probability, 98.2 % of segmenter pixels agreeing with the fp32
model against 99.8 % on onnxruntime), so they stay on onnxruntime.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from inference.backends.base import BackendUnavailable

#: Compile options of every OpenVINO model (``PERF_COUNT`` added for profiles).
CONFIG: dict[str, Any] = {"INFERENCE_PRECISION_HINT": "f32", "PERFORMANCE_HINT": "LATENCY"}
#: Operators of quantized graphs (see the module docstring).
QUANTIZED_OPS = frozenset({
    "QuantizeLinear", "DequantizeLinear", "DynamicQuantizeLinear", "QLinearConv",
    "QLinearMatMul", "ConvInteger", "MatMulInteger",
})


def _dims(partial_shape: Any) -> list[Any]:
    return [d.get_length() if d.is_static else None for d in partial_shape]


class OpenVinoBackend:
    """An ONNX artifact compiled by OpenVINO for the CPU (f32)."""

    engine = "openvino"

    def __init__(
        self,
        path: str | Path,
        threads: int = 0,
        shape: Sequence[int] | None = None,
        perf_count: bool = False,
    ) -> None:
        """Read and compile ``path``; ``threads`` = ``INFERENCE_NUM_THREADS`` (0 = OpenVINO's
        default), ``shape`` = a fixed input shape, ``perf_count`` = per-node timing
        (:meth:`request` ``.get_profiling_info()``).

        Raises :class:`BackendUnavailable` when OpenVINO is not installed, cannot read the
        graph (e.g. the ``ai.onnx.ml`` SVM of the AlexNet-SVM screens) or the graph is
        quantized.
        """
        try:
            import openvino as ov
        except ImportError as exc:
            raise BackendUnavailable("openvino is not installed (pip install openvino)") from exc
        self.path = Path(path)
        self.version = ov.__version__
        graph = onnx.load(str(self.path), load_external_data=False)
        quantized = sorted({n.op_type for n in graph.graph.node} & QUANTIZED_OPS)
        if quantized:
            raise BackendUnavailable(
                f"quantized graph ({', '.join(quantized)}): OpenVINO's int8 kernels do not "
                "reproduce the onnxruntime scores it was validated with (engine onnxruntime "
                "or auto runs it)"
            )
        self._props = {p.key: p.value for p in graph.metadata_props}
        del graph
        core = ov.Core()
        try:
            model = core.read_model(str(self.path))
        except RuntimeError as exc:
            first = next((ln for ln in str(exc).splitlines() if "No conversion rule" in ln), "")
            raise BackendUnavailable(f"OpenVINO cannot read this graph: {first or exc}") from exc
        if shape is not None:
            model.reshape([int(v) for v in shape])
        config = dict(CONFIG, PERF_COUNT=bool(perf_count))
        if threads > 0:
            config["INFERENCE_NUM_THREADS"] = int(threads)
        self.threads = threads
        self.compiled = core.compile_model(model, "CPU", config)
        self._input_shape = _dims(model.inputs[0].get_partial_shape())
        self._output_shape = _dims(model.outputs[0].get_partial_shape())
        self._local = threading.local()

    def request(self) -> Any:
        """This thread's infer request (requests are not thread-safe; the model is)."""
        req = getattr(self._local, "request", None)
        if req is None:
            req = self._local.request = self.compiled.create_infer_request()
        return req

    def metadata_props(self) -> dict[str, str]:
        """The file's ``metadata_props`` (OpenVINO does not keep them: read with onnx)."""
        return dict(self._props)

    def input_shape(self) -> list[Any]:
        """Shape of input 0 (None for dynamic dimensions)."""
        return list(self._input_shape)

    def output_shape(self) -> list[Any]:
        """Shape of output 0."""
        return list(self._output_shape)

    def run(self, batch: np.ndarray) -> np.ndarray:
        """Output 0 of one float32 NCHW batch (a copy: the request reuses its buffers)."""
        req = self.request()
        req.infer({0: batch}, share_inputs=True, share_outputs=True)
        return np.array(req.get_output_tensor(0).data, copy=True)

    def describe(self) -> str:
        """``openvino <version>, CPU, f32, latency hint, <n> threads``."""
        return (
            f"openvino {self.version}, CPU, f32, latency hint, "
            f"{self.threads or 'default'} threads"
        )
