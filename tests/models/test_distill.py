"""``train segment --distill-from``: soft targets from a released segmenter, averaged over D4."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from tests.models.test_tiles import _ksdd_like
from tests.onnx_factory import make_segmenter

torch = pytest.importorskip("torch")

KSDD_CLASSES = ["background", "defect"]


def _bright_defect_teacher(path: Path, size: int = 32) -> Path:
    """A per-pixel teacher that is right on ``_ksdd_like`` data: bright pixels are defect."""
    return make_segmenter(path, KSDD_CLASSES, (40.0, 220.0), input_size=(size, size))


def _left_looking_teacher(path: Path, size: int = 16) -> Path:
    """A segmenter whose answer at a pixel is its left neighbour's brightness: it is not
    equivariant to flips or rotations, so a view mapped back wrongly shows."""
    w = np.zeros((2, 1, 3, 3), np.float32)
    w[1, 0, 1, 0] = 4.0  # defect logit = 4 x the normalised pixel on the left
    graph = helper.make_graph(
        [helper.make_node("Conv", ["input", "W"], ["logits"], kernel_shape=[3, 3],
                          pads=[1, 1, 1, 1])],
        "left_looking",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 1, "H", "W"])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 2, "H", "W"])],
        initializer=[numpy_helper.from_array(w, "W")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.save(model, str(path))
    from core.model_meta import ModelMeta, write_meta

    write_meta(path, ModelMeta("segment", KSDD_CLASSES, [size, size], 1, [0.5], [0.25],
                               "0.1.0", "synthetic"))
    return path


def test_views_are_the_eight_of_d4_and_each_is_undone() -> None:
    from models.distill import _apply, _undo, _views

    a = np.random.default_rng(0).random((2, 3, 5, 5))
    assert len({_apply(a, v).tobytes() for v in _views(square=True)}) == 8
    assert len(_views(square=False)) == 4
    for v in _views(square=True):
        assert np.array_equal(_undo(_apply(a, v), v), a)


def test_averaged_targets_turn_with_the_image(tmp_path: Path) -> None:
    """Averaging every view mapped back makes the teacher's answer equivariant: the targets
    of a rotated image are the rotated targets, though the teacher itself is not."""
    from models.distill import teacher_targets

    teacher = _left_looking_teacher(tmp_path / "t.onnx")
    img = np.random.default_rng(1).integers(0, 256, (1, 16, 16, 1), dtype=np.uint8)
    turned = np.ascontiguousarray(np.rot90(img, 1, (1, 2)))
    t = teacher_targets(teacher, img, KSDD_CLASSES, [16, 16], 1).float()
    t_turned = teacher_targets(teacher, turned, KSDD_CLASSES, [16, 16], 1).float()
    assert torch.allclose(t_turned, t.rot90(1, (2, 3)), atol=2e-3)
    assert torch.allclose(t.sum(1), torch.ones(1, 16, 16), atol=2e-3)
    # one view alone would not turn with the image: the average is what makes it so
    from inference.backends.onnxruntime import create_session

    x = ((img.transpose(0, 3, 1, 2) / 255.0 - 0.5) / 0.25).astype(np.float32)
    single = torch.from_numpy(create_session(teacher).run(None, {"input": x})[0]).softmax(1)
    assert not torch.allclose(single, t, atol=1e-2)


@pytest.mark.parametrize("teacher_kwargs, what", [
    ({"classes": ("background", "stain"), "centers": (40.0, 220.0)}, "classes"),
    ({"classes": KSDD_CLASSES, "centers": (40.0, 220.0), "input_size": (48, 48)}, "input"),
])
def test_a_teacher_that_does_not_fit_is_refused_before_writing(
    tmp_path: Path, teacher_kwargs: dict, what: str
) -> None:
    from models.train import TrainConfig, train

    _ksdd_like(tmp_path / "ksdd")
    teacher = make_segmenter(tmp_path / "t.onnx", **teacher_kwargs)
    cfg = TrainConfig(task="segment", arch="sme_deeplabv3plus", data=str(tmp_path / "ksdd"),
                      out=str(tmp_path / "run"), epochs=1, input_size=[32, 32], tile=64,
                      distill_from=str(teacher))
    with pytest.raises(ValueError, match="this run needs a segmenter of"):
        train(cfg)
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("options, message", [
    ({"distill_weight": 0.0, "distill_from": "TEACHER"}, "--distill-weight must be above 0"),
    ({"distill_weight": 2.0}, "needs --distill-from"),
    ({"distill_from": "NOT_ONNX"}, "not an ONNX file"),
])
def test_a_bad_weight_or_a_file_that_is_no_onnx_is_refused_before_writing(
    tmp_path: Path, options: dict, message: str
) -> None:
    from models.train import TrainConfig, train

    _ksdd_like(tmp_path / "ksdd")
    files = {"TEACHER": str(_bright_defect_teacher(tmp_path / "t.onnx")),
             "NOT_ONNX": str(tmp_path / "labels.onnx")}
    (tmp_path / "labels.onnx").write_text("file,defective\n")
    options = {k: files.get(v, v) if isinstance(v, str) else v for k, v in options.items()}
    cfg = TrainConfig(task="segment", arch="sme_deeplabv3plus", data=str(tmp_path / "ksdd"),
                      out=str(tmp_path / "run"), epochs=1, input_size=[32, 32], tile=64,
                      **options)
    with pytest.raises(ValueError, match=message):
        train(cfg)
    assert not (tmp_path / "run").exists()


def test_cli_refuses_a_missing_teacher_and_distilling_a_classifier(tmp_path: Path) -> None:
    from tests.models.cli_helpers import train_classify_mm

    res = train_classify_mm(tmp_path, "--distill-from", str(tmp_path / "none.onnx"))
    assert res.exit_code == 2 and "no such ONNX file" in " ".join(res.output.split())
    teacher = _bright_defect_teacher(tmp_path / "t.onnx")
    res = train_classify_mm(tmp_path / "second", "--distill-from", str(teacher))
    assert res.exit_code == 2
    assert "--distill-from is for segmentation" in " ".join(res.output.split())
    assert not (tmp_path / "o").exists() and not (tmp_path / "second" / "o").exists()


def test_a_distilled_run_sees_targets_turned_with_its_images_and_names_them(
    tmp_path: Path, monkeypatch
) -> None:
    """Every training batch's teacher probabilities got the same flips and rotation as its
    masks (a right teacher's defects overlap the augmented mask's), the KL term joins each step's
    loss, and the card names the teacher."""
    import models.train as train_module
    from models.card import render_card
    from models.export import export_checkpoint

    overlap = {"inter": 0, "union": 0, "batches": 0}
    kl_calls: list[tuple] = []
    original_augment, original_kl = train_module._augment, train_module.distill_loss

    def recording_augment(x, y, square, soft=None):
        x, y, soft = original_augment(x, y, square, soft)
        taught, labelled = soft.argmax(1) == 1, y == 1
        overlap["inter"] += int((taught & labelled).sum())
        overlap["union"] += int((taught | labelled).sum())
        overlap["batches"] += 1
        return x, y, soft

    def recording_kl(logits, soft):
        kl_calls.append(tuple(soft.shape))
        return original_kl(logits, soft)

    monkeypatch.setattr(train_module, "_augment", recording_augment)
    monkeypatch.setattr(train_module, "distill_loss", recording_kl)
    _ksdd_like(tmp_path / "ksdd")
    teacher = _bright_defect_teacher(tmp_path / "t.onnx")
    cfg = train_module.TrainConfig(
        task="segment", arch="sme_deeplabv3plus", data=str(tmp_path / "ksdd"),
        out=str(tmp_path / "run"), epochs=1, input_size=[32, 32], tile=64, threads=1,
        positive_fraction=0.4, select_metric="miou", batch_size=4, distill_from=str(teacher),
        distill_weight=0.5,
    )
    metrics = train_module.train(cfg)
    assert overlap["union"] > 0 and overlap["inter"] / overlap["union"] > 0.8  # defect IoU
    assert kl_calls and all(shape == (4, 2, 32, 32) for shape in kl_calls)
    assert len(kl_calls) == overlap["batches"]
    facts = export_checkpoint(tmp_path / "run" / "best.pt", tmp_path / "s.onnx",
                              data=tmp_path / "ksdd")
    card = render_card(facts)
    assert f"--distill-from {teacher} --distill-weight 0.5" in card
    assert "0.5 x per-pixel KL divergence from the probabilities of `t.onnx`" in card
    assert metrics["config"]["distill_from"] == str(teacher)
