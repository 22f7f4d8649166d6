"""Pictures saved next to the numbers: curves, confusion matrices, IoU bars, overlays."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

_PALETTE = np.array(
    [
        [0, 0, 0],
        [230, 25, 75],
        [60, 180, 75],
        [255, 225, 25],
        [0, 130, 200],
        [245, 130, 48],
        [145, 30, 180],
        [70, 240, 240],
    ],
    dtype=np.uint8,
)


def training_curves(history: list[dict], path: Path) -> None:
    """Training loss and validation score per epoch."""
    if not history:
        return
    ep = [h["epoch"] for h in history]
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot(ep, [h["loss"] for h in history], label="train loss")
    ax.set_xlabel("epoch")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax2 = ax.twinx()
    ax2.plot(ep, [h["score"] for h in history], color="tab:orange", label="val score")
    ax2.set_ylim(0, 1)
    # above the axes: below them it covered the x-axis label
    fig.legend(loc="upper center", ncol=2, frameon=False)
    fig.tight_layout(rect=(0, 0, 1, 0.9))
    fig.savefig(path, dpi=110)
    plt.close(fig)


def confusion_matrix(cm: np.ndarray, classes: list[str], path: Path, title: str = "") -> None:
    """Confusion matrix with counts (rows = true)."""
    fig, ax = plt.subplots(figsize=(1.0 + 0.8 * len(classes), 0.8 + 0.7 * len(classes)))
    ax.imshow(cm, cmap="Blues")
    for i in range(cm.shape[0]):
        for j in range(cm.shape[1]):
            ax.text(
                j,
                i,
                int(cm[i, j]),
                ha="center",
                va="center",
                color="white" if cm[i, j] > cm.max() / 2 else "black",
                fontsize=8,
            )
    ax.set_xticks(range(len(classes)), classes, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(len(classes)), classes, fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    if title:
        ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def iou_bars(per_class: dict, path: Path) -> None:
    """Bar chart of per-class IoU."""
    names = list(per_class)
    vals = [per_class[n] or 0.0 for n in names]
    fig, ax = plt.subplots(figsize=(5, 3))
    ax.bar(names, vals, color="tab:blue")
    ax.set_ylim(0, 1)
    ax.set_ylabel("IoU")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def colorize(mask: np.ndarray) -> np.ndarray:
    """RGB image of a class-indexed mask."""
    return _PALETTE[np.asarray(mask) % len(_PALETTE)]


def segmentation_overlays(
    images: np.ndarray, truth: np.ndarray, pred: np.ndarray, path: Path
) -> None:
    """Rows of image / ground truth / prediction for a few validation images."""
    n = len(images)
    fig, axes = plt.subplots(n, 3, figsize=(6, 2 * n), squeeze=False)
    for i in range(n):
        img = images[i][..., 0] if images[i].shape[-1] == 1 else images[i]
        for j, (im, title) in enumerate(
            [(img, "image"), (colorize(truth[i]), "truth"), (colorize(pred[i]), "prediction")]
        ):
            axes[i, j].imshow(im, cmap="gray" if im.ndim == 2 else None)
            axes[i, j].axis("off")
            if i == 0:
                axes[i, j].set_title(title, fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
