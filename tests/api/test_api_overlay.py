"""The QA overlay: one box and one legible label per defect, labels never on each other."""

from __future__ import annotations

import numpy as np

from api.overlay import LABEL_BG, _overlaps, layout_labels, overlay_labels, render_overlay
from core.result import Defect


def test_labels_of_crowded_defects_do_not_overlap() -> None:
    # eight defects in a tight cluster: the naive "label above the box" would stack them
    boxes = [(400 + 6 * i, 300 + 4 * i, 20, 30) for i in range(8)]
    rects = layout_labels(boxes, [(150, 20)] * 8, 1296, 966)
    assert len(rects) == 8
    for i, a in enumerate(rects):
        assert 0 <= a[0] and a[0] + a[2] <= 1296 and 0 <= a[1] and a[1] + a[3] <= 966
        assert not any(_overlaps(a, b) for b in rects[i + 1 :]), rects


def test_label_at_the_frame_edge_stays_inside() -> None:
    [r] = layout_labels([(1290, 0, 6, 10)], [(150, 20)], 1296, 966)
    assert r[0] + r[2] <= 1296 and r[1] >= 0


def test_overlay_draws_one_numbered_label_per_defect() -> None:
    img = np.full((200, 300), 128, np.uint8)
    defects = [
        Defect(cls="inclusion", score=0.91, bbox=(50, 80, 20, 20), area_px=400, model="mm"),
        Defect(cls="scale", score=0.7, bbox=(60, 90, 20, 20), area_px=400, model="esg"),
    ]
    out = render_overlay(img, None, defects, ["background", "inclusion", "scale"])
    assert out.shape == (200, 300, 3)
    labels = overlay_labels(defects, 300, 200)
    assert [t for t, _ in labels] == ["1 inclusion 0.91", "2 scale 0.70"]
    (_, a), (_, b) = labels
    assert not _overlaps(a, b)
    for _, (x, y, _w, _h) in labels:  # each label is drawn: its background is there
        assert (out[y + 1, x + 1] == LABEL_BG).all()
