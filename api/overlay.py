"""Render a frame with its class mask overlaid and its defect boxes drawn (QA view)."""

from __future__ import annotations

import colorsys
import zlib
from collections.abc import Sequence

import cv2
import numpy as np

from core.result import Defect

#: Opacity of the class colour over the frame.
ALPHA = 0.45


def class_color(index: int) -> tuple[int, int, int]:
    """A distinct, stable RGB colour for class ``index`` (golden-angle hues; 0 = black)."""
    if index <= 0:
        return (0, 0, 0)
    hue = (index * 0.618033988749895) % 1.0
    r, g, b = colorsys.hsv_to_rgb(hue, 0.9, 1.0)
    return (int(r * 255), int(g * 255), int(b * 255))


def palette(n: int = 256) -> np.ndarray:
    """``(n, 3)`` uint8 RGB lookup table of :func:`class_color`."""
    return np.array([class_color(i) for i in range(n)], dtype=np.uint8)


def _color_of(cls: str, mask_classes: Sequence[str]) -> tuple[int, int, int]:
    if cls in mask_classes:
        return class_color(list(mask_classes).index(cls))
    return class_color(1 + zlib.crc32(cls.encode()) % 250)


def render_overlay(
    image: np.ndarray,
    mask: np.ndarray | None,
    defects: Sequence[Defect],
    mask_classes: Sequence[str],
) -> np.ndarray:
    """RGB uint8 ``(H, W, 3)``: the frame, mask pixels tinted by class, boxes with labels."""
    if image.ndim == 2:
        out = cv2.cvtColor(image, cv2.COLOR_GRAY2RGB)
    else:
        out = image[:, :, :3].copy()
    h, w = out.shape[:2]
    if mask is not None and mask.shape[:2] == (h, w):
        hit = mask > 0
        if hit.any():
            colors = palette()[mask]
            blended = cv2.addWeighted(out, 1.0 - ALPHA, colors, ALPHA, 0.0)
            out[hit] = blended[hit]
    thickness = max(1, round(min(h, w) / 400))
    font_scale = max(0.4, min(h, w) / 1200)
    for d in defects:
        x, y, bw, bh = (int(v) for v in d.bbox)
        color = _color_of(d.cls, mask_classes)
        cv2.rectangle(out, (x, y), (x + max(bw, 1) - 1, y + max(bh, 1) - 1), color, thickness)
        label = f"{d.cls} {d.score:.2f}"
        (tw, th), base = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, font_scale, 1)
        ty = y - 3 if y - th - base - 3 >= 0 else min(h - 1, y + bh + th + 3)
        cv2.rectangle(out, (x, ty - th - base), (x + tw, ty + base), color, cv2.FILLED)
        cv2.putText(
            out, label, (x, ty), cv2.FONT_HERSHEY_SIMPLEX, font_scale, (0, 0, 0), 1, cv2.LINE_AA
        )
    return out


def encode_png(rgb_or_gray: np.ndarray) -> bytes:
    """PNG bytes of an RGB or gray uint8 array."""
    arr = rgb_or_gray
    if arr.ndim == 3:
        arr = cv2.cvtColor(arr, cv2.COLOR_RGB2BGR)
    ok, buf = cv2.imencode(".png", arr, [cv2.IMWRITE_PNG_COMPRESSION, 3])
    if not ok:
        raise ValueError("could not encode PNG")
    return buf.tobytes()
