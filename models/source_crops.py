"""Extra training tiles cut at random places from the frames a tile data set was cut from.

``aluminum-tiles`` holds six fixed 224 x 224 tiles per ``aluminum`` frame (file name
``<stem>_<y>_<x>.png``), labelled by the README's rule: the defect class with the most mask
pixels in the tile if it has >= 32 px, else ``defect_free``. With 1512 training tiles a
from-scratch network sees each defect at one position only, and the rarest class (pinhole,
~25 training tiles) almost never. :func:`source_crops` cuts ``per_frame`` more tiles from
every *training* frame (frames whose tiles are all on the training side, so nothing of a
validation frame leaks in) and labels them with the same rule: half at uniform random
positions, half centred (with jitter) on a random defect pixel, so rare small defects are
seen at many positions.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from core.preprocess import resize_to, to_channels
from models.data import Sample

#: the README's labelling rule for aluminium tiles
MIN_DEFECT_PX = 32


def tile_label(mask: np.ndarray, mask_classes: Sequence[str], background: str) -> str:
    """Class name of a tile's mask by the majority-of->=32-px rule (``background`` else)."""
    counts = np.bincount(mask.ravel(), minlength=len(mask_classes))
    counts[0] = 0
    best = int(counts.argmax())
    return mask_classes[best] if counts[best] >= MIN_DEFECT_PX else background


def _frames_of(train: Sequence[Sample]) -> list[str]:
    """Stems of the source frames whose every tile is in ``train`` (6 tiles per frame)."""
    stems: dict[str, int] = {}
    for s in train:
        stem = s.path.stem.split("_")[0]
        stems[stem] = stems.get(stem, 0) + 1
    per_frame = max(stems.values(), default=0)
    return sorted(stem for stem, n in stems.items() if n == per_frame)


def source_crops(
    train: Sequence[Sample],
    source: Path,
    classes: Sequence[str],
    tile: int,
    input_size: Sequence[int],
    per_frame: int,
    seed: int = 0,
    background: str = "defect_free",
    channels: int = 1,
) -> tuple[np.ndarray, np.ndarray]:
    """``(images uint8 N,H,W,C, labels)`` of random tiles from the training frames.

    ``classes`` are the tile data set's class names (labels index into them); the source's
    ``classes.json`` names its mask values.
    """
    mask_classes = json.loads((source / "classes.json").read_text())
    rng = np.random.default_rng(seed)
    h_in, w_in = int(input_size[0]), int(input_size[1])
    imgs, labels = [], []
    for stem in tqdm(_frames_of(train), desc="source crops", leave=False):
        frame = cv2.imread(str(source / "images" / f"{stem}.jpg"), cv2.IMREAD_GRAYSCALE)
        mask = cv2.imread(str(source / "masks" / f"{stem}.png"), cv2.IMREAD_GRAYSCALE)
        if frame is None or mask is None or frame.shape != mask.shape:
            continue
        fh, fw = frame.shape
        defect_px = np.argwhere(mask > 0)
        for k in range(per_frame):
            if k % 2 and len(defect_px):
                cy, cx = defect_px[rng.integers(len(defect_px))] + rng.integers(-80, 81, 2)
                y, x = int(cy) - tile // 2, int(cx) - tile // 2
            else:
                y, x = int(rng.integers(0, fh - tile + 1)), int(rng.integers(0, fw - tile + 1))
            y, x = min(max(y, 0), fh - tile), min(max(x, 0), fw - tile)
            crop = frame[y : y + tile, x : x + tile]
            name = tile_label(mask[y : y + tile, x : x + tile], mask_classes, background)
            img = to_channels(resize_to(crop, input_size), channels)
            imgs.append(img if img.ndim == 3 else img[..., None])
            labels.append(list(classes).index(name))
    if not imgs:
        return np.zeros((0, h_in, w_in, channels), np.uint8), np.zeros(0, np.int64)
    return np.stack(imgs), np.asarray(labels, np.int64)
