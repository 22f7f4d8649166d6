"""``engine: auto``: a short measured probe at start-up picks the engine per model.

For one ONNX file, every engine that loads it runs the same probe batch (seeded standard
normal values at the model's input size, ``probe_batch`` tiles); the engines are timed in
interleaved rounds (median ms per batch, after a warm-up), and their scores (softmax over the
class axis) are compared with onnxruntime's, the engine every artifact was validated on. The
choice is the fastest engine whose scores match within :data:`SCORE_TOLERANCE`; another engine
must beat onnxruntime by :data:`MARGIN` to be chosen (timing noise on a busy machine must not
move a model off its reference engine). An engine that refuses the file (OpenVINO: quantized
graphs, the ``ai.onnx.ml`` SVM) or misses the tolerance is listed with why.

Choices are cached per process, keyed by the file (path, size, mtime) and the settings that
change the timing, so the worker and the API of ``lineinspect run`` agree and pay the probe
once.
"""

from __future__ import annotations

import statistics
import threading
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from inference.backends.base import Backend

#: Largest score difference (softmax probabilities) to onnxruntime an engine may have.
SCORE_TOLERANCE = 1e-3
#: Another engine must be this much faster than onnxruntime to be chosen (0.05 = 5 %).
MARGIN = 0.05
#: Tiles in the probe batch (the service's batches hold a frame's tiles: tens of tiles).
PROBE_BATCH = 8
#: Timed rounds per engine (after the warm-up call), interleaved between engines.
ROUNDS = 3

_cache: dict[tuple[Any, ...], EngineChoice] = {}
_lock = threading.Lock()


@dataclass(frozen=True)
class EngineChoice:
    """What ``engine: auto`` chose for one model, and the measurements behind it."""

    engine: str
    reason: str
    #: engine -> median milliseconds per probe batch
    ms_per_batch: dict[str, float] = field(default_factory=dict)
    #: engine -> largest score difference to onnxruntime on the probe batch
    max_score_diff: dict[str, float] = field(default_factory=dict)
    #: engine -> why it was not a candidate (refused the file, scores off)
    rejected: dict[str, str] = field(default_factory=dict)
    probe_batch: int = PROBE_BATCH
    #: seconds the probe took (0 when the choice came from the cache)
    probe_s: float = 0.0

    def as_json(self) -> dict[str, Any]:
        """JSON-ready form (``/readyz``, benchmark reports)."""
        return asdict(self)


def cache_key(path: str | Path, *settings: Any) -> tuple[Any, ...]:
    """Key of a probe result: the file's identity plus ``settings`` (threads, providers...)."""
    p = Path(path).resolve()
    st = p.stat()
    return (str(p), st.st_size, st.st_mtime_ns, *settings)


def cached(key: tuple[Any, ...]) -> EngineChoice | None:
    """The choice probed earlier in this process for ``key``."""
    with _lock:
        return _cache.get(key)


def remember(key: tuple[Any, ...], choice: EngineChoice) -> None:
    """Keep ``choice`` for later loads of the same file with the same settings."""
    with _lock:
        _cache[key] = choice


def clear_cache() -> None:
    """Forget every probe result (tests)."""
    with _lock:
        _cache.clear()


def probe_input(backend: Backend, batch: int = PROBE_BATCH, seed: int = 0) -> np.ndarray:
    """A seeded standard-normal float32 NCHW batch at ``backend``'s input shape.

    Dynamic height/width come from the file's ``lineinspect.input_size``/``channels``."""
    _, c, h, w = (list(backend.input_shape()) + [None] * 4)[:4]
    props = backend.metadata_props()
    if not isinstance(c, int):
        c = int(props.get("lineinspect.channels", "1"))
    if not (isinstance(h, int) and isinstance(w, int)):
        size = props.get("lineinspect.input_size", "[224, 224]").strip("[]").split(",")
        h, w = (int(v) for v in size)
    rng = np.random.default_rng(seed)
    return rng.standard_normal((max(1, batch), c, h, w), dtype=np.float32)


def _softmax(x: np.ndarray) -> np.ndarray:
    z = np.asarray(x, dtype=np.float64)
    if z.ndim < 2:
        return z
    z = z - z.max(axis=1, keepdims=True)
    np.exp(z, out=z)
    return z / z.sum(axis=1, keepdims=True)


def score_diff(reference: np.ndarray, other: np.ndarray) -> float:
    """Largest difference of the class probabilities (softmax over axis 1) of two outputs."""
    if reference.shape != other.shape:
        return float("inf")
    return float(np.abs(_softmax(reference) - _softmax(other)).max(initial=0.0))


def measure(backends: Mapping[str, Backend], x: np.ndarray, rounds: int = ROUNDS) -> tuple[
    dict[str, float], dict[str, np.ndarray]
]:
    """Median ms per call of each backend on ``x`` (one warm-up call each, then ``rounds``
    interleaved rounds) and each backend's output of the warm-up call."""
    outputs = {name: b.run(x) for name, b in backends.items()}
    samples: dict[str, list[float]] = {name: [] for name in backends}
    for _ in range(max(1, rounds)):
        for name, b in backends.items():
            t0 = time.perf_counter()
            b.run(x)
            samples[name].append((time.perf_counter() - t0) * 1000.0)
    return {k: round(statistics.median(v), 3) for k, v in samples.items()}, outputs


def choose(
    reference: Backend,
    others: Mapping[str, Backend],
    refused: Mapping[str, str] | None = None,
    *,
    batch: int = PROBE_BATCH,
    rounds: int = ROUNDS,
    tolerance: float = SCORE_TOLERANCE,
    margin: float = MARGIN,
) -> EngineChoice:
    """Probe ``reference`` (onnxruntime) against ``others`` and return the choice."""
    t0 = time.perf_counter()
    rejected = dict(refused or {})
    if not others:
        why = "; ".join(f"{k} refused it: {v}" for k, v in rejected.items()) or "only engine"
        return EngineChoice(reference.engine, why, rejected=rejected, probe_batch=0)
    x = probe_input(reference, batch)
    ms, outputs = measure({reference.engine: reference, **others}, x, rounds)
    ref_out = outputs[reference.engine]
    diffs = {k: score_diff(ref_out, outputs[k]) for k in others}
    best, best_ms = reference.engine, ms[reference.engine]
    for name in others:
        if not diffs[name] <= tolerance:
            rejected[name] = f"scores differ by {diffs[name]:.1e} (> {tolerance:.0e})"
        elif ms[name] < best_ms * (1.0 - margin):
            best, best_ms = name, ms[name]
    ref_ms = ms[reference.engine]
    parts = [f"{k} {v:.1f} ms" for k, v in sorted(ms.items(), key=lambda kv: kv[1])]
    timing = f"per batch of {len(x)}: {', '.join(parts)}"
    notes = "; ".join(f"{k}: {v}" for k, v in rejected.items())
    if best == reference.engine:
        reason = f"no other engine >= {margin:.0%} faster ({timing})"
        if all(k in rejected for k in others):
            reason = f"the only engine with its scores ({timing})"
    else:
        reason = (
            f"{ref_ms / best_ms:.2f}x onnxruntime ({timing}), scores within "
            f"{diffs[best]:.1e}"
        )
    if notes:
        reason = f"{reason}; {notes}"
    return EngineChoice(
        engine=best,
        reason=reason,
        ms_per_batch=ms,
        max_score_diff={k: float(f"{v:.3g}") for k, v in diffs.items()},
        rejected=rejected,
        probe_batch=len(x),
        probe_s=round(time.perf_counter() - t0, 3),
    )
