"""Random training tiles from the source frames of a tile data set (models.source_crops)."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np

from models.data import Sample
from models.source_crops import source_crops, tile_label

CLASSES = ["crease", "defect_free", "pinhole"]
MASK_CLASSES = ["background", "crease", "pinhole"]


def test_tile_label_follows_the_majority_of_32_px_rule() -> None:
    mask = np.zeros((64, 64), np.uint8)
    assert tile_label(mask, MASK_CLASSES, "defect_free") == "defect_free"
    mask[0, :31] = 2  # 31 pinhole px: below the rule's 32
    assert tile_label(mask, MASK_CLASSES, "defect_free") == "defect_free"
    mask[1, :40] = 1  # 40 crease px beat 31 pinhole px
    assert tile_label(mask, MASK_CLASSES, "defect_free") == "crease"


def _source(root: Path, stems: list[str]) -> list[Sample]:
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    (root / "classes.json").write_text(json.dumps(MASK_CLASSES))
    samples = []
    for i, stem in enumerate(stems):
        frame = np.full((120, 160), 40, np.uint8)
        mask = np.zeros_like(frame)
        frame[50:56, 100:106] = 250 if i == 0 else 40  # a 36-px pinhole in the first frame
        mask[50:56, 100:106] = 2 if i == 0 else 0
        cv2.imwrite(str(root / "images" / f"{stem}.jpg"), frame)
        cv2.imwrite(str(root / "masks" / f"{stem}.png"), mask)
        tiles = [f"/tiles/x/{stem}_{y}_{x}.png" for y in (0, 56) for x in (0, 96)]
        samples += [Sample(Path(t), 1) for t in tiles]
    return samples


def test_crops_come_from_whole_training_frames_and_find_the_rare_defect(tmp_path: Path) -> None:
    train = _source(tmp_path / "src", ["7", "8"])
    train = train[:-1]  # frame 8 lost a tile to validation: it must not be cut from
    x, y = source_crops(train, tmp_path / "src", CLASSES, 64, [32, 32], per_frame=20)
    assert x.shape == (20, 32, 32, 1)  # frame 7 only
    pinhole = CLASSES.index("pinhole")
    assert (y == pinhole).sum() >= 5  # defect-centred crops keep finding the 36-px pinhole
    assert set(y.tolist()) <= {pinhole, CLASSES.index("defect_free")}
    bright = x[y == pinhole].reshape((y == pinhole).sum(), -1).max(1)
    assert (bright > 150).all()  # every crop labelled pinhole shows it
