"""onnxruntime wrapper for the self-describing model artifacts of SPEC section 3.

:class:`OnnxModel` loads an ONNX file, validates its ``lineinspect.*`` metadata, chooses the
execution providers, preprocesses tiles exactly as SPEC section 3 says (convert to the channel
count -> bilinear resize to ``input_size`` -> /255 -> (x - mean) / std, float32 NCHW) into a
preallocated per-thread buffer, and runs them in batches.

Only numpy, OpenCV and onnxruntime: the service never imports torch.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import cv2
import numpy as np
import onnxruntime as ort

log = logging.getLogger(__name__)

META_PREFIX = "lineinspect."
META_KEYS = ("task", "classes", "input_size", "channels", "mean", "std", "version", "dataset")
#: Providers tried first when installed, in this order; CPU is always the last resort.
PREFERRED_PROVIDERS = (
    "TensorrtExecutionProvider",
    "CUDAExecutionProvider",
    "CPUExecutionProvider",
)
_SEMVER = re.compile(r"^\d+\.\d+\.\d+([-+][0-9A-Za-z.+-]+)?$")


class ModelMetadataError(ValueError):
    """The ONNX file lacks or has malformed ``lineinspect.*`` metadata (SPEC section 3)."""


@dataclass(frozen=True, slots=True)
class ModelMeta:
    """The validated ``lineinspect.*`` metadata of one artifact."""

    task: Literal["classify", "segment"]
    classes: tuple[str, ...]
    input_size: tuple[int, int]
    channels: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    version: str
    dataset: str

    @classmethod
    def from_props(cls, props: dict[str, str], source: str = "model") -> ModelMeta:
        """Parse and validate ``metadata_props``; :class:`ModelMetadataError` says what is wrong."""
        missing = [META_PREFIX + k for k in META_KEYS if not props.get(META_PREFIX + k)]
        if missing:
            raise ModelMetadataError(
                f"{source}: missing ONNX metadata_props {missing} (SPEC section 3 requires "
                f"{[META_PREFIX + k for k in META_KEYS]})"
            )

        def load(key: str) -> object:
            raw = props[META_PREFIX + key]
            try:
                return json.loads(raw)
            except json.JSONDecodeError as exc:
                raise ModelMetadataError(
                    f"{source}: {META_PREFIX}{key} is not valid JSON: {raw!r}"
                ) from exc

        def bad(key: str, why: str) -> ModelMetadataError:
            return ModelMetadataError(
                f"{source}: {META_PREFIX}{key}={props[META_PREFIX + key]!r}: {why}"
            )

        task = props[META_PREFIX + "task"].strip()
        if task not in ("classify", "segment"):
            raise bad("task", "must be 'classify' or 'segment'")
        classes = load("classes")
        if (
            not isinstance(classes, list)
            or not classes
            or not all(isinstance(c, str) and c for c in classes)
        ):
            raise bad("classes", "must be a non-empty JSON list of class names")
        if len(set(classes)) != len(classes):
            raise bad("classes", "class names must be unique")
        if task == "segment" and (classes[0] != "background" or len(classes) < 2):
            raise bad("classes", "segmentation classes must start with 'background'")
        if task == "classify" and len(classes) < 2:
            raise bad("classes", "a classifier needs at least two classes")
        size = load("input_size")
        if (
            not isinstance(size, list)
            or len(size) != 2
            or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in size)
        ):
            raise bad("input_size", "must be a JSON list [H, W] of positive integers")
        channels = load("channels")
        if isinstance(channels, str) and channels.isdigit():
            channels = int(channels)
        if channels not in (1, 3) or isinstance(channels, bool):
            raise bad("channels", "must be 1 or 3")
        mean, std = load("mean"), load("std")
        for key, vals in (("mean", mean), ("std", std)):
            if (
                not isinstance(vals, list)
                or len(vals) != channels
                or not all(isinstance(v, int | float) and not isinstance(v, bool) for v in vals)
            ):
                raise bad(key, f"must be a JSON list of {channels} numbers (one per channel)")
        if any(v <= 0 for v in std):
            raise bad("std", "must be positive")
        version = props[META_PREFIX + "version"].strip()
        if not _SEMVER.match(version):
            raise bad("version", "must be a semantic version MAJOR.MINOR.PATCH")
        return cls(
            task=task,  # type: ignore[arg-type]
            classes=tuple(classes),
            input_size=(int(size[0]), int(size[1])),
            channels=int(channels),
            mean=tuple(float(v) for v in mean),
            std=tuple(float(v) for v in std),
            version=version,
            dataset=props[META_PREFIX + "dataset"].strip(),
        )


def _trained_tile(props: dict[str, str], source: str) -> int:
    """The optional ``lineinspect.tile`` entry as a non-negative int (0 when absent)."""
    raw = props.get(META_PREFIX + "tile", "0").strip() or "0"
    if not raw.isdigit():
        raise ModelMetadataError(
            f"{source}: {META_PREFIX}tile={raw!r}: must be a non-negative integer"
        )
    return int(raw)


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
    """The onnxruntime session options the service runs every model with.

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


