"""Model outputs -> defects (frame pixels) and the frame-level class-indexed mask.

Classification (tile logits ``[N, C]``)
    softmax -> per-class score map over the frame, **max over overlapping tiles**; for each
    defect class (not in ``ok_classes``) the pixels with score >= ``threshold_for(cls)`` form
    8-connected regions; each region becomes a :class:`Defect` with ``score`` = max score in the
    region, ``bbox``/``area_px`` in frame pixels, dropped when ``area_px < min_area_for(cls)``.
    The score map is piecewise constant on the grid formed by all tile edges, so it is computed
    exactly on that cell grid (:class:`ScoreGrid`) instead of per pixel;
    :func:`classification_score_map` renders it per pixel (reference / debugging).

Segmentation (tile logits ``[N, C, h, w]``)
    softmax per tile -> nearest resize back to tile size (docs/CONTRACT.md) -> crop padding ->
    stitched into a frame-level probability map, **averaged where tiles overlap**
    (:class:`SegmentationStitcher`) -> argmax class map; per defect class 8-connected components
    (``cv2.connectedComponentsWithStats``) with ``area >= min_area_for(cls)`` and **mean**
    probability of that class over the component >= ``threshold_for(cls)`` become defects with
    ``score`` = that mean probability.

Gated classification (``ModelSpec.gate``, :func:`gated_classification_defects`)
    the classifier names each defect of its gate model: per gate defect, the class scores are
    averaged over the tiles holding its pixels (weighted by those pixels), best defect class if
    >= its threshold; the defect keeps the gate defect's box, area and pixels.

Frame mask (:func:`paint_mask`)
    uint8, frame-sized, values index :func:`unified_classes` (0 = background, then every defect
    class of every model in recipe order, deduplicated). Only accepted defects are painted, in
    this precedence: segmenters first (recipe order; their pixel classes win where they found
    a defect), then classifier regions (highest score first) only where the mask is still
    background, then the screen's own defect (if reported) likewise.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from core.recipe import ModelSpec
from core.result import Defect
from inference.tiler import Rect

#: Classes that are never defects, whatever a recipe's ``ok_classes`` says.
ALWAYS_OK = frozenset({"background", "ok"})


def softmax(logits: np.ndarray, axis: int = 1) -> np.ndarray:
    """Numerically stable softmax (float32)."""
    z = np.asarray(logits, dtype=np.float32)
    z = z - z.max(axis=axis, keepdims=True)
    np.exp(z, out=z)
    z /= z.sum(axis=axis, keepdims=True)
    return z


def defect_classes(classes: Sequence[str], spec: ModelSpec) -> list[str]:
    """The model's classes that count as defects (not in ``ok_classes``, not background/ok)."""
    ok = set(spec.ok_classes) | ALWAYS_OK
    return [c for c in classes if c not in ok]


def unified_classes(models: Iterable[tuple[Sequence[str], ModelSpec]]) -> list[str]:
    """``background`` then every defect class of every model in order, deduplicated."""
    out = ["background"]
    for classes, spec in models:
        for c in defect_classes(classes, spec):
            if c not in out:
                out.append(c)
    if len(out) > 256:
        raise ValueError(f"{len(out)} mask classes do not fit an 8-bit mask")
    return out


@dataclass(slots=True)
class Finding:
    """An accepted defect plus the pixels it covers (for painting the mask)."""

    defect: Defect
    #: bool mask of the defect's pixels inside ``defect.bbox``
    region: np.ndarray


# -- classification -----------------------------------------------------------------------
@dataclass(slots=True)
class ScoreGrid:
    """Per-class max-over-tiles scores on the cell grid formed by all tile edges."""

    #: cell boundaries in frame x (``nx + 1``) and y (``ny + 1``)
    xs: np.ndarray
    ys: np.ndarray
    #: ``(C, ny, nx)`` max probability per cell (0 where no tile covers the cell)
    scores: np.ndarray

    def cell_areas(self) -> np.ndarray:
        """``(ny, nx)`` pixel area of each cell."""
        return np.outer(np.diff(self.ys), np.diff(self.xs))

    def expand(self, cells: np.ndarray) -> np.ndarray:
        """Per-cell array ``(ny, nx)`` -> per-pixel array over the grid's extent."""
        return np.repeat(np.repeat(cells, np.diff(self.ys), axis=0), np.diff(self.xs), axis=1)


