"""``lineinspect evaluate``: score a released ONNX model on a folder of images.

Uses only the ONNX file, its ``lineinspect.*`` metadata and the contract's preprocessing
(:func:`core.preprocess.preprocess`, docs/CONTRACT.md; no torch), so anyone can check a
card's numbers on their own data.
Segmentation predictions are resized back to each image's size (nearest) before scoring;
a segmenter trained on tiles (``lineinspect.tile`` metadata) is run on the image's tiles and
stitched (:func:`models.tiles.predict_tiled`). IoU is accumulated over all pixels of all
images. A segmenter is also scored as a line sees it: per tile the service cuts (whole image
for an untiled one), a clean tile flagged or a defect tile missed
(:func:`models.tiles.tile_verdicts`: ``false_alarm_rate``, ``miss_rate``).
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from core.model_meta import ModelMeta, read_meta
from core.preprocess import preprocess
from inference.backends.onnxruntime import create_session
from models.data import (
    DatasetIndex,
    Sample,
    assign_groups,
    default_cache_dir,
    grouped_split,
    index_dataset,
)
from models.data import read_gray_or_rgb as read_image
from models.metrics import classification_metrics, confusion, segmentation_metrics_from_confusion
from models.tiles import predict_tiled, tile_error_rates, tile_verdicts


def select_samples(
    index: DatasetIndex,
    split: str,
    seed: int = 0,
    val_fraction: float = 0.2,
    cache_dir: Path | None = None,
) -> list[Sample]:
    """``all`` samples, or the ``train``/``val`` side of the grouped split used in training."""
    if split == "all":
        return index.samples
    assign_groups(index, cache_dir=cache_dir)
    train, val = grouped_split(index, val_fraction, seed)
    return val if split == "val" else train


def _gt_mask(s: Sample, shape: tuple[int, int]) -> np.ndarray:
    if s.mask is None:
        return np.zeros(shape, np.uint8)
    m = cv2.imread(str(s.mask), cv2.IMREAD_GRAYSCALE)
    if m.max() == 255:  # binary masks (KolektorSDD)
        m = (m == 255).astype(np.uint8)
    if m.shape != shape:
        m = cv2.resize(m, (shape[1], shape[0]), interpolation=cv2.INTER_NEAREST)
    return m


def evaluate(
    model_path: Path,
    data: Path,
    split: str = "all",
    seed: int = 0,
    batch: int = 16,
    threads: int = 0,
    out_dir: Path | None = None,
    val_fraction: float = 0.2,
) -> dict:
    """Score ``model_path`` on the images under ``data``; returns the metrics dict."""
    meta: ModelMeta = read_meta(model_path)
    if meta.task == "classify" and meta.classes == ("ok", "defect"):
        return _evaluate_screen(model_path, data, split, seed, out_dir, val_fraction)
    index = index_dataset(data)
    samples = select_samples(index, split, seed, val_fraction, cache_dir=default_cache_dir())
    sess = create_session(model_path, providers="CPUExecutionProvider", threads=threads)
    name = sess.get_inputs()[0].name
    if meta.task == "classify":
        class_map = _class_map(meta.classes, index.classes)
        preds, truth = [], []
        for i in tqdm(range(0, len(samples), batch), desc="evaluate"):
            chunk = samples[i : i + batch]
            imgs = [read_image(s.path, meta.channels) for s in chunk]
            x = preprocess(imgs, meta.channels, meta.input_size, meta.mean, meta.std)
            preds.extend(sess.run(None, {name: x})[0].argmax(1).tolist())
            truth.extend(class_map[s.label] for s in chunk)
        metrics = classification_metrics(np.array(truth), np.array(preds), meta.classes)
    else:
        n = len(meta.classes)
        cm = np.zeros((n, n), np.int64)
        verdicts = np.zeros((2, 2), np.int64)
        tile = meta.tile

        def run(tiles: list[np.ndarray]) -> np.ndarray:
            x = preprocess(tiles, meta.channels, meta.input_size, meta.mean, meta.std)
            return sess.run(None, {name: x})[0]

        for s in tqdm(samples, desc="evaluate"):
            img = read_image(s.path, meta.channels)
            if tile:
                pred = predict_tiled(run, img, tile)
            else:
                pred = run([img])[0].argmax(0).astype(np.uint8)
                pred = cv2.resize(
                    pred, (img.shape[1], img.shape[0]), interpolation=cv2.INTER_NEAREST
                )
            truth = _gt_mask(s, img.shape[:2])
            cm += confusion(truth, pred, n)
            verdicts += tile_verdicts(truth, pred, tile)
        metrics = segmentation_metrics_from_confusion(cm, meta.classes)
        metrics["tile_verdicts"] = verdicts.tolist()
        metrics.update(tile_error_rates(verdicts))
        if tile:
            metrics["tile"] = tile
    metrics.update(
        {
            "model": str(model_path),
            "data": str(data),
            "split": split,
            "images": len(samples),
            "version": meta.version,
        }
    )
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "evaluation.json").write_text(json.dumps(metrics, indent=2))
        from models import plots

        if meta.task == "classify":
            plots.confusion_matrix(
                np.asarray(metrics["confusion"]),
                meta.classes,
                out_dir / "confusion.png",
                title=f"{model_path.name} {split}",
            )
    return metrics


def _evaluate_screen(
    model_path: Path,
    data: Path,
    split: str,
    seed: int,
    out_dir: Path | None,
    val_fraction: float,
) -> dict:
    """OK/NG screen (``["ok", "defect"]``) on a data set with image-level labels (KolektorSDD
    ``labels.csv``): accuracy, recall of defective images, confusion (rows = true ok/defect)."""
    from models.svm.evaluate_screen import evaluate_screen

    metrics = evaluate_screen(model_path, data, split, seed, val_fraction)
    if out_dir is not None:
        from models import plots

        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "evaluation.json").write_text(json.dumps(metrics, indent=2))
        plots.confusion_matrix(
            np.asarray(metrics["confusion"]),
            ["ok", "defect"],
            out_dir / "confusion.png",
            title=f"{model_path.name} {split}",
        )
    return metrics


def _class_map(model_classes: list[str], data_classes: list[str]) -> list[int]:
    """Map data set class indices to model output indices by name."""
    missing = [c for c in data_classes if c not in model_classes]
    if missing:
        raise ValueError(f"data classes {missing} are not outputs of the model {model_classes}")
    return [model_classes.index(c) for c in data_classes]
