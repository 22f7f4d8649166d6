"""``train --class-weight-power``: how strongly rare classes are weighted in the loss."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.models.cli_helpers import train_classify_mm

torch = pytest.importorskip("torch")


def test_power_scales_the_weights_from_equal_to_inverse_square_root() -> None:
    from models.train import class_weights

    labels = np.array([0] * 399 + [1] * 99 + [2] * 24)  # counts + 1: 400, 100, 25
    assert torch.allclose(class_weights(labels, 3, 0.0), torch.ones(3))
    w = class_weights(labels, 3, 0.5)
    assert w.mean().item() == pytest.approx(1.0)
    assert (w[1] / w[0]).item() == pytest.approx(2.0) and (w[2] / w[0]).item() == pytest.approx(4.0)
    w = class_weights(labels, 3, 1.0)
    assert (w[2] / w[0]).item() == pytest.approx(16.0)


@pytest.mark.parametrize("power", ["-0.1", "1.5"])
def test_cli_refuses_a_power_outside_zero_to_one(tmp_path: Path, power: str) -> None:
    res = train_classify_mm(tmp_path, "--class-weight-power", power)
    assert res.exit_code == 2
    assert "--class-weight-power must be in [0, 1]" in res.output
    assert not (tmp_path / "o").exists()


def test_training_weighs_the_loss_with_the_configured_power(tmp_path: Path, monkeypatch) -> None:
    import models.train as train_module
    from tests.models.test_tiles import _ksdd_like

    powers: list[float] = []

    def recording(labels: np.ndarray, num_classes: int, power: float) -> torch.Tensor:
        powers.append(power)
        return original(labels, num_classes, power)

    original = train_module.class_weights
    monkeypatch.setattr(train_module, "class_weights", recording)
    _ksdd_like(tmp_path / "ksdd")
    cfg = train_module.TrainConfig(
        task="segment", arch="sme_deeplabv3plus", data=str(tmp_path / "ksdd"),
        out=str(tmp_path / "run"), epochs=1, input_size=[32, 32], tile=64, threads=1,
        select_metric="miou", class_weight_power=0.0,
    )
    train_module.train(cfg)
    assert powers == [0.0]
