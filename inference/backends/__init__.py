"""Inference backends: an ONNX artifact loaded on onnxruntime or OpenVINO.

:func:`open_backend` is the one place an engine is chosen; ``engine`` comes from the recipe
or ``LINEINSPECT_ENGINE`` (:class:`core.settings.Settings`):

* ``onnxruntime`` - :class:`~inference.backends.onnxruntime.OnnxRuntimeBackend` with the
  providers of ``LINEINSPECT_PROVIDERS`` (TensorRT, CUDA, CPU);
* ``openvino`` - :class:`~inference.backends.openvino.OpenVinoBackend` (CPU, f32);
* ``auto`` - the rule of :func:`choose_engine`, logged for every model.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

from inference.backends.base import Backend, BackendUnavailable
from inference.backends.onnxruntime import GPU_PROVIDERS, OnnxRuntimeBackend, resolve_providers

log = logging.getLogger(__name__)

ENGINES = ("auto", "onnxruntime", "openvino")

__all__ = ["ENGINES", "Backend", "BackendUnavailable", "choose_engine", "open_backend"]


def choose_engine(providers: str | Sequence[str] | None = None) -> tuple[str, str]:
    """The engine ``auto`` tries first, and why: ``(engine, reason)``.

    1. onnxruntime when one of its GPU providers (TensorRT, CUDA) is available and wanted;
    2. otherwise OpenVINO: on the CPUs measured it runs the zoo models at 1.0-3.8x the
       onnxruntime throughput, the AlexNet-SPP localiser on par (docs/perf/models*.json);
    3. a model OpenVINO cannot read (or no OpenVINO at all) falls back to onnxruntime
       (:func:`open_backend`).
    """
    gpu = [p for p in resolve_providers(providers) if p in GPU_PROVIDERS]
    if gpu:
        return "onnxruntime", f"GPU provider {gpu[0]} available"
    return "openvino", "no GPU provider: OpenVINO is the faster CPU engine"


def open_backend(
    path: str | Path,
    engine: str = "onnxruntime",
    *,
    providers: str | Sequence[str] | None = None,
    threads: int = 0,
    spinning: bool = False,
    name: str | None = None,
) -> Backend:
    """Load ``path`` on ``engine`` (``auto``, ``onnxruntime`` or ``openvino``).

    ``providers``/``spinning`` apply to onnxruntime, ``threads`` to both; ``name`` labels
    the log line of an ``auto`` choice. Raises :class:`BackendUnavailable` when an explicitly
    requested engine cannot run the model.
    """
    if engine not in ENGINES:
        raise ValueError(f"unknown engine {engine!r}: one of {ENGINES}")
    label = name or Path(path).stem
    if engine == "auto":
        engine, reason = choose_engine(providers)
        if engine == "openvino":
            try:
                backend = _openvino(path, threads)
            except BackendUnavailable as exc:
                reason = f"OpenVINO refused it: {exc}"
                engine = "onnxruntime"
            else:
                log.info("model %s: engine auto -> openvino (%s)", label, reason)
                return backend
        log.info("model %s: engine auto -> onnxruntime (%s)", label, reason)
    if engine == "openvino":
        return _openvino(path, threads)
    return OnnxRuntimeBackend(path, providers=providers, threads=threads, spinning=spinning)


def _openvino(path: str | Path, threads: int) -> Backend:
    from inference.backends.openvino import OpenVinoBackend

    return OpenVinoBackend(path, threads=threads)
