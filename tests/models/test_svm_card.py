"""The alexnet_svm card's generated sections and the released card against its facts."""

from __future__ import annotations

from pathlib import Path

from models.svm.card import _errors, _size_experiment, render

ZOO = Path(__file__).resolve().parents[2] / "models" / "zoo"


def _size(auc: float, recall: float, wall: float) -> dict:
    at = {"accuracy": 0.98, "recall_defective": recall}
    return {
        "roc_auc_by_views": {"id": {"cv": auc, "val": 1.0}},
        "cv_balanced_accuracy": 0.9,
        "cv_svm_at_0": at,
        "val_svm_at_0": at,
        "svm": {"log2C": 9.27, "log2gamma": -14.85},
        "train_wall_s": wall,
    }


def test_size_table_has_one_row_per_trained_size() -> None:
    decision = {
        "chosen": [512, 208],
        "rule": "higher CV balanced accuracy",
        "experiment": {"512x208": _size(0.994, 0.97, 300.0), "227x227": _size(0.9, 0.7, 90.0)},
    }
    lines = _size_experiment(decision)
    assert "Chosen: 512x208" in lines[1]
    rows = [x for x in lines if x.startswith("| 512x208") or x.startswith("| 227x227")]
    assert len(rows) == 2 and "0.994" in rows[0] and "0.7000" in rows[1]


def test_size_table_is_left_out_for_a_single_size() -> None:
    decision = {"chosen": [512, 208], "rule": "-", "experiment": {"512x208": _size(1, 1, 1)}}
    assert _size_experiment(decision) == [] and _size_experiment(None) == []


def test_errors_name_the_images_or_say_none() -> None:
    errors = {"missed_defective": ["kos12_Part5.jpg"], "false_alarms": []}
    assert _errors(errors) == "; missed: kos12_Part5.jpg; false alarms: none"


def test_released_card_is_its_facts_rendered() -> None:
    """Every number in the released card comes from the committed facts of its run."""
    card = render(
        ZOO, "alexnet_svm.json", "alexnet_svm.notes.json", "../../docs/perf/commutator_cascade.json"
    )
    assert (ZOO / "alexnet_svm.md").read_text() == card
