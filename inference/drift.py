"""Drift statistics of a line: what changes before QA notices (issue 21).

Per inspected frame, :func:`frame_stats` measures (on the frame halved in size; about 2 ms of
CPU for a 1296 x 966 frame, measured on the shared 2-core test machine under load):

* **brightness** - mean gray value (the worker's ``lineinspect_frame_brightness``);
* **contrast** - gray-level standard deviation (LED ageing, dirty lens, fog);
* **sharpness** - variance of the Laplacian (focus: it collapses when frames blur);
* **flagged tile share** - share of the cells of a grid of the segmenter's tile size that
  hold a defect pixel in the frame mask;
* **score** - the highest defect score of the frame (0 when none);
* **signature** - a 48-bin "embedding" of the frame (at a quarter of its size): its gray-level
  histogram (32 bins) and its gradient-magnitude histogram (16 bins), each normalised, halved
  and concatenated (sums to 1). Darker or flatter lighting moves the first half, blur or a new
  surface texture the second.

:class:`DriftMonitor` keeps the last ``window`` frames (recipe ``drift.window``) and exports
their rolling means (``lineinspect_frame_contrast``, ``_sharpness``, ``_flagged_tile_share``),
every frame's score (``lineinspect_frame_score``, ``lineinspect_defect_score{model}``) and the
**drift distance**: the Hellinger distance (0 = same, 1 = disjoint) between the window's mean
signature and the line's **reference** - the mean signature of the first ``drift.reference``
frames the line ever inspected. The reference is kept in Redis (``drift:ref:{line}``), so a
restarted worker compares against the same reference, not against the drifted frames it starts
on; :func:`reset_reference` (after a deliberate change: new lighting, new product) starts a new
one (every running monitor of the line notices its reset token within a second and starts its
window and reference anew; a monitor still collecting takes a reference another worker of the
line stored). The alert rules (deploy/prometheus/alerts.yml) fire on the
exported series.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass

import cv2
import numpy as np
import redis

from core.metrics import (
    DEFECT_SCORE,
    FLAGGED_TILE_SHARE,
    FRAME_CONTRAST,
    FRAME_DRIFT,
    FRAME_SCORE,
    FRAME_SHARPNESS,
)
from core.recipe import DriftSpec
from core.result import InspectionResult

log = logging.getLogger(__name__)

GRAY_BINS = 32
GRADIENT_BINS = 16
#: Gradient magnitudes (Sobel, 3x3, on the halved frame) above this fall into the last bin.
GRADIENT_MAX = 256.0


def reference_key(line_id: str) -> str:
    """Redis key of a line's drift reference (JSON: ``n``, ``signature``)."""
    return f"drift:ref:{line_id}"


@dataclass(frozen=True)
class FrameStats:
    """The drift measurements of one frame."""

    brightness: float
    contrast: float
    sharpness: float
    flagged_share: float
    score: float
    signature: np.ndarray


def _gray(image: np.ndarray) -> np.ndarray:
    if image.ndim == 3:
        return cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_RGB2GRAY)
    return image


def signature(gray: np.ndarray) -> np.ndarray:
    """The frame's 48-bin signature (gray and gradient histograms, sums to 1)."""
    hist = cv2.calcHist([gray], [0], None, [GRAY_BINS], [0, 256]).ravel().astype(np.float64)
    gx = cv2.Sobel(gray, cv2.CV_32F, 1, 0, ksize=3)
    gy = cv2.Sobel(gray, cv2.CV_32F, 0, 1, ksize=3)
    mag = np.minimum(cv2.magnitude(gx, gy), GRADIENT_MAX - 1e-3)
    grad = cv2.calcHist([mag], [0], None, [GRADIENT_BINS], [0, GRADIENT_MAX]).ravel()
    grad = grad.astype(np.float64)
    return np.concatenate([hist / (2 * hist.sum()), grad / (2 * grad.sum())])