def classification_grid(rects: np.ndarray, probs: np.ndarray) -> ScoreGrid:
    """Max-over-overlapping-tiles score grid from tile rects ``(N, 4)`` and probs ``(N, C)``."""
    rects = np.asarray(rects, dtype=np.int64).reshape(-1, 4)
    probs = np.asarray(probs, dtype=np.float32)
    if len(rects) != len(probs):
        raise ValueError(f"{len(rects)} rects but {len(probs)} score rows")
    if len(rects) == 0:
        return ScoreGrid(np.zeros(1, np.int64), np.zeros(1, np.int64), np.zeros((0, 0, 0)))
    x0, y0 = rects[:, 0], rects[:, 1]
    x1, y1 = x0 + rects[:, 2], y0 + rects[:, 3]
    xs = np.unique(np.concatenate([x0, x1]))
    ys = np.unique(np.concatenate([y0, y1]))
    ix0, ix1 = np.searchsorted(xs, x0), np.searchsorted(xs, x1)
    iy0, iy1 = np.searchsorted(ys, y0), np.searchsorted(ys, y1)
    scores = np.zeros((probs.shape[1], len(ys) - 1, len(xs) - 1), dtype=np.float32)
    for i in range(len(rects)):
        sub = scores[:, iy0[i] : iy1[i], ix0[i] : ix1[i]]
        np.maximum(sub, probs[i][:, None, None], out=sub)
    return ScoreGrid(xs=xs, ys=ys, scores=scores)


def classification_score_map(
    rects: np.ndarray, probs: np.ndarray, height: int, width: int
) -> np.ndarray:
    """Per-pixel ``(C, H, W)`` max-over-tiles score map of a frame (reference implementation)."""
    probs = np.asarray(probs, dtype=np.float32)
    out = np.zeros((probs.shape[1], height, width), dtype=np.float32)
    for (x, y, w, h), p in zip(np.asarray(rects).reshape(-1, 4), probs, strict=True):
        sub = out[:, y : y + h, x : x + w]
        np.maximum(sub, p[:, None, None], out=sub)
    return out


def classification_defects(
    rects: np.ndarray,
    logits: np.ndarray,
    classes: Sequence[str],
    spec: ModelSpec,
    model_name: str | None = None,
    *,
    probabilities: bool = False,
) -> list[Finding]:
    """Defects of one classifier over its tiles (see module docstring).

    ``logits`` ``(N, C)`` are softmaxed unless ``probabilities`` is True.
    """
    if len(rects) == 0:
        return []
    probs = np.asarray(logits, np.float32) if probabilities else softmax(logits, axis=1)
    grid = classification_grid(rects, probs)
    areas = grid.cell_areas().astype(np.float64)
    name = model_name or spec.name
    found: list[Finding] = []
    for c in defect_classes(classes, spec):
        k = classes.index(c)
        cls_scores = grid.scores[k]
        binary = (cls_scores >= spec.threshold_for(c)).astype(np.uint8)
        if not binary.any():
            continue
        n, labels, stats, _ = cv2.connectedComponentsWithStats(binary, connectivity=8)
        area_px = np.bincount(labels.ravel(), weights=areas.ravel(), minlength=n)
        for i in range(1, n):
            if area_px[i] < spec.min_area_for(c):
                continue
            cx, cy = stats[i, cv2.CC_STAT_LEFT], stats[i, cv2.CC_STAT_TOP]
            cw, ch = stats[i, cv2.CC_STAT_WIDTH], stats[i, cv2.CC_STAT_HEIGHT]
            comp = labels[cy : cy + ch, cx : cx + cw] == i
            score = float(cls_scores[cy : cy + ch, cx : cx + cw][comp].max())
            x, y = int(grid.xs[cx]), int(grid.ys[cy])
            w, h = int(grid.xs[cx + cw]) - x, int(grid.ys[cy + ch]) - y
            region = np.repeat(
                np.repeat(comp, np.diff(grid.ys[cy : cy + ch + 1]), axis=0),
                np.diff(grid.xs[cx : cx + cw + 1]),
                axis=1,
            )
            found.append(
                Finding(
                    Defect(
                        cls=c, score=score, bbox=(x, y, w, h), area_px=int(area_px[i]), model=name
                    ),
                    region,
                )
            )
    found.sort(key=lambda f: -f.defect.score)
    return found