class OnnxModel:
    """One ONNX artifact on onnxruntime: metadata, preprocessing and batched inference.

    Thread-safe: onnxruntime sessions may be run concurrently and the preprocessing buffer is
    per thread.
    """

    def __init__(
        self,
        path: str | Path,
        providers: str | Sequence[str] | None = None,
        threads: int = 0,
        name: str | None = None,
        spinning: bool = False,
    ) -> None:
        """Load ``path``; ``providers`` as :func:`resolve_providers`; ``threads`` = intra-op
        threads (0 = onnxruntime default: one per physical core); ``name`` labels metrics
        (default: file stem); ``spinning``: let idle intra-op threads busy-wait for work.

        Session settings: :func:`session_options`.
        """
        self.path = Path(path)
        if not self.path.is_file():
            raise FileNotFoundError(f"ONNX model not found: {self.path}")
        self.name = name or self.path.stem
        self.session = ort.InferenceSession(
            str(self.path),
            sess_options=session_options(threads, spinning),
            providers=resolve_providers(providers),
        )
        props = dict(self.session.get_modelmeta().custom_metadata_map)
        self.meta = ModelMeta.from_props(props, source=str(self.path))
        #: frame pixels per tile the network was trained on (``lineinspect.tile``; 0 = whole
        #: image or not recorded): a recipe must cut its frames the same way
        self.trained_tile = _trained_tile(props, str(self.path))
        inp = self.session.get_inputs()[0]
        self.input_name = inp.name
        self.output_name = self.session.get_outputs()[0].name
        self._check_signature(inp.shape, self.session.get_outputs()[0].shape)
        self._local = threading.local()

    def _check_signature(self, in_shape: list, out_shape: list) -> None:
        src = str(self.path)
        if len(in_shape) != 4:
            raise ModelMetadataError(f"{src}: input must be NCHW, got shape {in_shape}")
        if isinstance(in_shape[1], int) and in_shape[1] != self.meta.channels:
            raise ModelMetadataError(
                f"{src}: input has {in_shape[1]} channels, metadata says {self.meta.channels}"
            )
        want_rank = 2 if self.meta.task == "classify" else 4
        if len(out_shape) != want_rank:
            raise ModelMetadataError(
                f"{src}: {self.meta.task} output must have rank {want_rank}, got {out_shape}"
            )
        if isinstance(out_shape[1], int) and out_shape[1] != len(self.meta.classes):
            raise ModelMetadataError(
                f"{src}: output has {out_shape[1]} classes, metadata lists {len(self.meta.classes)}"
            )

    # -- properties -------------------------------------------------------------------------
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
        """Providers the session actually uses."""
        return self.session.get_providers()

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
        """uint8 tiles (HxW or HxWx3, any size) -> normalised float32 NCHW batch.

        SPEC section 3: convert to the channel count (gray -> repeated, RGB -> gray with
        ``cv2.COLOR_RGB2GRAY``), bilinear resize to ``input_size`` (``cv2.INTER_LINEAR``), /255,
        (x - mean) / std per channel. Written into ``out`` when given, else into this
        thread's preallocated buffer: the returned array is then only valid until the next
        call from the same thread.
        """
        n = len(tiles)
        h, w = self.meta.input_size
        c = self.meta.channels
        if out is None:
            out = self._buffer(n)
        elif out.shape != (n, c, h, w) or out.dtype != np.float32:
            raise ValueError(f"out must be float32 {(n, c, h, w)}, got {out.dtype} {out.shape}")
        for i, tile in enumerate(tiles):
            if tile.dtype != np.uint8:
                raise ValueError(f"tiles must be uint8, got {tile.dtype}")
            if tile.ndim == 3 and tile.shape[2] == 1:
                tile = tile[:, :, 0]
            if c == 1 and tile.ndim == 3:
                tile = cv2.cvtColor(tile, cv2.COLOR_RGB2GRAY)
            if tile.shape[0] != h or tile.shape[1] != w:
                tile = cv2.resize(tile, (w, h), interpolation=cv2.INTER_LINEAR)
            if tile.ndim == 2:
                out[i, :] = tile  # broadcast over 1 or 3 channels (gray repeated)
            else:
                out[i] = tile.transpose(2, 0, 1)
        mean = np.asarray(self.meta.mean, dtype=np.float32).reshape(1, c, 1, 1)
        std = np.asarray(self.meta.std, dtype=np.float32).reshape(1, c, 1, 1)
        np.divide(out, np.float32(255.0), out=out)
        np.subtract(out, mean, out=out)
        np.divide(out, std, out=out)
        return out

    # -- inference --------------------------------------------------------------------------
    def run(self, batch: np.ndarray) -> np.ndarray:
        """Run one preprocessed NCHW float32 batch; returns output 0 (logits)."""
        return self.session.run([self.output_name], {self.input_name: batch})[0]

    def predict_iter(
        self, tiles: Sequence[np.ndarray], batch_size: int = 32
    ) -> Iterator[tuple[int, np.ndarray, float, float]]:
        """Preprocess and run ``tiles`` in chunks of ``batch_size``.

        Yields ``(start_index, logits, preprocess_seconds, run_seconds)`` per chunk; ``logits``
        is a fresh array owned by the caller; ``run_seconds`` is the onnxruntime time.
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
            f"providers={self.providers})"
        )
