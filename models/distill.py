"""Soft targets from a released segmenter (``lineinspect train segment --distill-from``).

A released ONNX segmenter of the same classes and input becomes the teacher of a new run:
each training image goes through it under every flip and 90-degree rotation (the dihedral
group D4: 8 views of a square input, the 4 flips of another), the class probabilities are
mapped back and averaged, and the run's loss adds the per-pixel KL divergence from those
averaged probabilities (:func:`distill_loss`). Test-time averaging is what makes the teacher
better than the file it is (docs/PERFORMANCE.md: D4 lifts sme_deeplabv3plus 2.0.0 from
0.8206 to 0.8272 mIoU at 8x the compute); distilling it gives the student the averaged
answer at one view's cost. Only the ONNX file is read, through the service's own
:class:`inference.model.OnnxModel` (its preprocessing and engine), so any released file can
teach.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from google.protobuf.message import DecodeError
from tqdm import tqdm

from core.model_meta import read_meta
from inference.model import OnnxModel


def _views(square: bool) -> list[tuple[bool, bool, bool]]:
    """(flip width, flip height, transpose) of each view: D4 when square, the 4 flips else."""
    return [(fw, fh, t) for t in ((False, True) if square else (False,))
            for fh in (False, True) for fw in (False, True)]


def _apply(a: np.ndarray, view: tuple[bool, bool, bool]) -> np.ndarray:
    """The view of NCHW ``a``: transpose H/W first, then flip height, then width."""
    fw, fh, t = view
    a = a.transpose(0, 1, 3, 2) if t else a
    a = a[:, :, ::-1] if fh else a
    return a[:, :, :, ::-1] if fw else a


def _undo(a: np.ndarray, view: tuple[bool, bool, bool]) -> np.ndarray:
    """Map NCHW ``a`` computed on a view back to the original orientation."""
    fw, fh, t = view
    a = a[:, :, :, ::-1] if fw else a
    a = a[:, :, ::-1] if fh else a
    return a.transpose(0, 1, 3, 2) if t else a


def check_teacher(teacher: Path, classes: list[str], input_size: list[int], channels: int) -> None:
    """ValueError unless ``teacher`` is an ONNX segmenter of ``classes`` at ``input_size``
    with ``channels`` channels (reads only the file's metadata)."""
    try:
        meta = read_meta(teacher)
    except DecodeError as exc:
        raise ValueError(f"--distill-from {teacher}: not an ONNX file ({exc})") from exc
    if (meta.task != "segment" or list(meta.classes) != list(classes)
            or list(meta.input_size) != list(input_size) or meta.channels != channels):
        raise ValueError(
            f"--distill-from {teacher}: a {meta.task} model of classes {list(meta.classes)}, "
            f"input {list(meta.input_size)} x {meta.channels} channels; this run needs a "
            f"segmenter of {classes}, input {input_size} x {channels} channels")


def teacher_targets(
    teacher: Path,
    images: np.ndarray,
    classes: list[str],
    input_size: list[int],
    channels: int,
    threads: int = 0,
    batch: int = 32,
) -> torch.Tensor:
    """Averaged class probabilities of ``teacher`` for uint8 NHWC ``images`` (float16 NCHW).

    ValueError, before any inference, when :func:`check_teacher` refuses the teacher."""
    check_teacher(teacher, classes, input_size, channels)
    model = OnnxModel(teacher, threads=threads)
    views = _views(input_size[0] == input_size[1])
    out = torch.empty((len(images), len(classes), *input_size), dtype=torch.float16)
    desc = f"teacher {teacher.name} ({len(views)} views)"
    for i in tqdm(range(0, len(images), batch), desc=desc):
        x = model.preprocess(list(images[i : i + batch]))
        acc = np.zeros(x.shape[:1] + out.shape[1:], np.float32)
        for view in views:
            logits = model.run(np.ascontiguousarray(_apply(x, view)))
            acc += _undo(torch.from_numpy(logits).softmax(1).numpy(), view)
        out[i : i + len(x)] = torch.from_numpy(acc / len(views))
    return out


def distill_loss(logits: torch.Tensor, soft: torch.Tensor) -> torch.Tensor:
    """Mean per-pixel KL divergence of the student's ``logits`` from the teacher's
    probabilities ``soft`` (both NCHW)."""
    log_p = logits.float().log_softmax(1)
    return F.kl_div(log_p, soft.float(), reduction="none").sum(1).mean()
