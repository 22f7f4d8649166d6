"""Golden images: PyTorch scores recorded at export, checked against the service's ONNX path.

Users of other inspection stacks report exported models that score differently in service
than in training (another resize, another normalisation, a channel order). At export, a few
fixed images (``models/zoo/golden/*.png``: X-SDD, Apache-2.0, the only data set we may ship)
are read as Mono8 frames (the camera's format) and go through the *training* preprocessing
and the PyTorch checkpoint; their scores are stored in the model's facts file
(``models/zoo/<name>.json``, key ``golden``). The test ``tests/models/test_golden.py`` sends
the same frames through the service's own tiler, preprocessing and ONNX engine and requires
the same scores.

A classifier's score is its logit vector; a segmenter's is the mean logit per class and the
pixel count per predicted class (a full logit map would bloat the facts file).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

GOLDEN_DIR = Path(__file__).resolve().parent / "zoo" / "golden"


def golden_images() -> list[Path]:
    """The fixed golden images, sorted by name."""
    return sorted(GOLDEN_DIR.glob("*.png"))


def summarize(logits: np.ndarray, task: str) -> dict:
    """Score summary of one image's logits (``[C]`` or ``[C, H, W]``) as stored in the facts."""
    if task == "classify":
        return {"logits": [round(float(v), 5) for v in logits]}
    counts = np.bincount(logits.argmax(0).ravel(), minlength=logits.shape[0])
    return {
        "mean_logits": [round(float(v), 5) for v in logits.reshape(logits.shape[0], -1).mean(1)],
        "class_pixels": counts.tolist(),
    }


def torch_golden(model, cfg: dict, mean: list[float], std: list[float]) -> list[dict]:
    """Golden summaries through the training preprocessing and the PyTorch ``model``."""
    import torch

    from core.preprocess import resize_to, to_channels
    from models.data import read_gray_or_rgb
    from models.train import _to_tensor, predict

    m = torch.tensor(mean).view(1, -1, 1, 1)
    s = torch.tensor(std).view(1, -1, 1, 1)
    out = []
    for path in golden_images():
        gray = read_gray_or_rgb(path, 1)  # a Mono8 frame, as the camera delivers
        img = resize_to(to_channels(gray, cfg["channels"]), cfg["input_size"])
        x01 = _to_tensor((img if img.ndim == 3 else img[..., None])[None])
        logits = predict(model, x01, m, s)[0].numpy()
        out.append({"image": path.name, **summarize(logits, cfg["task"])})
    return out
