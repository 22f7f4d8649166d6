"""``lineinspect train --extra-data`` (issue 21.5), the data side (no training): a real
``export-reviews`` folder becomes training examples of the trained set's classes by name;
what cannot be used is skipped with its reason; the CLI refuses a folder that is no export."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from typer.testing import CliRunner

from deploy.cli import app
from models.review_data import MIN_CROP, load_extra, read_manifest
from tests.models.review_export_helpers import write_review_export


@pytest.fixture()
def export(tmp_path: Path) -> tuple[Path, dict[str, int]]:
    return write_review_export(tmp_path)


def _cfg(task: str, tile: int = 0) -> SimpleNamespace:
    """The fields of models.train.TrainConfig that load_extra reads (no torch import)."""
    return SimpleNamespace(task=task, channels=1, tile=tile, input_size=[48, 64])


def test_segment_examples_reindexed_by_class_name(export) -> None:
    folder, ids = export
    classes = ["background", "scratch", "pit"]  # pit is 1 in the export, 2 here
    extra = load_extra(folder, classes, _cfg("segment"))
    assert extra.used == 3 and extra.images.shape == (3, 48, 64, 1)
    assert extra.targets.shape == (3, 48, 64) and extra.targets.dtype == np.uint8
    reasons = {s["inspection_id"]: s["reason"] for s in extra.skipped}
    assert reasons == {ids["crack"]: "class not in the training set: crack",
                       ids["undetermined"]: "undetermined pixels (review left the class open)"}
    labelled = [t for t in extra.targets if t.any()]
    assert len(labelled) == 1 and set(np.unique(labelled[0])) == {0, 2}
    assert extra.summary() == {"extra_items": 3, "extra_examples": 3, "extra_skipped": 2}


def test_segment_tiles_like_the_training_set(export) -> None:
    folder, _ = export
    extra = load_extra(folder, ["background", "pit"], _cfg("segment", tile=48))
    # every usable 96x128 frame gives the tiler's 48-px tiles (2 rows x 3 columns)
    assert extra.used == 3 and len(extra.images) == 3 * 6
    assert extra.images.shape[1:] == (48, 64, 1)


def test_classify_crops_the_labelled_boxes(export) -> None:
    folder, ids = export
    manifest = read_manifest(folder)
    [pit_item] = [i for i in manifest["items"] if i["inspection_id"] == ids["pit"]]
    extra = load_extra(folder, ["inclusion", "pit", "scratch"], _cfg("classify"))
    assert extra.used == 1 and extra.targets.tolist() == [1]
    assert extra.images.shape == (1, 48, 64, 1)
    # the crop holds the dark defect of the frame (40 gray on a 150..180 background)
    assert extra.images[0].min() < 60 and pit_item["boxes"][0]["bbox"][2] <= MIN_CROP
    reasons = {s["inspection_id"]: s["reason"] for s in extra.skipped}
    assert reasons[ids["crack"]] == "class not in the training set: crack"
    assert reasons[ids["ok"]] == reasons[ids["false_reject"]] == "no labelled defect box to crop"


def test_not_an_export(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no manifest.json"):
        read_manifest(tmp_path)
    (tmp_path / "manifest.json").write_text(json.dumps({"rows": []}))
    with pytest.raises(ValueError, match="not an export-reviews manifest"):
        read_manifest(tmp_path)


def test_cli_refuses_extra_data_without_manifest(tmp_path: Path) -> None:
    data = tmp_path / "set"
    (data / "pit").mkdir(parents=True)
    args = ["train", "classify", "--arch", "mm", "--data", str(data), "--out",
            str(tmp_path / "run")]
    result = CliRunner().invoke(app, [*args, "--extra-data", str(tmp_path / "set")])
    assert result.exit_code == 2 and "no manifest.json" in " ".join(result.output.split())
    result = CliRunner().invoke(app, [*args, "--init-from", str(tmp_path / "none.pt")])
    assert result.exit_code == 2 and "no such checkpoint" in " ".join(result.output.split())
    assert not (tmp_path / "run").exists()
