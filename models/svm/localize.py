"""Defect boxes for images the screen calls NG, and how well they match the ground truth.

The paper localises defects with Faster R-CNN (Sec. 2.2). lineinspect uses the simpler route
allowed for ``alexnet_svm``: a segmenter trained on the KolektorSDD masks (e.g.
``sme_deeplabv3plus`` on ``ksdd``) predicts a defect mask and boxes are its connected
components. Ground-truth boxes are the connected components of the KolektorSDD masks
(255 = defect, resized nearest to the image size).

Boxes are ``[x, y, w, h]`` in image pixels (the inspection JSON's ``bbox``). Scores:

* box recall at IoU >= t: fraction of ground-truth boxes matched one-to-one (greedy, highest
  IoU first) by a predicted box with IoU >= t (t = 0.3 and 0.5);
* box precision at the same t: matched predicted boxes / all predicted boxes;
* mean IoU: mean over ground-truth boxes of the best IoU any predicted box reaches (0 if none).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import cv2
import numpy as np

Box = list[int]


def mask_to_boxes(mask: np.ndarray, min_area: int = 0, close_px: int = 0) -> list[Box]:
    """Boxes ``[x, y, w, h]`` of the 8-connected components of ``mask > 0``.

    ``close_px`` > 0 first closes gaps up to that many pixels (a crack predicted in pieces
    becomes one box); components with fewer than ``min_area`` pixels are dropped.
    """
    m = (np.asarray(mask) > 0).astype(np.uint8)
    if close_px > 0:
        k = cv2.getStructuringElement(cv2.MORPH_RECT, (2 * close_px + 1, 2 * close_px + 1))
        c = close_px  # pad so that closing cannot grow components at the image border
        m = cv2.morphologyEx(np.pad(m, c), cv2.MORPH_CLOSE, k)[c:-c, c:-c]
    n, _, stats, _ = cv2.connectedComponentsWithStats(m, connectivity=8)
    return [
        [int(x), int(y), int(w), int(h)]
        for x, y, w, h, area in stats[1:n]
        if area >= max(min_area, 1)
    ]


def prob_to_boxes(
    prob: np.ndarray, threshold: float = 0.5, min_area: int = 0, close_px: int = 0
) -> list[tuple[Box, float]]:
    """Boxes of ``prob >= threshold`` with a score each (max probability inside the box)."""
    boxes = mask_to_boxes(prob >= threshold, min_area, close_px)
    return [(b, float(prob[b[1] : b[1] + b[3], b[0] : b[0] + b[2]].max())) for b in boxes]


def box_iou(a: Sequence[float], b: Sequence[float]) -> float:
    """IoU of two ``[x, y, w, h]`` boxes (pixel boxes: a box covers ``w * h`` pixels)."""
    ix = max(0.0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = a[2] * a[3] + b[2] * b[3] - inter
    return float(inter / union) if union > 0 else 0.0


def iou_matrix(pred: Sequence[Box], gt: Sequence[Box]) -> np.ndarray:
    """``[len(pred), len(gt)]`` IoUs."""
    return np.array([[box_iou(p, g) for g in gt] for p in pred], dtype=float).reshape(
        len(pred), len(gt)
    )


def match(pred: Sequence[Box], gt: Sequence[Box], thr: float) -> int:
    """Number of one-to-one matches with IoU >= ``thr`` (greedy, highest IoU first)."""
    iou = iou_matrix(pred, gt)
    used_p, used_g, hits = set(), set(), 0
    for flat in np.argsort(-iou, axis=None, kind="stable"):
        i, j = np.unravel_index(flat, iou.shape)
        if iou[i, j] < thr:
            break
        if i in used_p or j in used_g:
            continue
        used_p.add(i)
        used_g.add(j)
        hits += 1
    return hits


def score_boxes(
    pred_boxes: Iterable[Sequence[Box]],
    gt_boxes: Iterable[Sequence[Box]],
    thresholds: Sequence[float] = (0.3, 0.5),
) -> dict:
    """Box recall/precision at each IoU threshold and mean best IoU over ground-truth boxes."""
    pred_boxes, gt_boxes = list(pred_boxes), list(gt_boxes)
    n_gt = sum(len(g) for g in gt_boxes)
    n_pred = sum(len(p) for p in pred_boxes)
    out: dict = {"gt_boxes": n_gt, "pred_boxes": n_pred, "images": len(gt_boxes)}
    best = []
    for p, g in zip(pred_boxes, gt_boxes, strict=True):
        if g:
            iou = iou_matrix(p, g)
            best.extend(iou.max(0).tolist() if len(p) else [0.0] * len(g))
    for t in thresholds:
        hits = sum(match(p, g, t) for p, g in zip(pred_boxes, gt_boxes, strict=True))
        out[f"box_recall@{t}"] = hits / n_gt if n_gt else float("nan")
        out[f"box_precision@{t}"] = hits / n_pred if n_pred else float("nan")
    out["mean_iou"] = float(np.mean(best)) if best else float("nan")
    return out


def score_masks(
    pred_masks: Iterable[np.ndarray],
    gt_masks: Iterable[np.ndarray],
    thresholds: Sequence[float] = (0.3, 0.5),
    min_area: int = 0,
    close_px: int = 0,
) -> dict:
    """:func:`score_boxes` of the connected-component boxes of predicted and true masks.

    Predicted masks are resized (nearest) to their ground truth's size first, as the contract
    prescribes for segmentation predictions (docs/CONTRACT.md, section 3).
    """
    preds, gts = [], []
    for p, g in zip(pred_masks, gt_masks, strict=True):
        p = np.asarray(p).astype(np.uint8)
        if p.shape != g.shape:
            p = cv2.resize(p, (g.shape[1], g.shape[0]), interpolation=cv2.INTER_NEAREST)
        preds.append(mask_to_boxes(p, min_area, close_px))
        gts.append(mask_to_boxes(g))
    return score_boxes(preds, gts, thresholds)
