"""Inference backends: an ONNX artifact loaded on onnxruntime or OpenVINO.

:func:`open_backend` is the one place an engine is chosen; ``engine`` comes from the recipe
or ``LINEINSPECT_ENGINE`` (:class:`core.settings.Settings`):

* ``onnxruntime`` - :class:`~inference.backends.onnxruntime.OnnxRuntimeBackend` with the
  providers of ``LINEINSPECT_PROVIDERS`` (TensorRT, CUDA, CPU);
* ``openvino`` - :class:`~inference.backends.openvino.OpenVinoBackend` (CPU, f32);
* ``auto`` - per model, the fastest engine whose scores match onnxruntime's, measured by a
  short probe at load time (:mod:`inference.backends.probe`); the choice and its measured
  reason are logged and kept on the backend (``choice``).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path

from inference.backends.base import Backend, BackendUnavailable
from inference.backends.onnxruntime import OnnxRuntimeBackend, resolve_providers
from inference.backends.probe import PROBE_BATCH, EngineChoice, cache_key, cached, choose, remember

log = logging.getLogger(__name__)

ENGINES = ("auto", "onnxruntime", "openvino")

__all__ = ["ENGINES", "Backend", "BackendUnavailable", "EngineChoice", "open_backend"]


def open_backend(
    path: str | Path,
    engine: str = "onnxruntime",
    *,
    providers: str | Sequence[str] | None = None,
    threads: int = 0,
    spinning: bool = False,
    name: str | None = None,
    probe_batch: int = PROBE_BATCH,
    provider_options: Mapping[str, Mapping[str, str]] | None = None,
) -> Backend:
    """Load ``path`` on ``engine`` (``auto``, ``onnxruntime`` or ``openvino``).

    ``providers``/``spinning`` apply to onnxruntime, ``threads`` to both; ``name`` labels
    the log line of an ``auto`` choice, ``probe_batch`` is its probe's batch size;
    ``provider_options``: onnxruntime options per provider (TensorRT's). Raises
    :class:`BackendUnavailable` when an explicitly requested engine cannot run the model.
    With ``auto`` the returned backend carries ``choice`` (:class:`EngineChoice`).
    """
    if engine not in ENGINES:
        raise ValueError(f"unknown engine {engine!r}: one of {ENGINES}")
    if engine == "auto":
        return _auto(path, providers, threads, spinning, name or Path(path).stem, probe_batch,
                     provider_options)
    if engine == "openvino":
        return _openvino(path, threads)
    return OnnxRuntimeBackend(path, providers=providers, threads=threads, spinning=spinning,
                              provider_options=provider_options)


def _auto(
    path: str | Path,
    providers: str | Sequence[str] | None,
    threads: int,
    spinning: bool,
    label: str,
    probe_batch: int,
    provider_options: Mapping[str, Mapping[str, str]] | None = None,
) -> Backend:
    """``engine: auto``: probe (or reuse this process's probe of) every engine on the file."""
    resolved = tuple(resolve_providers(providers))
    key = cache_key(path, threads, spinning, resolved, probe_batch)
    choice = cached(key)
    if choice is not None:
        backend = open_backend(path, choice.engine, providers=providers, threads=threads,
                               spinning=spinning, provider_options=provider_options)
        log.info("model %s: engine auto -> %s (probed earlier: %s)", label, choice.engine,
                 choice.reason)
    else:
        reference = OnnxRuntimeBackend(path, providers=providers, threads=threads,
                                       spinning=spinning, provider_options=provider_options)
        others: dict[str, Backend] = {}
        refused: dict[str, str] = {}
        try:
            others["openvino"] = _openvino(path, threads)
        except BackendUnavailable as exc:
            refused["openvino"] = str(exc)
        choice = choose(reference, others, refused, batch=probe_batch)
        backend = reference if choice.engine == reference.engine else others[choice.engine]
        remember(key, choice)
        log.info("model %s: engine auto -> %s (%s)", label, choice.engine, choice.reason)
    backend.choice = choice  # type: ignore[attr-defined]
    return backend


def _openvino(path: str | Path, threads: int) -> Backend:
    from inference.backends.openvino import OpenVinoBackend

    return OpenVinoBackend(path, threads=threads)
