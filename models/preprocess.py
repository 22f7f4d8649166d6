"""SPEC section 3 preprocessing, shared by training, export checks and evaluation.

decode -> convert to the channel count -> resize to ``input_size`` (bilinear) -> /255 ->
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


def normalize_batch(
    images: Sequence[np.ndarray], mean: Sequence[float], std: Sequence[float]
) -> np.ndarray:
    """Stack uint8 images of one size into a normalised float32 NCHW batch."""
    arr = np.stack([im if im.ndim == 3 else im[..., None] for im in images]).astype(np.float32)
    arr = arr.transpose(0, 3, 1, 2) / 255.0
    m = np.asarray(mean, dtype=np.float32).reshape(1, -1, 1, 1)
    s = np.asarray(std, dtype=np.float32).reshape(1, -1, 1, 1)
    return np.ascontiguousarray((arr - m) / s, dtype=np.float32)


def preprocess(
    images: Sequence[np.ndarray],
    channels: int,
    input_size: Sequence[int],
    mean: Sequence[float],
    std: Sequence[float],
) -> np.ndarray:
    """The full SPEC section 3 preprocessing of decoded uint8 images into one batch."""
    return normalize_batch(
        [resize_to(to_channels(im, channels), input_size) for im in images], mean, std
    )
