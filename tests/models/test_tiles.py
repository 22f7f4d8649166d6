"""Tile training and tiled evaluation of segmenters (models.tiles, --tile in train/evaluate)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from models.tiles import (
    TILE_DEFECT_PX,
    cut_tiles,
    oversample_positive,
    predict_tiled,
    tile_error_rates,
    tile_verdicts,
)
from tests.models.cli_helpers import train_classify_mm


def _frame(h: int = 100, w: int = 300) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    img = rng.integers(20, 60, (h, w), dtype=np.uint8)
    mask = np.zeros((h, w), np.uint8)
    img[70:90, 260:295] = 220  # a bright defect in the bottom-right, border-aligned tile
    mask[70:90, 260:295] = 1
    return img, mask


def test_cut_tiles_follow_the_service_tiler_and_keep_masks_aligned() -> None:
    img, mask = _frame()
    imgs, masks = cut_tiles(img, mask, 64, [32, 32])
    # y starts 0, 36 (border-aligned); x starts 0, 64, 128, 192, 236
    assert len(imgs) == len(masks) == 10
    assert all(t.shape == (32, 32) for t in imgs) and all(m.shape == (32, 32) for m in masks)
    with_defect = [i for i, m in enumerate(masks) if m.any()]
    assert with_defect == [9]  # only the last tile (y 36, x 236) holds the defect
    bright = imgs[9] > 150
    assert (masks[9] == 1).sum() > 100
    assert np.mean(bright != (masks[9] == 1)) < 0.05  # only edge pixels differ (bilinear/nearest)


def test_cut_tiles_rejects_a_mask_of_another_size() -> None:
    img, mask = _frame()
    with pytest.raises(ValueError, match="differ"):
        cut_tiles(img, mask[:50], 64, [32, 32])


def test_oversample_positive_reaches_the_fraction_and_keeps_every_tile() -> None:
    masks = np.zeros((20, 4, 4), np.uint8)
    masks[[3, 11], 1, 1] = 1
    idx = oversample_positive(masks, 0.3)
    assert set(range(20)) <= set(idx.tolist())
    pos = np.isin(idx, [3, 11]).sum()
    assert pos / len(idx) >= 0.3
    assert np.array_equal(oversample_positive(masks, 0.0), np.arange(20))
    with pytest.raises(ValueError):
        oversample_positive(masks, 1.0)


def test_oversample_positive_of_one_class_repeats_only_its_tiles() -> None:
    masks = np.zeros((20, 4, 4), np.uint8)
    masks[[3, 11], 1, 1] = 1  # a common defect class
    masks[5, 2, 2] = 2  # the rare one
    idx = oversample_positive(masks, 0.25, class_id=2)
    assert set(range(20)) <= set(idx.tolist())
    assert (idx == 5).sum() / len(idx) >= 0.25
    assert (idx == 3).sum() == (idx == 11).sum() == 1
    assert np.array_equal(oversample_positive(masks, 0.25, class_id=4), np.arange(20))


def _threshold_model(tiles: list[np.ndarray]) -> np.ndarray:
    """Logits at a 32x32 'input size': class 1 where the tile is bright."""
    small = np.stack([cv2.resize(t, (32, 32), interpolation=cv2.INTER_AREA) for t in tiles])
    z = (small.astype(np.float32) - 128.0) / 10.0
    return np.stack([-z, z], 1)


@pytest.mark.parametrize("tile", [64, 128, 0])
def test_predict_tiled_puts_each_tile_back_where_it_came_from(tile: int) -> None:
    img, mask = _frame()
    pred = predict_tiled(_threshold_model, img, tile)
    assert pred.shape == img.shape
    inter = np.logical_and(pred == 1, mask == 1).sum()
    union = np.logical_or(pred == 1, mask == 1).sum()
    assert inter / union > 0.8


def _ksdd_like(root: Path, n: int = 10) -> None:
    rng = np.random.default_rng(1)
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    rows = ["file,defective"]
    for i in range(n):
        img = rng.integers(20, 60, (96, 160), dtype=np.uint8)
        mask = np.zeros_like(img)
        if i % 2:
            y, x = int(rng.integers(0, 80)), int(rng.integers(0, 140))
            img[y : y + 12, x : x + 16] = 220
            mask[y : y + 12, x : x + 16] = 255
        cv2.imwrite(str(root / "images" / f"img_{i:02d}.jpg"), img)
        cv2.imwrite(str(root / "masks" / f"img_{i:02d}.png"), mask)
        rows.append(f"img_{i:02d}.jpg,{i % 2}")
    (root / "labels.csv").write_text("\n".join(rows) + "\n")


def test_tile_training_exports_its_tile_and_evaluate_scores_whole_images(tmp_path: Path) -> None:
    from core.model_meta import read_props
    from models.card import render_card
    from models.evaluate import evaluate
    from models.export import export_checkpoint
    from models.train import TrainConfig, train

    data = tmp_path / "ksdd"
    _ksdd_like(data)
    cfg = TrainConfig(
        task="segment",
        arch="sme_deeplabv3plus",
        data=str(data),
        out=str(tmp_path / "run"),
        epochs=1,
        batch_size=8,
        input_size=[32, 32],
        tile=64,
        positive_fraction=0.4,
        select_metric="miou",
        threads=1,
    )
    metrics = train(cfg)
    split = metrics["split"]
    # 96 x 160 frames in 64-px tiles: 2 rows x 3 columns per image
    assert split["val_tiles"] == 6 * split["val"]
    assert split["train_tiles"] > 6 * split["train"]  # defect tiles were repeated
    onnx_path = tmp_path / "sme_tiles.onnx"
    facts = export_checkpoint(tmp_path / "run" / "best.pt", onnx_path, data=data)
    assert read_props(onnx_path)["lineinspect.tile"] == "64"
    result = evaluate(onnx_path, data, split="val", seed=0)
    assert result["tile"] == 64
    assert result["miou"] == facts["onnx_val_metrics"]["miou"]
    # INT8 calibration of a tile-trained model feeds it tiles, not whole shrunken frames
    from models.quantize import _Reader

    frames = sorted((data / "images").iterdir())[:2]
    batch = next(iter(_Reader(onnx_path, frames, batch=2).get_next().values()))
    assert batch.shape == (12, 1, 32, 32)  # 2 frames x 6 tiles at the 32-px input
    card = render_card(facts)
    assert "--tile 64 --positive-fraction 0.4" in card and "`tile: 64`" in card
    assert result["images"] == split["val"]
    assert 0.0 <= result["miou"] <= 1.0


def test_cli_refuses_tile_training_for_classifiers(tmp_path: Path) -> None:
    res = train_classify_mm(tmp_path, "--tile", "64")
    assert res.exit_code != 0
    assert "segmentation" in res.output


def test_train_refuses_a_positive_class_the_data_set_lacks(tmp_path: Path) -> None:
    from models.train import TrainConfig, train

    data = tmp_path / "ksdd"
    _ksdd_like(data)
    cfg = TrainConfig(task="segment", arch="sme_deeplabv3plus", data=str(data),
                      out=str(tmp_path / "run"), epochs=1, input_size=[32, 32], tile=64,
                      positive_fraction=0.3, positive_class="pinhole", threads=1)
    with pytest.raises(ValueError, match="'pinhole' is not a defect class"):
        train(cfg)
    assert not (tmp_path / "run").exists()


def test_cli_refuses_a_positive_class_without_a_fraction(tmp_path: Path) -> None:
    res = train_classify_mm(tmp_path, "--positive-class", "pit")
    assert res.exit_code == 2
    assert "--positive-class needs a --positive-fraction" in res.output


def test_tile_verdicts_count_false_stops_and_misses_per_service_tile() -> None:
    truth = np.zeros((448, 448), np.uint8)
    pred = np.zeros_like(truth)
    truth[10:20, 10:20] = 2  # tile (0, 0): a 100-px defect, found
    pred[12:22, 10:20] = 2
    pred[10:20, 300:310] = 1  # tile (224, 0): clean, flagged -> a false stop
    truth[300:310, 10:20] = 3  # tile (0, 224): a defect, only 20 px predicted -> missed
    pred[300:302, 10:20] = 3
    truth[300:331, 300:301] = 1  # tile (224, 224): 31 px is below the rule: clean
    counts = tile_verdicts(truth, pred, 224)
    assert counts.tolist() == [[1, 1], [1, 1]]
    assert tile_error_rates(counts) == {"false_alarm_rate": 0.5, "miss_rate": 0.5}
    truth[331, 300] = 1  # one more pixel: that tile becomes a defect tile, and it is missed
    assert tile_verdicts(truth, pred, 224, TILE_DEFECT_PX).tolist() == [[0, 1], [2, 1]]
    whole = tile_verdicts(truth, pred, 0)  # an untiled segmenter: the image is one tile
    assert whole.tolist() == [[0, 0], [0, 1]]
    assert tile_error_rates(whole) == {"false_alarm_rate": None, "miss_rate": 0.0}
