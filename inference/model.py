"""One self-describing ONNX artifact in the service: metadata, preprocessing, batched runs.

:class:`OnnxModel` loads the file on an inference backend (:mod:`inference.backends`:
onnxruntime or OpenVINO), validates its ``lineinspect.*`` metadata and graph signature
(:mod:`core.model_meta`), preprocesses tiles with the contract's preprocessing
(:func:`core.preprocess.preprocess`) into a preallocated per-thread buffer, and runs them in
batches. :func:`load_model` builds one from the settings and recipe.

Only numpy, OpenCV and the engines: the service never imports torch.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import numpy as np

from core.model_meta import ModelMeta, check_signature
from core.preprocess import preprocess
from core.settings import Settings
from inference.backends import Backend, EngineChoice, open_backend
from inference.backends.onnxruntime import resolve_providers, trt_options
from inference.backends.probe import PROBE_BATCH


class OnnxModel:
    """One ONNX artifact on one backend: metadata, preprocessing and batched inference.

    Thread-safe: backends run concurrently and the preprocessing buffer is per thread.
    """

    def __init__(
        self,
        path: str | Path,
        engine: str = "onnxruntime",
        *,
        providers: str | Sequence[str] | None = None,
        threads: int = 0,
        spinning: bool = False,
        name: str | None = None,
        probe_batch: int = PROBE_BATCH,
        provider_options: Mapping[str, Mapping[str, str]] | None = None,
    ) -> None:
        """Load ``path`` on ``engine`` (:func:`inference.backends.open_backend`: ``auto``,
        ``onnxruntime`` or ``openvino``); ``providers``/``spinning`` for onnxruntime,
        ``threads`` = intra-op threads (0 = the engine's default); ``name`` labels metrics
        (default: file stem); ``probe_batch``: tiles in the ``auto`` probe's batch;
        ``provider_options``: onnxruntime options per provider (TensorRT's).

        Raises FileNotFoundError, :class:`core.model_meta.ModelMetadataError` (metadata or
        graph signature wrong) or :class:`inference.backends.BackendUnavailable`.
        """
        self.path = Path(path)
        if not self.path.is_file():
            raise FileNotFoundError(f"ONNX model not found: {self.path}")
        self.name = name or self.path.stem
        self.backend: Backend = open_backend(
            self.path, engine, providers=providers, threads=threads, spinning=spinning,
            name=self.name, probe_batch=probe_batch, provider_options=provider_options,
        )
        #: what ``engine: auto`` measured and chose (None when the engine was set)
        self.engine_choice: EngineChoice | None = getattr(self.backend, "choice", None)
        self.meta = ModelMeta.from_props(self.backend.metadata_props(), source=str(self.path))
        check_signature(self.meta, self.backend.input_shape(), self.backend.output_shape())
        self._local = threading.local()

    # -- properties -------------------------------------------------------------------------
    @property
    def engine(self) -> str:
        """The backend's engine: ``onnxruntime`` or ``openvino``."""
        return self.backend.engine

    @property
    def task(self) -> str:
        """``classify`` or ``segment``."""
        return self.meta.task

    @property
    def classes(self) -> tuple[str, ...]:
        """Class names in output order."""
        return self.meta.classes

    @property
    def version(self) -> str:
        """Artifact version from the metadata."""
        return self.meta.version

    @property
    def providers(self) -> list[str]:
        """onnxruntime providers in use (empty on other engines)."""
        return list(getattr(self.backend, "providers", []))

    # -- preprocessing ----------------------------------------------------------------------
    def _buffer(self, n: int) -> np.ndarray:
        buf = getattr(self._local, "buf", None)
        if buf is None or buf.shape[0] < n:
            h, w = self.meta.input_size
            buf = np.empty((max(n, 1), self.meta.channels, h, w), dtype=np.float32)
            self._local.buf = buf
        return buf[:n]

    def preprocess(
        self, tiles: Sequence[np.ndarray] | np.ndarray, out: np.ndarray | None = None
    ) -> np.ndarray:
        """uint8 tiles (HxW or HxWx3, any size) -> normalised float32 NCHW batch
        (:func:`core.preprocess.preprocess` with this model's metadata).

        Written into ``out`` when given, else into this thread's preallocated buffer: the
        returned array is then only valid until the next call from the same thread.
        """
        m = self.meta
        if out is None:
            out = self._buffer(len(tiles))
        return preprocess(tiles, m.channels, m.input_size, m.mean, m.std, out=out)

    # -- inference --------------------------------------------------------------------------
    def run(self, batch: np.ndarray) -> np.ndarray:
        """Run one preprocessed NCHW float32 batch; returns output 0 (logits)."""
        return self.backend.run(batch)

    def predict_iter(
        self, tiles: Sequence[np.ndarray], batch_size: int = 32
    ) -> Iterator[tuple[int, np.ndarray, float, float]]:
        """Preprocess and run ``tiles`` in chunks of ``batch_size``.

        Yields ``(start_index, logits, preprocess_seconds, run_seconds)`` per chunk; ``logits``
        is a fresh array owned by the caller; ``run_seconds`` is the engine's time.
        """
        bs = max(1, int(batch_size))
        for start in range(0, len(tiles), bs):
            t0 = time.perf_counter()
            batch = self.preprocess(tiles[start : start + bs])
            t1 = time.perf_counter()
            logits = self.run(batch)
            yield start, logits, t1 - t0, time.perf_counter() - t1

    def predict(self, tiles: Sequence[np.ndarray], batch_size: int = 32) -> np.ndarray:
        """Logits of all ``tiles`` (preprocessed and run in chunks of ``batch_size``)."""
        parts = [logits for _, logits, _, _ in self.predict_iter(tiles, batch_size)]
        if not parts:
            k = len(self.classes)
            h, w = self.meta.input_size
            shape = (0, k) if self.task == "classify" else (0, k, h, w)
            return np.zeros(shape, dtype=np.float32)
        return np.concatenate(parts, axis=0)

    def __repr__(self) -> str:
        m = self.meta
        return (
            f"OnnxModel({self.name!r}, task={m.task}, classes={list(m.classes)}, "
            f"input={m.channels}x{m.input_size[0]}x{m.input_size[1]}, v{m.version}, "
            f"{self.backend.describe()})"
        )


def load_model(
    path: str | Path,
    settings: Settings,
    *,
    name: str | None = None,
    engine: str | None = None,
    probe_batch: int = PROBE_BATCH,
) -> OnnxModel:
    """:class:`OnnxModel` with the engine, providers, threads and spinning of ``settings``
    (``engine`` - a recipe's choice - overrides ``settings.engine``); with the TensorRT
    provider, :func:`~inference.backends.onnxruntime.trt_options` of ``settings`` (fp16,
    engine cache)."""
    options = None
    if "TensorrtExecutionProvider" in resolve_providers(settings.providers or None):
        cache = settings.trt_cache_dir or settings.data_dir / "trt-cache"
        options = {"TensorrtExecutionProvider": trt_options(
            path, fp16=settings.trt_fp16, cache_dir=cache)}
    return OnnxModel(
        path,
        engine or settings.engine,
        providers=settings.providers or None,
        threads=settings.ort_threads,
        spinning=settings.ort_spinning,
        name=name,
        probe_batch=probe_batch,
        provider_options=options,
    )