# -- segmentation -------------------------------------------------------------------------
class SegmentationStitcher:
    """Stitch per-tile class probabilities into one probability map over an area.

    Tiles are added with their frame rect and the size of the tile array the model saw
    (larger than the rect for reflection-padded tiles; the padding is cropped away).
    Overlapping tiles are averaged.
    """

    def __init__(
        self,
        area: Rect,
        num_classes: int,
        buffers: tuple[np.ndarray, np.ndarray] | None = None,
    ) -> None:
        """``area`` ``(x, y, w, h)`` in frame pixels; ``num_classes`` = model output channels;
        ``buffers`` = reusable ``(sums float32 (C, h, w), counts uint16 (h, w))`` arrays from a
        previous frame (zeroed here; saves first-touch page faults on every frame)."""
        self.area = area
        _, _, w, h = area
        if (
            buffers is not None
            and buffers[0].shape == (num_classes, h, w)
            and buffers[0].dtype == np.float32
            and buffers[1].shape == (h, w)
            and buffers[1].dtype == np.uint16
        ):
            self.sums, self.counts = buffers
            self.sums.fill(0.0)
            self.counts.fill(0)
        else:
            self.sums = np.zeros((num_classes, h, w), dtype=np.float32)
            self.counts = np.zeros((h, w), dtype=np.uint16)

    @property
    def buffers(self) -> tuple[np.ndarray, np.ndarray]:
        """The accumulation arrays, to pass to the next frame's stitcher."""
        return self.sums, self.counts

    def add(
        self,
        rects: np.ndarray,
        logits: np.ndarray,
        tile_shapes: Sequence[tuple[int, int]],
        *,
        probabilities: bool = False,
    ) -> None:
        """Add a chunk of tiles: frame ``rects`` ``(n, 4)``, ``logits`` ``(n, C, h_in, w_in)``,
        ``tile_shapes`` = ``(H, W)`` of each tile array before the model's resize."""
        probs = np.asarray(logits, np.float32) if probabilities else softmax(logits, axis=1)
        ax, ay = self.area[0], self.area[1]
        for (x, y, w, h), p, (th, tw) in zip(rects, probs, tile_shapes, strict=True):
            _, h_in, w_in = p.shape
            ys, xs = slice(y - ay, y - ay + h), slice(x - ax, x - ax + w)
            sub = self.sums[:, ys, xs]
            if (h_in, w_in) == (th, tw) == (h, w):
                sub += p
            else:
                # nearest resize back to the tile size (docs/CONTRACT.md), then keep only the
                # real (unpadded) pixels
                for k in range(p.shape[0]):
                    up = cv2.resize(p[k], (tw, th), interpolation=cv2.INTER_NEAREST)
                    sub[k] += up[:h, :w]
            self.counts[ys, xs] += 1

    def finish(self) -> tuple[np.ndarray, np.ndarray | None]:
        """Averaged ``(C, h, w)`` class probabilities over the area (in place: call once) and
        the bool map of pixels some tile covered (None when every pixel was covered)."""
        covered = None if self.counts.min(initial=1) > 0 else self.counts > 0
        if self.counts.max(initial=0) > 1:
            np.divide(
                self.sums,
                self.counts[None].astype(np.float32),
                out=self.sums,
                where=(self.counts > 1)[None],
            )
        return self.sums, covered


def argmax_classes(probs: np.ndarray) -> np.ndarray:
    """``(C, h, w)`` -> uint8 ``(h, w)`` index of the most probable class (first on ties).

    One vectorised pass per class: much faster than ``argmax(axis=0)`` on a C-first array.
    """
    best = probs[0].copy()
    out = np.zeros(best.shape, dtype=np.uint8)
    for k in range(1, probs.shape[0]):
        better = probs[k] > best
        out[better] = k
        np.maximum(best, probs[k], out=best)
    return out


def segmentation_defects(
    probs: np.ndarray,
    area: Rect,
    classes: Sequence[str],
    spec: ModelSpec,
    model_name: str | None = None,
    covered: np.ndarray | None = None,
) -> list[Finding]:
    """Defects from a stitched probability map ``(C, h, w)`` covering frame ``area``.

    ``covered`` (bool ``(h, w)``): pixels some tile saw; the others (tiles skipped by a
    tile-scope screen) count as background. None = all covered.
    """
    name = model_name or spec.name
    ax, ay = area[0], area[1]
    class_map = argmax_classes(probs)
    found: list[Finding] = []
    for c in defect_classes(classes, spec):
        k = classes.index(c)
        hit = class_map == k
        if covered is not None:
            hit &= covered
        rows = np.flatnonzero(hit.any(axis=1))
        if len(rows) == 0:
            continue
        cols = np.flatnonzero(hit.any(axis=0))
        # label only the bounding box of this class's pixels (defects are sparse)
        r0, r1, c0, c1 = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
        binary = hit[r0:r1, c0:c1].view(np.uint8)
        n, labels, stats, _ = cv2.connectedComponentsWithStats(binary, connectivity=8)
        sums = np.bincount(labels.ravel(), weights=probs[k, r0:r1, c0:c1].ravel(), minlength=n)
        min_area, thr = spec.min_area_for(c), spec.threshold_for(c)
        for i in range(1, n):
            area_px = int(stats[i, cv2.CC_STAT_AREA])
            if area_px < min_area or area_px == 0:
                continue
            score = float(sums[i] / area_px)
            if score < thr:
                continue
            x, y = int(stats[i, cv2.CC_STAT_LEFT]), int(stats[i, cv2.CC_STAT_TOP])
            w, h = int(stats[i, cv2.CC_STAT_WIDTH]), int(stats[i, cv2.CC_STAT_HEIGHT])
            found.append(
                Finding(
                    Defect(
                        cls=c,
                        score=score,
                        bbox=(x + c0 + ax, y + r0 + ay, w, h),
                        area_px=area_px,
                        model=name,
                    ),
                    labels[y : y + h, x : x + w] == i,
                )
            )
    found.sort(key=lambda f: -f.defect.score)
    return found


