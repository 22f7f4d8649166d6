"""Segmenters trained and scored on tiles, cut exactly as the service's tiler cuts frames.

A segmenter for large frames (KolektorSDD: 500 x 1247) cannot see a 3-px crack once the whole
frame is shrunk to its input size. With ``--tile T`` training cuts every image (and its mask)
into ``T`` x ``T`` frame-pixel tiles with :func:`inference.tiler.make_tiles` (border-aligned
last tile, reflection padding for areas smaller than a tile), resizes each tile to the model's
input size, and trains on the tiles; the recipe then runs the model with ``tile: T``.
``lineinspect evaluate`` reads the ``lineinspect.tile`` metadata and scores whole images by
the same tiling (:func:`predict_tiled`), so the card's numbers are per image, not per tile.

Defects cover a tiny share of such tiles; :func:`oversample_positive` repeats tiles that hold
any foreground pixel until they make up a chosen fraction of the training tiles.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import cv2
import numpy as np

from core.preprocess import resize_to
from inference.tiler import make_tiles


def cut_tiles(
    image: np.ndarray, mask: np.ndarray, tile: int, input_size: Sequence[int]
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Tiles of ``image`` and ``mask`` (same HxW) resized to ``input_size`` (mask: nearest)."""
    if image.shape[:2] != mask.shape[:2]:
        raise ValueError(f"image {image.shape[:2]} and mask {mask.shape[:2]} differ in size")
    h, w = int(input_size[0]), int(input_size[1])
    imgs = [resize_to(t, input_size) for t in make_tiles(image, tile).arrays]
    masks = [
        cv2.resize(np.ascontiguousarray(m), (w, h), interpolation=cv2.INTER_NEAREST)
        for m in make_tiles(mask, tile).arrays
    ]
    return imgs, masks


def oversample_positive(
    masks: np.ndarray, fraction: float, class_id: int | None = None
) -> np.ndarray:
    """Indices into ``masks`` (N,H,W) with positive tiles repeated to >= ``fraction`` of all.

    A tile is positive when it holds any foreground pixel, or with ``class_id`` a pixel of
    that class (a rare class such as pinholes, whose tiles are few among the defect tiles).
    ``fraction`` 0 (or no positive tile, or already enough) returns ``arange(N)``.
    """
    if not 0.0 <= fraction < 1.0:
        raise ValueError(f"positive fraction must be in [0, 1), got {fraction}")
    idx = np.arange(len(masks))
    flat = masks.reshape(len(masks), -1)
    pos = idx[(flat == class_id).any(1) if class_id is not None else flat.max(1) > 0]
    neg = len(masks) - len(pos)
    if fraction == 0.0 or len(pos) == 0 or len(pos) >= fraction * len(masks):
        return idx
    copies = math.ceil(fraction * neg / ((1.0 - fraction) * len(pos)))
    return np.concatenate([idx, np.repeat(pos, copies - 1)])


def predict_tiled(
    predict: Callable[[list[np.ndarray]], np.ndarray], image: np.ndarray, tile: int
) -> np.ndarray:
    """Class map (HxW uint8) of ``image`` from per-tile logits, stitched like the service.

    ``predict`` maps a list of uint8 tiles to ``(N, K, h, w)`` logits at the model's input
    size. Each tile's softmax is resized to its tile, cropped to the real pixels and
    averaged where border-aligned tiles overlap; the class map is the argmax.
    """
    ts = make_tiles(image, tile)
    logits = predict(ts.arrays)
    k = logits.shape[1]
    acc = np.zeros((k, *image.shape[:2]), np.float32)
    hits = np.zeros(image.shape[:2], np.float32)
    for (x, y, w, h), lg in zip(ts.rects, logits, strict=True):
        e = np.exp(lg - lg.max(0, keepdims=True))
        probs = e / e.sum(0, keepdims=True)
        size = (tile, tile) if tile else (w, h)  # padded tiles: real pixels at the top-left
        up = np.stack([cv2.resize(p, size, interpolation=cv2.INTER_LINEAR) for p in probs])
        acc[:, y : y + h, x : x + w] += up[:, :h, :w]
        hits[y : y + h, x : x + w] += 1.0
    return (acc / np.maximum(hits, 1.0)).argmax(0).astype(np.uint8)


#: A tile counts as defective from this many defect pixels: the aluminium tile set's own rule
#: and the ``min_area`` of the aluminum-profile segmenter (one rule for every segmenter, so
#: that the rates of two files of one model compare; the recipes' own ``min_area`` differ).
TILE_DEFECT_PX = 32


def tile_verdicts(
    truth: np.ndarray, pred: np.ndarray, tile: int, min_px: int = TILE_DEFECT_PX
) -> np.ndarray:
    """Tile-level verdict counts of a class map ``pred`` against the label map ``truth``.

    The tiles are those the service cuts (:func:`inference.tiler.make_tiles`; ``tile`` 0 is
    the whole image). A tile is defective when it holds at least ``min_px`` pixels of a
    defect class (label > 0). Returns ``[[clean called clean, clean flagged], [defect
    missed, defect found]]``: the false stops and misses a line would see, which mIoU hides
    (a few false-alarm blobs on clean tiles barely move it).
    """
    counts = np.zeros((2, 2), np.int64)
    for x, y, w, h in make_tiles(truth, tile).rects:
        is_defect = int(np.count_nonzero(truth[y : y + h, x : x + w]) >= min_px)
        flagged = int(np.count_nonzero(pred[y : y + h, x : x + w]) >= min_px)
        counts[is_defect, flagged] += 1
    return counts


def tile_error_rates(counts: np.ndarray) -> dict[str, float | None]:
    """False-alarm rate (clean tiles flagged) and miss rate (defect tiles not flagged) of
    :func:`tile_verdicts` counts; ``None`` where there is no tile of that kind."""
    clean, defect = int(counts[0].sum()), int(counts[1].sum())
    return {
        "false_alarm_rate": float(counts[0, 1] / clean) if clean else None,
        "miss_rate": float(counts[1, 0] / defect) if defect else None,
    }