def flagged_share(mask: np.ndarray | None, tile: int) -> float:
    """Share of the ``tile`` x ``tile`` grid cells of ``mask`` holding a non-zero pixel."""
    if mask is None or mask.size == 0:
        return 0.0
    tile = max(1, int(tile))
    h, w = mask.shape[:2]
    rows, cols = -(-h // tile), -(-w // tile)
    flagged = np.zeros((rows * tile, cols * tile), bool)
    flagged[:h, :w] = mask > 0
    return float(flagged.reshape(rows, tile, cols, tile).any(axis=(1, 3)).mean())


def frame_stats(image: np.ndarray, result: InspectionResult, tile: int = 224) -> FrameStats:
    """Measure one frame (``image``: uint8 gray or RGB) and its inspection ``result``."""
    gray = _gray(image)
    half = cv2.resize(gray, (max(1, gray.shape[1] // 2), max(1, gray.shape[0] // 2)),
                      interpolation=cv2.INTER_AREA)
    mean, std = cv2.meanStdDev(half)
    sharp = float(cv2.Laplacian(half, cv2.CV_32F).var())
    return FrameStats(
        brightness=float(mean[0, 0]),
        contrast=float(std[0, 0]),
        sharpness=sharp,
        flagged_share=flagged_share(result.mask, tile),
        score=max((d.score for d in result.defects), default=0.0),
        signature=signature(cv2.resize(half, (max(1, half.shape[1] // 2),
                                              max(1, half.shape[0] // 2)),
                                       interpolation=cv2.INTER_AREA)),
    )


def hellinger(p: np.ndarray, q: np.ndarray) -> float:
    """Hellinger distance of two distributions (each summing to 1): 0 same .. 1 disjoint."""
    bc = float(np.sum(np.sqrt(np.clip(p, 0, None) * np.clip(q, 0, None))))
    return float(np.sqrt(max(0.0, 1.0 - bc)))


def reset_key(line_id: str) -> str:
    """Redis key of a line's latest reference reset (a random token per reset)."""
    return f"drift:reset:{line_id}"


def reset_reference(r: redis.Redis, line_id: str) -> str:
    """Forget a line's drift reference: the next ``drift.reference`` frames make a new one.

    Deletes the stored reference and writes a new reset token; every running
    :class:`DriftMonitor` of the line sees the token within ``check_s`` and starts its
    reference and window anew. Returns the token."""
    token = uuid.uuid4().hex
    pipe = r.pipeline(transaction=True)
    pipe.delete(reference_key(line_id))
    pipe.set(reset_key(line_id), token)
    pipe.execute()
    return token


@dataclass(frozen=True)
class DriftSnapshot:
    """The rolling statistics after the latest frame."""

    frames: int
    brightness: float
    contrast: float
    sharpness: float
    flagged_share: float
    #: Hellinger distance to the reference; None while the reference is being collected
    distance: float | None


class DriftMonitor:
    """Rolling drift statistics of one line, exported as Prometheus metrics (thread-safe)."""

    def __init__(
        self,
        line_id: str,
        spec: DriftSpec | None = None,
        *,
        tile: int = 224,
        redis_client: redis.Redis | None = None,
        check_s: float = 1.0,
    ) -> None:
        """``tile``: grid cell of the flagged-tile share (the segmenter's tile);
        ``redis_client``: where the reference is kept (None: in this process only);
        ``check_s``: seconds between looks for a reset (:func:`reset_reference`)."""
        self.line = line_id
        self.spec = spec or DriftSpec()
        self.tile = tile
        self.r = redis_client
        self.check_s = check_s
        self._window: deque[FrameStats] = deque(maxlen=self.spec.window)
        self._forget_reference()
        self._lock = threading.Lock()
        self._reset_token = self._read_reset_token()
        self._checked = time.monotonic()
        self._load_reference()

    @property
    def reference(self) -> np.ndarray | None:
        """The reference signature (None while it is being collected)."""
        return self._reference

    def _load_reference(self) -> None:
        if self.r is None:
            return
        try:
            raw = self.r.get(reference_key(self.line))
        except redis.RedisError as exc:
            log.warning("drift reference of %s not readable (%s)", self.line, exc)
            return
        if raw:
            data = json.loads(raw)
            self._reference = np.asarray(data["signature"], dtype=np.float64)
            self._ref_n = int(data["n"])

    def _forget_reference(self) -> None:
        """No reference yet: the next ``spec.reference`` frames make one."""
        self._ref_sum = np.zeros(GRAY_BINS + GRADIENT_BINS)
        self._ref_n = 0
        self._reference: np.ndarray | None = None

    def _read_reset_token(self) -> bytes | None:
        if self.r is None:
            return None
        try:
            return self.r.get(reset_key(self.line))
        except redis.RedisError as exc:
            log.warning("drift reset token of %s not readable (%s)", self.line, exc)
            return None

    def _follow_line(self) -> None:
        """Every ``check_s``: start anew (reference and window) when the line's reset token
        changed; while collecting, take the reference another worker of the line stored."""
        now = time.monotonic()
        if self.r is None or now - self._checked < self.check_s:
            return
        self._checked = now
        token = self._read_reset_token()
        if token is not None and token != self._reset_token:
            self._reset_token = token
            self._window.clear()
            self._forget_reference()
            try:  # no distance until the new reference is complete: its alert resolves
                FRAME_DRIFT.remove(self.line)
            except KeyError:
                pass
            log.warning("drift reference of %s was reset: the next %d frames make a new one",
                        self.line, self.spec.reference)
        elif self._reference is None:
            self._load_reference()

    def _store_reference(self) -> None:
        if self.r is None or self._reference is None:
            return
        data = {"n": self._ref_n, "signature": self._reference.tolist()}
        try:  # NX: a reference another worker of the line stored first wins
            if not self.r.set(reference_key(self.line), json.dumps(data), nx=True):
                self._load_reference()
        except redis.RedisError as exc:
            log.warning("drift reference of %s not stored (%s)", self.line, exc)

    def observe(self, image: np.ndarray, result: InspectionResult) -> DriftSnapshot:
        """Add one inspected frame; update and return the rolling statistics."""
        stats = frame_stats(image, result, self.tile)
        FRAME_SCORE.labels(line=self.line).observe(stats.score)
        for d in result.defects:
            DEFECT_SCORE.labels(line=self.line, model=d.model).observe(d.score)
        with self._lock:
            self._follow_line()
            self._window.append(stats)
            if self._reference is None:
                self._ref_sum += stats.signature
                self._ref_n += 1
                if self._ref_n >= self.spec.reference:
                    self._reference = self._ref_sum / self._ref_n
                    self._store_reference()
            snap = self._snapshot()
        FRAME_CONTRAST.labels(line=self.line).set(snap.contrast)
        FRAME_SHARPNESS.labels(line=self.line).set(snap.sharpness)
        FLAGGED_TILE_SHARE.labels(line=self.line).set(snap.flagged_share)
        if snap.distance is not None:
            FRAME_DRIFT.labels(line=self.line).set(snap.distance)
        return snap

    def _snapshot(self) -> DriftSnapshot:
        w = list(self._window)
        mean_sig = np.mean([s.signature for s in w], axis=0)
        return DriftSnapshot(
            frames=len(w),
            brightness=float(np.mean([s.brightness for s in w])),
            contrast=float(np.mean([s.contrast for s in w])),
            sharpness=float(np.mean([s.sharpness for s in w])),
            flagged_share=float(np.mean([s.flagged_share for s in w])),
            distance=None if self._reference is None else hellinger(mean_sig, self._reference),
        )
