"""The one preprocessing of the model artifact contract (docs/CONTRACT.md, Model artifacts),
shared by training, evaluation and serving.

decode -> convert to the channel count -> bilinear resize to ``input_size`` -> /255 ->
normalise with mean/std -> float32 NCHW. Only NumPy and OpenCV: no torch.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np


def to_channels(img: np.ndarray, channels: int) -> np.ndarray:
    """Convert a uint8 gray (HxW) or RGB (HxWx3) image to 1 or 3 channels (HxW or HxWx3)."""
    if channels == 1:
        return img if img.ndim == 2 else cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)
    return img if img.ndim == 3 else cv2.cvtColor(img, cv2.COLOR_GRAY2RGB)


def resize_to(img: np.ndarray, size: Sequence[int]) -> np.ndarray:
    """Bilinear resize to ``[H, W]`` (no-op when already that size)."""
    h, w = int(size[0]), int(size[1])
    if img.shape[0] == h and img.shape[1] == w:
        return img
    return cv2.resize(img, (w, h), interpolation=cv2.INTER_LINEAR)


def preprocess(
    images: Sequence[np.ndarray],
    channels: int,
    input_size: Sequence[int],
    mean: Sequence[float],
    std: Sequence[float],
    out: np.ndarray | None = None,
) -> np.ndarray:
    """uint8 images (HxW, HxWx1 or HxWx3, any size) -> one normalised float32 NCHW batch.

    Per image: to ``channels`` (RGB -> gray with ``cv2.COLOR_RGB2GRAY``; gray -> repeated),
    bilinear resize to ``input_size`` (``cv2.INTER_LINEAR``), then /255 and (x - mean) / std
    per channel. Gray is converted before resizing and broadcast to 3 channels afterwards,
    which gives exactly what resizing the repeated image would, for a third of the work.
    Written into ``out`` (float32 ``[N, channels, H, W]``) when given - the serving path
    reuses one buffer per thread - else into a new array.
    """
    n = len(images)
    h, w = int(input_size[0]), int(input_size[1])
    shape = (n, channels, h, w)
    if out is None:
        out = np.empty(shape, dtype=np.float32)
    elif out.shape != shape or out.dtype != np.float32:
        raise ValueError(f"out must be float32 {shape}, got {out.dtype} {out.shape}")
    for i, img in enumerate(images):
        if img.dtype != np.uint8:
            raise ValueError(f"images must be uint8, got {img.dtype}")
        if img.ndim == 3 and img.shape[2] == 1:
            img = img[:, :, 0]
        if channels == 1 and img.ndim == 3:
            img = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)
        img = resize_to(img, (h, w))
        if img.ndim == 2:
            out[i, :] = img  # broadcast over 1 or 3 channels (gray repeated)
        else:
            out[i] = img.transpose(2, 0, 1)
    m = np.asarray(mean, dtype=np.float32).reshape(1, channels, 1, 1)
    s = np.asarray(std, dtype=np.float32).reshape(1, channels, 1, 1)
    np.divide(out, np.float32(255.0), out=out)
    np.subtract(out, m, out=out)
    np.divide(out, s, out=out)
    return out
