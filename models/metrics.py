"""Scores shared by training and ``lineinspect evaluate`` (NumPy only)."""

from __future__ import annotations

import numpy as np


def confusion(y_true: np.ndarray, y_pred: np.ndarray, n: int) -> np.ndarray:
    """``n x n`` confusion matrix, rows = true class, columns = predicted class."""
    idx = y_true.astype(np.int64).ravel() * n + y_pred.astype(np.int64).ravel()
    return np.bincount(idx, minlength=n * n).reshape(n, n)


def classification_metrics(y_true: np.ndarray, y_pred: np.ndarray, classes: list[str]) -> dict:
    """Accuracy, macro F1, per-class precision/recall/F1 and the confusion matrix."""
    cm = confusion(np.asarray(y_true), np.asarray(y_pred), len(classes))
    tp = np.diag(cm).astype(float)
    precision = tp / np.maximum(cm.sum(0), 1)
    recall = tp / np.maximum(cm.sum(1), 1)
    f1 = 2 * precision * recall / np.maximum(precision + recall, 1e-12)
    present = cm.sum(1) > 0
    return {
        "accuracy": float(tp.sum() / max(cm.sum(), 1)),
        "macro_f1": float(f1[present].mean()) if present.any() else 0.0,
        "per_class": {
            c: {"precision": float(p), "recall": float(r), "f1": float(f), "support": int(s)}
            for c, p, r, f, s in zip(classes, precision, recall, f1, cm.sum(1), strict=True)
        },
        "confusion": cm.tolist(),
        "n": int(cm.sum()),
    }


def segmentation_metrics_from_confusion(cm: np.ndarray, classes: list[str]) -> dict:
    """mIoU including background, per-class IoU and pixel accuracy from a pixel confusion."""
    tp = np.diag(cm).astype(float)
    union = cm.sum(0) + cm.sum(1) - tp
    iou = np.where(union > 0, tp / np.maximum(union, 1), np.nan)
    return {
        "miou": float(np.nanmean(iou)),
        "per_class_iou": {
            c: (None if np.isnan(v) else float(v)) for c, v in zip(classes, iou, strict=True)
        },
        "pixel_accuracy": float(tp.sum() / max(cm.sum(), 1)),
        "confusion": cm.tolist(),
    }


def segmentation_metrics(y_true: np.ndarray, y_pred: np.ndarray, classes: list[str]) -> dict:
    """Segmentation scores over all pixels of all images (dataset-level IoU)."""
    return segmentation_metrics_from_confusion(confusion(y_true, y_pred, len(classes)), classes)
