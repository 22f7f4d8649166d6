"""A line chart drawn with OpenCV (already a runtime dependency; matplotlib is only in the
``bench`` extra): the RSS of every process of a soak over time (``lineinspect bench soak``)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import cv2
import numpy as np

#: BGR colours of the series, in turn.
COLOURS = [(180, 119, 31), (14, 127, 255), (44, 160, 44), (40, 39, 214), (189, 103, 148),
           (75, 86, 140), (194, 119, 227), (127, 127, 127), (34, 189, 188), (207, 190, 23)]
W, H = 1100, 620
LEFT, RIGHT, TOP, BOTTOM = 80, 240, 50, 60
FONT = cv2.FONT_HERSHEY_SIMPLEX


def _nice_step(span: float, ticks: int = 6) -> float:
    raw = max(span, 1e-9) / ticks
    power = 10 ** math.floor(math.log10(raw))
    return next(m * power for m in (1, 2, 5, 10) if m * power >= raw)


def line_chart(series: dict[str, list[tuple[float, float]]], path: Path, title: str,
               x_label: str, y_label: str, x_mark: float | None = None) -> Path:
    """Draw ``series`` (label -> [(x, y)]) as lines with a legend into the PNG ``path``;
    ``x_mark``: a dashed vertical line (the end of the warm-up)."""
    img = np.full((H, W, 3), 255, np.uint8)
    xs = [x for pts in series.values() for x, _ in pts] or [0.0, 1.0]
    ys = [y for pts in series.values() for _, y in pts] or [0.0, 1.0]
    x0, x1 = min(xs), max(max(xs), min(xs) + 1e-6)
    y_step = _nice_step(max(ys))
    y1 = y_step * math.ceil(max(ys) / y_step * 1.05 + 1e-9)
    pw, ph = W - LEFT - RIGHT, H - TOP - BOTTOM

    def px(x: float, y: float) -> tuple[int, int]:
        return (int(LEFT + (x - x0) / (x1 - x0) * pw), int(TOP + ph - y / y1 * ph))

    grey = (210, 210, 210)
    y = 0.0
    while y <= y1 + 1e-9:
        cv2.line(img, px(x0, y), px(x1, y), grey, 1)
        cv2.putText(img, f"{y:g}", (8, px(x0, y)[1] + 5), FONT, 0.45, (60, 60, 60), 1)
        y += y_step
    x_step = _nice_step(x1 - x0)
    x = math.ceil(x0 / x_step) * x_step
    while x <= x1 + 1e-9:
        cv2.line(img, px(x, 0), px(x, y1), grey, 1)
        cv2.putText(img, f"{x:g}", (px(x, 0)[0] - 10, TOP + ph + 20), FONT, 0.45,
                    (60, 60, 60), 1)
        x += x_step
    if x_mark is not None and x0 <= x_mark <= x1:
        for yy in range(TOP, TOP + ph, 12):
            cv2.line(img, (px(x_mark, 0)[0], yy), (px(x_mark, 0)[0], yy + 6), (90, 90, 90), 1)
    cv2.rectangle(img, (LEFT, TOP), (LEFT + pw, TOP + ph), (0, 0, 0), 1)
    for i, (label, pts) in enumerate(series.items()):
        colour = COLOURS[i % len(COLOURS)]
        if len(pts) >= 2:
            line = np.array([px(a, b) for a, b in pts], np.int32).reshape(-1, 1, 2)
            cv2.polylines(img, [line], False, colour, 2, cv2.LINE_AA)
        ly = TOP + 20 + 24 * i
        cv2.line(img, (W - RIGHT + 15, ly - 4), (W - RIGHT + 45, ly - 4), colour, 3)
        cv2.putText(img, label, (W - RIGHT + 52, ly), FONT, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
    cv2.putText(img, title, (LEFT, 30), FONT, 0.6, (0, 0, 0), 1, cv2.LINE_AA)
    cv2.putText(img, x_label, (LEFT + pw // 2 - 40, H - 15), FONT, 0.5, (0, 0, 0), 1)
    cv2.putText(img, y_label, (8, TOP - 12), FONT, 0.5, (0, 0, 0), 1)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), img):
        raise OSError(f"could not write {path}")
    return path


def soak_chart(report: dict[str, Any], path: Path) -> Path:
    """RSS (MB) of every process of a ``bench soak`` report over minutes."""
    series: dict[str, list[tuple[float, float]]] = {}
    for s in report["samples"]:
        for label, p in s["processes"].items():
            series.setdefault(label, []).append((s["t"] / 60.0, p["rss"] / 1024**2))
    cfg = report["config"]
    title = (f"lineinspect run soak: RSS per process, {cfg['recipe']} at {cfg['fps']:g} fps, "
             f"{cfg['cores']} cores (dashed: end of warm-up)")
    return line_chart(series, path, title, "minutes", "RSS MB",
                      x_mark=cfg["warmup_s"] / 60.0)
