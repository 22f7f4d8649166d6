"""``train segment --overlap-loss lovasz``: the Lovász-softmax IoU surrogate beside the
cross-entropy (``models/lovasz.py``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.models.cli_helpers import train_classify_mm
from tests.models.test_tiles import _ksdd_like

torch = pytest.importorskip("torch")


def _one_hot(labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    return torch.nn.functional.one_hot(labels, num_classes).permute(0, 3, 1, 2).float()


def test_at_hard_predictions_it_is_one_minus_the_batch_iou_of_the_present_classes() -> None:
    from models.lovasz import lovasz_softmax

    gen = torch.Generator().manual_seed(0)
    labels = torch.randint(0, 3, (3, 12, 12), generator=gen)  # class 3 never occurs
    pred = torch.randint(0, 4, (3, 12, 12), generator=gen)
    expected = []
    for c in range(3):
        inter = ((labels == c) & (pred == c)).sum().item()
        union = ((labels == c) | (pred == c)).sum().item()
        expected.append(1 - inter / union)
    loss = lovasz_softmax(_one_hot(pred, 4), labels)
    assert loss.item() == pytest.approx(sum(expected) / 3, abs=1e-6)
    assert lovasz_softmax(_one_hot(labels, 4), labels).item() == 0.0


def test_descending_it_reaches_the_labels() -> None:
    """Free logits trained on the loss alone end at the labelled classes (IoU 1 everywhere)."""
    from models.lovasz import lovasz_softmax

    gen = torch.Generator().manual_seed(1)
    labels = torch.randint(0, 4, (2, 10, 10), generator=gen)
    logits = torch.zeros(2, 4, 10, 10, requires_grad=True)
    opt = torch.optim.SGD([logits], lr=50.0)
    start = lovasz_softmax(logits.softmax(1), labels).item()
    for _ in range(60):
        opt.zero_grad()
        lovasz_softmax(logits.softmax(1), labels).backward()
        opt.step()
    assert start > 0.5
    assert torch.equal(logits.argmax(1), labels)


def test_a_lovasz_run_uses_it_at_every_step_and_the_card_says_so(
    tmp_path: Path, monkeypatch
) -> None:
    import models.train as train_module
    from models.card import render_card
    from models.export import export_checkpoint

    calls: list[tuple] = []
    original = train_module.lovasz_softmax

    def recording(probs, labels):
        calls.append(tuple(probs.shape))
        return original(probs, labels)

    monkeypatch.setattr(train_module, "lovasz_softmax", recording)
    _ksdd_like(tmp_path / "ksdd")
    cfg = train_module.TrainConfig(
        task="segment", arch="sme_deeplabv3plus", data=str(tmp_path / "ksdd"),
        out=str(tmp_path / "run"), epochs=1, input_size=[32, 32], tile=64, threads=1,
        select_metric="miou", batch_size=4, overlap_loss="lovasz",
    )
    metrics = train_module.train(cfg)
    steps = metrics["split"]["train_tiles"] // 4
    assert len(calls) == steps and all(s == (4, 2, 32, 32) for s in calls)
    card = render_card(export_checkpoint(tmp_path / "run" / "best.pt", tmp_path / "s.onnx",
                                         data=tmp_path / "ksdd"))
    assert "--overlap-loss lovasz" in card
    assert "loss: cross-entropy + Lovász-softmax (models/lovasz.py)" in card


@pytest.mark.parametrize("loss", ["jaccard", "lovasz"])
def test_an_unknown_loss_or_one_for_a_classifier_is_refused_before_writing(
    tmp_path: Path, loss: str
) -> None:
    res = train_classify_mm(tmp_path, "--overlap-loss", loss)
    assert res.exit_code == 2
    assert "--overlap-loss must be one of dice, lovasz" in " ".join(res.output.split())
    assert not (tmp_path / "o").exists()
