"""``lineinspect quantize``: INT8 static quantisation of a zoo model (onnxruntime).

Calibration data are *training* images of the model's data set (the train side of the same
grouped split as training, :func:`models.evaluate.select_samples`), preprocessed exactly as
the contract says (:func:`core.preprocess.preprocess`), so the validation split stays
unseen and the accuracy change measured on it is honest. A folder that is not a data set
layout is used as a flat folder of images.

The result is QDQ (QuantizeLinear/DequantizeLinear around every quantised op; onnxruntime's
CPU provider fuses them into integer kernels), weights INT8 per output channel, activations
UINT8 per tensor. Weights use a 7-bit range (``reduce_range``): without it onnxruntime's
u8s8 integer kernels saturate on x86 CPUs without VNNI (AVX2 only), and segmenter files that
matched fp32 on one machine lost 2.5-7.4 points of mIoU on another (docs/PERFORMANCE.md).
The artifact metadata is copied, the version gets the ``+int8`` build suffix and
``lineinspect.quantization`` says how the file was made. A recipe selects the file with
``quantize: int8`` on the model (``models/zoo/<name>.int8.onnx``). No torch here.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnxruntime.quantization import CalibrationDataReader

from core.model_meta import PREFIX, read_meta, read_props
from core.preprocess import preprocess
from inference.tiler import make_tiles
from models.data import IMAGE_EXTS, default_cache_dir, index_dataset, read_gray_or_rgb

METHODS = ("minmax", "entropy", "percentile")


def int8_path(model: Path) -> Path:
    """Where ``quantize: int8`` looks for the quantised file: ``<dir>/<stem>.int8.onnx``."""
    return model.with_name(f"{model.stem}.int8.onnx")


def calibration_images(
    data: Path, split: str = "train", limit: int = 256, seed: int = 0
) -> list[Path]:
    """Up to ``limit`` image paths (random, seeded) of ``split`` of the data set ``data``."""
    from models.evaluate import select_samples

    try:
        index = index_dataset(data)
        paths = [s.path for s in select_samples(index, split, seed, cache_dir=default_cache_dir())]
    except (FileNotFoundError, ValueError, KeyError, IndexError):
        paths = sorted(p for p in Path(data).rglob("*") if p.suffix.lower() in IMAGE_EXTS)
    if not paths:
        raise FileNotFoundError(f"no calibration images under {data}")
    rng = np.random.default_rng(seed)
    if len(paths) > limit:
        paths = [paths[i] for i in sorted(rng.choice(len(paths), limit, replace=False))]
    return paths


class _Reader(CalibrationDataReader):
    """onnxruntime ``CalibrationDataReader``: preprocessed batches of the calibration images."""

    def __init__(self, model: Path, images: list[Path], batch: int = 16) -> None:
        self.meta = read_meta(model)
        self.input_name = onnx.load(str(model), load_external_data=False).graph.input[0].name
        self.images, self.batch = images, batch
        self.tile = self.meta.tile
        self._it: Iterator[dict[str, np.ndarray]] | None = None

    def _batches(self) -> Iterator[dict[str, np.ndarray]]:
        m = self.meta
        for i in range(0, len(self.images), self.batch):
            imgs = [read_gray_or_rgb(p, m.channels) for p in self.images[i : i + self.batch]]
            if self.tile:  # a tile-trained model is calibrated on the tiles it will see
                imgs = [t for im in imgs for t in make_tiles(im, self.tile).arrays]
            yield {self.input_name: preprocess(imgs, m.channels, m.input_size, m.mean, m.std)}

    def get_next(self) -> dict[str, np.ndarray] | None:  # noqa: D102 - onnxruntime API
        if self._it is None:
            self._it = self._batches()
        return next(self._it, None)

    def rewind(self) -> None:  # noqa: D102 - onnxruntime API
        self._it = None


def quantize_int8(
    model: Path,
    data: Path,
    out: Path | None = None,
    *,
    images: int = 256,
    split: str = "train",
    method: str = "minmax",
    seed: int = 0,
    keep_float: tuple[str, ...] = (),
) -> dict[str, Any]:
    """Write the INT8 QDQ model of ``model`` (default :func:`int8_path`); returns the facts.

    Nodes whose names start with one of ``keep_float`` stay in float (e.g. a segmenter's
    full-resolution layers, where INT8 shrinks small defects below a tile's verdict)."""
    from onnxruntime.quantization import (
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}")
    out = out or int8_path(model)
    float_nodes(model, keep_float)  # refuse a prefix that matches nothing, before any work
    paths = calibration_images(data, split, images, seed)
    calib = {
        "minmax": CalibrationMethod.MinMax,
        "entropy": CalibrationMethod.Entropy,
        "percentile": CalibrationMethod.Percentile,
    }[method]
    reader = _Reader(model, paths)
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "pre.onnx"
        try:  # shape inference + constant folding: better quantisation coverage
            quant_pre_process(str(model), str(src), skip_symbolic_shape=True)
        except Exception:  # noqa: BLE001 - optional step; quantise the file as it is
            src = model
        kept = float_nodes(src, keep_float)
        out.parent.mkdir(parents=True, exist_ok=True)
        quantize_static(
            str(src),
            str(out),
            reader,
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            calibrate_method=calib,
            reduce_range=True,  # 7-bit weights: u8s8 kernels saturate on CPUs without VNNI
            nodes_to_exclude=kept,
        )
    props = read_props(model)
    how = (
        f"int8 static QDQ (weights int8 per channel in a 7-bit range, activations uint8), "
        f"{method} calibration "
        f"on {len(paths)} {split} images of {Path(data).name}"
        + (f"; {len(kept)} nodes kept in float ({', '.join(keep_float)})" if keep_float else "")
    )
    props[PREFIX + "version"] = props[PREFIX + "version"].split("+")[0] + "+int8"
    props[PREFIX + "quantization"] = how
    q = onnx.load(str(out))
    del q.metadata_props[:]
    for k, v in props.items():
        q.metadata_props.add(key=k, value=v)
    onnx.save(q, str(out))
    facts = {
        "model": str(model),
        "out": str(out),
        "quantization": how,
        "fp32_mb": round(model.stat().st_size / 1e6, 2),
        "int8_mb": round(out.stat().st_size / 1e6, 2),
    }
    if keep_float:
        facts["kept_float"] = {"prefixes": list(keep_float), "nodes": kept}
    return facts


def float_nodes(model: Path, prefixes: tuple[str, ...]) -> list[str]:
    """Names of ``model``'s nodes that start with one of ``prefixes``; ValueError for a
    prefix that matches no node (a typo would silently quantise everything)."""
    names = [n.name for n in onnx.load(str(model), load_external_data=False).graph.node]
    unmatched = [p for p in prefixes if not any(n.startswith(p) for n in names)]
    if unmatched:
        raise ValueError(f"--keep-float {', '.join(unmatched)}: no node of {model.name} "
                         f"starts with it (its first nodes: {', '.join(names[:3])})")
    return [n for n in names if n.startswith(tuple(prefixes))] if prefixes else []


def compare_on_split(
    fp32: Path, int8: Path, data: Path, split: str = "val", seed: int = 0
) -> dict[str, Any]:
    """:func:`models.evaluate.evaluate` of both files on ``split``; metric -> (fp32, int8)."""
    from models.evaluate import evaluate

    a = evaluate(fp32, data, split=split, seed=seed)
    b = evaluate(int8, data, split=split, seed=seed)
    keys = ("accuracy", "macro_f1", "miou", "pixel_accuracy", "recall_defective", *RATES)
    return {
        "split": split,
        "images": a.get("images"),
        **{
            k: {"fp32": a[k], "int8": b[k], "change": b[k] - a[k]}
            for k in keys
            if a.get(k) is not None and b.get(k) is not None
        },
    }


#: An INT8 file is accepted when its validation figure is at most this much below fp32's
#: (0.005 = half a percentage point of accuracy or mIoU).
MAX_DROP = 0.005
#: The figure that decides, in order of preference (the first the comparison has).
DECIDING = ("miou", "accuracy", "macro_f1")
#: A segmenter's tile-level error rates (:func:`models.tiles.tile_error_rates`): each may rise by
#: at most :data:`MAX_RISE` (one percentage point of clean or defect tiles). mIoU alone let
#: through an INT8 aluminium segmenter that stopped 4x as many clean tiles as its fp32 file.
RATES = ("false_alarm_rate", "miss_rate")
MAX_RISE = 0.01


def acceptance(
    validation: dict[str, Any], max_drop: float = MAX_DROP, max_rise: float = MAX_RISE
) -> dict[str, Any]:
    """Accept or reject an INT8 file on :func:`compare_on_split`'s figures: the first of
    :data:`DECIDING` it has may drop at most ``max_drop`` below fp32, and each of
    :data:`RATES` it has may rise at most ``max_rise`` above fp32."""
    metric = next((k for k in DECIDING if k in validation), None)
    if metric is None:
        return {"accepted": False, "why": "no validation figure to decide on"}
    fp32, int8 = validation[metric]["fp32"], validation[metric]["int8"]
    ok = int8 >= fp32 - max_drop
    why = [_change(metric, fp32, int8, ok, max_drop)]
    for rate in (r for r in RATES if r in validation):
        a, b = validation[rate]["fp32"], validation[rate]["int8"]
        rate_ok = b <= a + max_rise
        ok = ok and rate_ok
        why.append(_change(rate, a, b, rate_ok, max_rise))
    return {
        "accepted": bool(ok), "metric": metric, "fp32": fp32, "int8": int8,
        "points": round(100.0 * (int8 - fp32), 2),
        "why": "; ".join(why),
    }


def _change(name: str, fp32: float, int8: float, ok: bool, bound: float) -> str:
    """One figure's fp32 -> INT8 change, in points, against its bound."""
    return (f"{name} {fp32:.4f} -> {int8:.4f} ({100 * (int8 - fp32):+.2f} points; "
            f"{'within' if ok else 'more than'} {100 * bound:.1f} points of fp32)")


def write_facts(facts: dict[str, Any], out: Path) -> Path:
    """``<out>.json`` beside the quantised file."""
    path = out.with_suffix(".json")
    path.write_text(json.dumps(facts, indent=2, default=str))
    return path
