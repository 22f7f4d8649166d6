"""Model cards rendered from export facts: the training command and loss as they ran."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from models.card import FROM_SCRATCH, PRETRAINED, render_card

ZOO = Path(__file__).resolve().parents[2] / "models" / "zoo"


@pytest.fixture()
def facts() -> dict:
    return json.loads((ZOO / "sme_deeplabv3plus.json").read_text())


def _line(card: str, prefix: str) -> str:
    (line,) = [x for x in card.splitlines() if x.startswith(prefix)]
    return line


def test_command_carries_threads_and_time_cap_only_when_set(facts: dict) -> None:
    facts["config"].update(threads=2, max_minutes=118.0)
    assert _line(render_card(facts), "- command:").endswith("--threads 2 --max-minutes 118`")
    facts["config"].update(threads=0, max_minutes=0.0)
    command = _line(render_card(facts), "- command:")
    assert "--threads" not in command and "--max-minutes" not in command


def test_loss_text_follows_the_task(facts: dict) -> None:
    segment = _line(render_card(facts), "- hyper-parameters:")
    assert "soft Dice" in segment and "label smoothing 0.1" not in segment
    classify = json.loads((ZOO / "mm.json").read_text())
    hyper = _line(render_card(classify), "- hyper-parameters:")
    assert "label smoothing 0.1" in hyper and "Dice" not in hyper


@pytest.mark.parametrize("given", [[], ["a run-specific limit"], ["x", FROM_SCRATCH]])
def test_from_scratch_limit_listed_exactly_once(facts: dict, given: list[str]) -> None:
    facts["config"]["variant"] = "small"
    facts["limits"] = given
    card = render_card(facts)
    assert card.count(FROM_SCRATCH) == 1
    assert all(f"- {limit}" in card for limit in given)


def test_pretrained_start_replaces_the_from_scratch_limit(facts: dict) -> None:
    facts["config"]["variant"] = "lite0"
    card = render_card(facts)
    assert card.count(PRETRAINED) == 1 and FROM_SCRATCH not in card


def test_pretrained_start_names_the_frozen_stages(facts: dict) -> None:
    facts["config"]["variant"] = "lite0"
    assert "), trained end to end\n" in render_card(facts)
    facts["config"]["freeze_stages"] = 2
    card = render_card(facts)
    assert "trained end to end except the encoder's stem and first 2 stages" in card
    assert "--freeze-stages 2" in _line(card, "- command:")


def test_card_names_the_class_weights_the_run_used(facts: dict) -> None:
    facts["config"].pop("class_weight_power", None)  # released before the option: 0.5
    card = render_card(facts)
    assert "class-balanced loss weights (inverse frequency^0.5)" in card
    assert "--class-weight-power" not in _line(card, "- command:")
    facts["config"]["class_weight_power"] = 0.0
    card = render_card(facts)
    assert "equal loss weights for every class" in _line(card, "- hyper-parameters:")
    assert "--class-weight-power 0" in _line(card, "- command:")


def test_card_command_names_the_training_crop(facts: dict) -> None:
    facts["config"].pop("train_crop", None)
    assert "--train-crop" not in _line(render_card(facts), "- command:")
    facts["config"]["train_crop"] = 200
    facts["config"]["input_size"] = [288, 288]
    card = render_card(facts)
    assert "--train-crop 200" in _line(card, "- command:")
    assert "random 200x200 crops of the 288x288 input" in _line(card, "- hyper-parameters:")
