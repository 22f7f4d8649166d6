"""Extra training data from QA reviews (``lineinspect train ... --extra-data``, issue 21.5).

Reads a folder written by ``lineinspect export-reviews`` (``storage.review_export``:
``images/<id>.png``, ``masks/<id>.png`` indexed by its ``classes.json``, ``manifest.json``
with each item's label and boxes) and turns it into training examples of the data set being
trained, by class **name** (the export's class indices are its own):

* ``segment`` - the frame and its mask, re-indexed to the training classes; the whole frame
  resized to the input size, or cut into tiles with ``--tile`` (as the training set);
* ``classify`` - one crop per labelled defect box (a square around the box, at least
  :data:`MIN_CROP` px, clipped to the frame) labelled with the box's class.

Items that cannot be used are skipped with a reason, never guessed: a class the training set
does not have, a mask with undetermined pixels (255: QA's review left the class open), an OK
frame for a classifier (no box to crop). The examples go to the training split only; the
validation split stays the data set's own, so scores stay comparable with earlier runs.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from core.preprocess import resize_to, to_channels
from models.data import read_gray_or_rgb

#: Mask value of pixels QA's review left undetermined (``storage.review_export.IGNORE``).
IGNORE = 255
#: Smallest crop edge around a defect box (classify), frame pixels.
MIN_CROP = 32


@dataclass
class ExtraData:
    """Training examples from a review export and what was left out."""

    images: np.ndarray
    targets: np.ndarray
    #: export items used
    used: int = 0
    skipped: list[dict[str, Any]] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        """Counts for the run's ``split`` record."""
        return {"extra_items": self.used, "extra_examples": int(len(self.images)),
                "extra_skipped": len(self.skipped)}


def read_manifest(export: Path) -> dict[str, Any]:
    """The export's ``manifest.json``; ValueError when ``export`` is not such a folder."""
    path = Path(export) / "manifest.json"
    if not path.is_file():
        raise ValueError(f"{export}: no manifest.json (write it with lineinspect export-reviews)")
    manifest = json.loads(path.read_text())
    if not isinstance(manifest.get("items"), list) or not isinstance(manifest.get("classes"), list):
        raise ValueError(f"{path}: not an export-reviews manifest (items, classes)")
    return manifest


def _mask_lut(export_classes: list[str], classes: list[str]) -> tuple[np.ndarray, list[str]]:
    """Lookup export index -> training index (IGNORE where unknown) and the unknown names."""
    lut = np.full(256, IGNORE, np.uint8)
    missing = []
    for k, name in enumerate(export_classes[:255]):
        if name in classes:
            lut[k] = classes.index(name)
        elif k == 0:
            lut[k] = 0  # background under any name
        else:
            missing.append(name)
    return lut, missing


def _segment_item(
    export: Path, item: dict[str, Any], lut: np.ndarray, missing: list[str], cfg: Any
) -> tuple[list[np.ndarray], list[np.ndarray], str | None]:
    image = to_channels(read_gray_or_rgb(export / item["image"], cfg.channels), cfg.channels)
    raw = cv2.imread(str(export / item["mask"]), cv2.IMREAD_GRAYSCALE)
    if raw is None:
        return [], [], "mask missing"
    if (raw == IGNORE).any():
        return [], [], "undetermined pixels (review left the class open)"
    mask = lut[raw]
    if (mask == IGNORE).any():
        names = sorted(set(item.get("label_classes", [])) & set(missing)) or missing
        return [], [], f"class not in the training set: {', '.join(names)}"
    if cfg.tile:
        from models.tiles import cut_tiles

        tiles, masks = cut_tiles(image, mask, cfg.tile, cfg.input_size)
        return [t if t.ndim == 3 else t[..., None] for t in tiles], list(masks), None
    img = resize_to(image, cfg.input_size)
    small = cv2.resize(mask, (cfg.input_size[1], cfg.input_size[0]),
                       interpolation=cv2.INTER_NEAREST)
    return [img if img.ndim == 3 else img[..., None]], [small], None


def _box_crops(
    export: Path, item: dict[str, Any], classes: list[str], cfg: Any
) -> tuple[list[np.ndarray], list[int], str | None]:
    boxes = [b for b in item.get("boxes", []) if b.get("class")]
    if not boxes:
        return [], [], "no labelled defect box to crop"
    unknown = sorted({b["class"] for b in boxes} - set(classes))
    if unknown:
        return [], [], f"class not in the training set: {', '.join(unknown)}"
    image = to_channels(read_gray_or_rgb(export / item["image"], cfg.channels), cfg.channels)
    h, w = image.shape[:2]
    crops, labels = [], []
    for b in boxes:
        x, y, bw, bh = (int(v) for v in b["bbox"])
        side = min(max(bw, bh, MIN_CROP), h, w)
        cx, cy = x + bw // 2, y + bh // 2
        x0 = min(max(0, cx - side // 2), w - side)
        y0 = min(max(0, cy - side // 2), h - side)
        crop = resize_to(image[y0 : y0 + side, x0 : x0 + side], cfg.input_size)
        crops.append(crop if crop.ndim == 3 else crop[..., None])
        labels.append(classes.index(b["class"]))
    return crops, labels, None


def load_extra(export: Path, classes: list[str], cfg: Any) -> ExtraData:
    """Training examples of ``cfg.task`` from the review export ``export``, labelled with the
    training set's ``classes`` (``cfg``: :class:`models.train.TrainConfig`)."""
    export = Path(export)
    manifest = read_manifest(export)
    lut, missing = _mask_lut(list(manifest["classes"]), classes)
    images: list[np.ndarray] = []
    targets: list[Any] = []
    out = ExtraData(np.empty((0,)), np.empty((0,)))
    for item in manifest["items"]:
        if cfg.task == "segment":
            xs, ys, why = _segment_item(export, item, lut, missing, cfg)
        else:
            xs, ys, why = _box_crops(export, item, classes, cfg)
        if why is not None:
            out.skipped.append({"inspection_id": item.get("inspection_id"), "reason": why})
            continue
        out.used += 1
        images += xs
        targets += ys
    if images:
        out.images = np.stack(images)
        out.targets = np.stack(targets) if cfg.task == "segment" else np.asarray(targets)
    return out