# -- gated classification -----------------------------------------------------------------
def tiles_touching(rects: np.ndarray, findings: Sequence[Finding]) -> np.ndarray:
    """Indices of tile ``rects`` that contain at least one pixel of any of ``findings``."""
    rects = np.asarray(rects, dtype=np.int64).reshape(-1, 4)
    hit = np.zeros(len(rects), dtype=bool)
    for f in findings:
        hit |= _pixels_in(rects, f) > 0
    return np.flatnonzero(hit)


def _pixels_in(rects: np.ndarray, f: Finding) -> np.ndarray:
    """Number of ``f``'s pixels inside each tile rect."""
    gx, gy, gw, gh = f.defect.bbox
    x0 = np.maximum(rects[:, 0], gx)
    y0 = np.maximum(rects[:, 1], gy)
    x1 = np.minimum(rects[:, 0] + rects[:, 2], gx + gw)
    y1 = np.minimum(rects[:, 1] + rects[:, 3], gy + gh)
    out = np.zeros(len(rects), dtype=np.int64)
    for i in np.flatnonzero((x1 > x0) & (y1 > y0)):
        out[i] = np.count_nonzero(f.region[y0[i] - gy : y1[i] - gy, x0[i] - gx : x1[i] - gx])
    return out


def gated_classification_defects(
    rects: np.ndarray,
    logits: np.ndarray,
    classes: Sequence[str],
    spec: ModelSpec,
    gate_findings: Sequence[Finding],
    model_name: str | None = None,
    *,
    probabilities: bool = False,
) -> list[Finding]:
    """A gated classifier names each defect its gate model found (``ModelSpec.gate``).

    For every gate defect, the classifier's per-class scores are the mean of the probabilities
    of the tiles holding pixels of that defect, weighted by how many of its pixels each tile
    holds (a tile that only grazes the defect sees mostly defect-free surface, which a
    defect-only classifier cannot express); the best defect class names it when its score is
    >= ``threshold_for(cls)`` and the gate defect's area >= ``min_area_for(cls)``. The result
    has the gate defect's box, area and pixels, this model's class, score and name.
    """
    rects = np.asarray(rects, dtype=np.int64).reshape(-1, 4)
    if len(rects) == 0:
        return []
    probs = np.asarray(logits, np.float32) if probabilities else softmax(logits, axis=1)
    dcls = defect_classes(classes, spec)
    if not dcls:
        return []
    dk = np.asarray([classes.index(c) for c in dcls])
    name = model_name or spec.name
    found: list[Finding] = []
    for g in gate_findings:
        weights = _pixels_in(rects, g).astype(np.float64)
        if weights.sum() <= 0:
            continue
        scores = (weights[:, None] * probs[:, dk]).sum(axis=0) / weights.sum()
        best = int(np.argmax(scores))
        cls, score = dcls[best], float(scores[best])
        if score < spec.threshold_for(cls) or g.defect.area_px < spec.min_area_for(cls):
            continue
        d = g.defect
        found.append(
            Finding(
                Defect(cls=cls, score=score, bbox=d.bbox, area_px=d.area_px, model=name),
                g.region,
            )
        )
    found.sort(key=lambda f: -f.defect.score)
    return found


# -- frame mask ---------------------------------------------------------------------------
def paint_mask(mask: np.ndarray, findings: Iterable[Finding], mask_classes: Sequence[str]) -> None:
    """Paint ``findings`` into ``mask`` (uint8, frame-sized) where it is still background."""
    index = {c: i for i, c in enumerate(mask_classes)}
    for f in findings:
        x, y, w, h = f.defect.bbox
        sub = mask[y : y + h, x : x + w]
        sub[f.region & (sub == 0)] = index[f.defect.cls]
