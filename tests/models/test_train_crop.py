"""``train --train-crop``: a segmenter trained on random windows of larger input images."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.models.cli_helpers import train_classify_mm

torch = pytest.importorskip("torch")


def test_crops_cut_the_same_window_from_image_and_mask() -> None:
    from models.train import random_crops

    rows = torch.arange(40).view(40, 1).expand(40, 50)
    code = rows * 100 + torch.arange(50)  # every pixel's own (row, column)
    x = code.float().expand(6, 1, 40, 50).clone()
    y = code.expand(6, 40, 50).clone()
    xc, yc = random_crops(x, y, 24)
    assert xc.shape == (6, 1, 24, 24) and yc.shape == (6, 24, 24)
    assert torch.equal(xc[:, 0].long(), yc)
    for window in yc:  # a contiguous window: columns and rows step by one
        assert torch.equal(window[:, 1:] - window[:, :-1], torch.ones(24, 23, dtype=torch.long))
        assert torch.equal(window[1:] - window[:-1], torch.full((23, 24), 100))
    tops = {int(w[0, 0]) // 100 for w in yc}
    assert tops <= set(range(0, 17))


def test_a_crop_larger_than_the_input_is_refused() -> None:
    from models.train import random_crops

    with pytest.raises(ValueError, match="larger than the 40x50 input"):
        random_crops(torch.zeros(1, 1, 40, 50), torch.zeros(1, 40, 50), 41)


@pytest.mark.parametrize("options", [("--train-crop", "64"), ("--train-crop", "200",
                                     "--input-size", "128,128")])
def test_cli_refuses_a_crop_for_classification_or_past_the_input(
    tmp_path: Path, options: tuple[str, ...]
) -> None:
    res = train_classify_mm(tmp_path, *options)
    assert res.exit_code == 2
    assert "--train-crop is for segmentation and must be in 1..128" in res.output
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("crop", [49, -5])
def test_train_refuses_a_crop_outside_the_input_before_writing(tmp_path: Path, crop: int) -> None:
    from models.train import TrainConfig, train
    from tests.models.test_tiles import _ksdd_like

    _ksdd_like(tmp_path / "ksdd")
    cfg = TrainConfig(task="segment", arch="sme_deeplabv3plus", data=str(tmp_path / "ksdd"),
                      out=str(tmp_path / "run"), epochs=1, input_size=[48, 48], tile=64,
                      train_crop=crop)
    with pytest.raises(ValueError, match="--train-crop is for segmentation and must be in 1..48"):
        train(cfg)
    assert not (tmp_path / "run").exists()


def test_training_steps_see_crops_and_validation_the_whole_input(
    tmp_path: Path, monkeypatch
) -> None:
    import models.train as train_module
    from tests.models.test_tiles import _ksdd_like

    seen: dict[bool, set] = {True: set(), False: set()}
    original = train_module.arch_registry.build

    def recording_build(*args, **kwargs):
        model = original(*args, **kwargs)
        model.register_forward_pre_hook(
            lambda mod, inp: seen[mod.training].add(tuple(inp[0].shape[2:]))
        )
        return model

    monkeypatch.setattr(train_module.arch_registry, "build", recording_build)
    _ksdd_like(tmp_path / "ksdd")
    cfg = train_module.TrainConfig(
        task="segment", arch="sme_deeplabv3plus", data=str(tmp_path / "ksdd"),
        out=str(tmp_path / "run"), epochs=1, input_size=[48, 48], tile=64, threads=1,
        select_metric="miou", train_crop=32, batch_size=4,
    )
    metrics = train_module.train(cfg)
    assert seen[True] == {(32, 32)}
    assert seen[False] == {(48, 48)}
    assert metrics["config"]["train_crop"] == 32
