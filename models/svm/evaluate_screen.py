"""Score the OK/NG screen ONNX file on KolektorSDD (for ``lineinspect evaluate``).

Uses only the ONNX file, its ``lineinspect.*`` metadata and the contract's preprocessing
(:mod:`core.preprocess`), no torch or scikit-learn. The data set's ``Sample.label`` (0 = ok,
1 = defective, from ``labels.csv``) is the truth; the prediction is the argmax of the logits
(``["ok", "defect"]``), i.e. the screen threshold baked into the graph.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from core.model_meta import read_meta
from core.preprocess import preprocess
from inference.backends.onnxruntime import create_session
from models.data import Sample, assign_groups, grouped_split, index_dataset, read_gray_or_rgb
from models.metrics import confusion


def select(data: Path, split: str, seed: int = 0, val_fraction: float = 0.2) -> list[Sample]:
    """``all`` samples or the ``train``/``val`` side of the grouped split used in training."""
    index = index_dataset(Path(data))
    if split == "all":
        return index.samples
    if split not in ("train", "val"):
        raise ValueError(f"split must be all, train or val, not {split!r}")
    assign_groups(index)  # ~1 s for KolektorSDD; same groups as training
    train, val = grouped_split(index, val_fraction, seed)
    return val if split == "val" else train


def screen_scores(model_path: Path, samples: list[Sample], batch: int = 16) -> np.ndarray:
    """Logits ``[N, 2]`` of the screen for ``samples`` (the contract's preprocessing)."""
    meta = read_meta(model_path)
    if meta.classes != ("ok", "defect"):
        raise ValueError(f"{model_path}: not an OK/NG screen (classes {meta.classes})")
    sess = create_session(model_path, providers="CPUExecutionProvider")
    name = sess.get_inputs()[0].name
    out = []
    for i in range(0, len(samples), batch):
        imgs = [read_gray_or_rgb(s.path, meta.channels) for s in samples[i : i + batch]]
        x = preprocess(imgs, meta.channels, meta.input_size, meta.mean, meta.std)
        out.append(sess.run(None, {name: x})[0])
    return np.concatenate(out) if out else np.zeros((0, 2), np.float32)


def screen_metrics(y_true: np.ndarray, y_pred: np.ndarray) -> dict:
    """Accuracy, recall/precision of ``defect``, and the confusion (rows = true ok/defect)."""
    cm = confusion(np.asarray(y_true), np.asarray(y_pred), 2)
    tp, fn, fp = int(cm[1, 1]), int(cm[1, 0]), int(cm[0, 1])
    return {
        "accuracy": float(np.trace(cm) / max(cm.sum(), 1)),
        "recall_defective": float(tp / max(tp + fn, 1)),
        "precision_defective": float(tp / max(tp + fp, 1)),
        "specificity_ok": float(cm[0, 0] / max(cm[0].sum(), 1)),
        "confusion": cm.tolist(),
        "classes": ["ok", "defect"],
        "n": int(cm.sum()),
    }


def screen_errors(names: list[str], y_true: np.ndarray, y_pred: np.ndarray) -> dict:
    """Names of the missed defective images and of the false alarms (0 = ok, 1 = defect)."""
    rows = list(zip(names, y_true, y_pred, strict=True))
    return {
        "missed_defective": [n for n, t, p in rows if t > p],
        "false_alarms": [n for n, t, p in rows if t < p],
    }


def evaluate_screen(
    model_path: str | Path,
    data: str | Path,
    split: str = "all",
    seed: int = 0,
    val_fraction: float = 0.2,
) -> dict:
    """Accuracy, defective recall and confusion of the screen on ``split`` of ``data``."""
    model_path = Path(model_path)
    samples = select(Path(data), split, seed, val_fraction)
    logits = screen_scores(model_path, samples)
    y = np.array([s.label for s in samples], dtype=np.int64)
    pred = logits.argmax(1)
    metrics = screen_metrics(y, pred)
    metrics.update(
        {
            "model": str(model_path),
            "data": str(data),
            "split": split,
            "images": len(samples),
            "version": read_meta(model_path).version,
            **screen_errors([s.path.name for s in samples], y, pred),
        }
    )
    return metrics
