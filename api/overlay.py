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
#: Label font and background (white text on near-black: legible on any steel).
FONT = cv2.FONT_HERSHEY_SIMPLEX
LABEL_BG = (20, 20, 20)


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


Rect = tuple[int, int, int, int]


def _overlaps(a: Rect, b: Rect) -> bool:
    return a[0] < b[0] + b[2] and b[0] < a[0] + a[2] and a[1] < b[1] + b[3] and b[1] < a[1] + a[3]


def layout_labels(
    boxes: Sequence[Rect], sizes: Sequence[tuple[int, int]], width: int, height: int
) -> list[Rect]:
    """One label rect ``[x, y, w, h]`` per defect box, placed so that labels do not overlap.

    ``sizes`` are the labels' ``(w, h)``. Candidates, in order: above the box (left-aligned,
    then right-aligned), below it (likewise), inside its top-left corner, then further up
    and down in steps of one label height; the first that stays in the frame and clears
    every label placed so far and every other defect's box wins (the first candidate when
    none does: crowded frames).
    Boxes are taken in the given order (highest score first: the worst defect gets the
    best place).
    """
    placed: list[Rect] = []
    for i, ((x, y, bw, bh), (tw, th)) in enumerate(zip(boxes, sizes, strict=True)):
        others = [b for j, b in enumerate(boxes) if j != i]
        right = x + bw - tw
        candidates = [(x, y - th - 2), (right, y - th - 2), (x, y + bh + 2), (right, y + bh + 2),
                      (x + 2, y + 2)]
        for k in range(1, 8):
            candidates += [(x, y - th - 2 - k * (th + 2)), (x, y + bh + 2 + k * (th + 2))]
        chosen: Rect | None = None
        for cx, cy in candidates:
            cx = min(max(0, cx), max(0, width - tw))
            if cy < 0 or cy + th > height:
                continue
            rect = (cx, cy, tw, th)
            if not any(_overlaps(rect, p) for p in placed + others):
                chosen = rect
                break
        if chosen is None:
            cx, cy = candidates[0]
            chosen = (min(max(0, cx), max(0, width - tw)), min(max(0, cy), max(0, height - th)),
                      tw, th)
        placed.append(chosen)
    return placed


def _label_style(width: int, height: int) -> tuple[float, int]:
    """Font scale and stroke of the labels for a frame of this size."""
    scale = max(0.45, min(width, height) / 1400)
    return scale, 1 if scale < 0.8 else 2


def overlay_labels(defects: Sequence[Defect], width: int, height: int) -> list[tuple[str, Rect]]:
    """Per defect (in list order) its label ``"<n> <class> <score>"`` and where it goes."""
    scale, stroke = _label_style(width, height)
    texts, sizes = [], []
    for i, d in enumerate(defects, start=1):
        text = f"{i} {d.cls} {d.score:.2f}"
        (tw, th), base = cv2.getTextSize(text, FONT, scale, stroke)
        texts.append(text)
        sizes.append((tw + 6, th + base + 6))
    boxes = [tuple(int(v) for v in d.bbox) for d in defects]
    return list(zip(texts, layout_labels(boxes, sizes, width, height), strict=True))


def render_overlay(
    image: np.ndarray,
    mask: np.ndarray | None,
    defects: Sequence[Defect],
    mask_classes: Sequence[str],
) -> np.ndarray:
    """RGB uint8 ``(H, W, 3)``: the frame, mask pixels tinted by class, one box and one
    numbered label (``1 inclusion 0.91``, in the order of the defect list) per defect,
    labels laid out so that they do not cover each other (:func:`layout_labels`)."""
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
    for d, (label, (lx, ly, lw, lh)), style in zip(
        defects, overlay_labels(defects, w, h), [_label_style(w, h)] * len(defects), strict=True
    ):
        x, y, bw, bh = (int(v) for v in d.bbox)
        font_scale, text_thickness = style
        color = _color_of(d.cls, mask_classes)
        cv2.rectangle(out, (x, y), (x + max(bw, 1) - 1, y + max(bh, 1) - 1), color, thickness)
        cv2.rectangle(out, (lx, ly), (lx + lw - 1, ly + lh - 1), LABEL_BG, cv2.FILLED)
        cv2.rectangle(out, (lx, ly), (lx + lw - 1, ly + lh - 1), color, 1)
        (_, th), _ = cv2.getTextSize(label, FONT, font_scale, text_thickness)
        cv2.putText(out, label, (lx + 3, ly + 3 + th), FONT, font_scale, (255, 255, 255),
                    text_thickness, cv2.LINE_AA)
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
