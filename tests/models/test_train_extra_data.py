"""``lineinspect train segment ... --extra-data <export> --init-from <checkpoint>`` (issue 21.5)
on a tiny data set (8 frames of 64x64, one epoch, one thread): QA's reviewed frames join the
training split only, the validation split is the data set's own; fine-tuning starts from the
first run's weights; a checkpoint of other classes is refused.

Runs torch: on the shared machine only through /work/notes/pause_training.sh (see the brief)."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from models.data import index_dataset
from models.train import TrainConfig, load_split, train
from tests.models.review_export_helpers import write_review_export


def _tiny_set(root: Path, classes: list[str]) -> Path:
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    rng = np.random.default_rng(3)
    for k in range(8):
        image = (150 + rng.integers(0, 30, (64, 64))).astype(np.uint8)
        mask = np.zeros((64, 64), np.uint8)
        x, y = 4 + 6 * k, 8 + 4 * k
        image[y : y + 12, x : x + 16] = 40
        mask[y : y + 12, x : x + 16] = 1 + k % (len(classes) - 1)
        cv2.imwrite(str(root / "images" / f"f{k}.png"), image)
        cv2.imwrite(str(root / "masks" / f"f{k}.png"), mask)
    (root / "classes.json").write_text(json.dumps(classes))
    return root


def _cfg(data: Path, out: Path, **kw) -> TrainConfig:  # noqa: ANN003 - TrainConfig fields
    return TrainConfig(task="segment", arch="sme_deeplabv3plus", data=str(data), out=str(out),
                       variant="small", epochs=1, batch_size=4, input_size=[64, 64], threads=1,
                       select_metric="miou", augment=False, **kw)


def test_extra_data_trains_only_and_init_from(tmp_path: Path) -> None:
    torch.set_num_threads(1)
    data = _tiny_set(tmp_path / "set", ["background", "pit", "scratch"])
    export, _ = write_review_export(tmp_path / "log")
    cfg = _cfg(data, tmp_path / "run1", extra_data=str(export))
    train_s, val_s = load_split(cfg, index_dataset(data))
    first = train(cfg)
    split = first["split"]
    # the 3 usable reviews are extra training examples; validation is the set's own split
    assert split == {"train": len(train_s), "val": len(val_s), "extra_items": 3,
                     "extra_examples": 3, "extra_skipped": 2}
    assert first["config"]["extra_data"] == str(export)
    best = tmp_path / "run1" / "best.pt"
    # fine-tune: the second run starts from the first one's EMA weights and normalisation
    second = train(_cfg(data, tmp_path / "run2", init_from=str(best), lr=1e-9,
                        warmup_epochs=0.0))
    start = torch.load(best, map_location="cpu", weights_only=False)
    after = torch.load(tmp_path / "run2" / "best.pt", map_location="cpu", weights_only=False)
    assert after["mean"] == start["mean"] and after["std"] == start["std"]
    name = next(k for k, v in start["ema"].items() if v.dtype.is_floating_point and v.dim() == 4)
    # lr 1e-9: the weights are where the first run left them, not a fresh initialisation
    assert torch.allclose(after["model"][name], start["ema"][name], atol=1e-5)
    assert second["split"]["val"] == len(val_s)
    # a checkpoint of other classes is refused before any training
    other = _tiny_set(tmp_path / "other", ["background", "crack"])
    with pytest.raises(ValueError, match="checkpoint of classes"):
        train(_cfg(other, tmp_path / "run3", init_from=str(best)))
    assert not (tmp_path / "run3" / "last.pt").exists()
