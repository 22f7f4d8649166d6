"""Measure the screen cascade of a recipe on a labelled image set: speed-up and recall cost.

    python -m models.svm.cascade --recipe commutator --data ../shared/datasets/ksdd --split val

Every image goes through two :class:`inference.pipeline.Inspector` instances that share the
loaded heavy models: the recipe as written (screen -> heavy models only where it flags a
defect) and the same recipe without its ``screen`` (every heavy model on every frame). Both
run single-threaded (``--threads``) one frame at a time, as the inference worker does.

Reported, per variant: image accuracy and recall of defective images (verdict NG vs the
image label), mean / median frame time (``Inspector.timings["total"]``), the fraction of
frames on which the heavy models ran, and box recall / precision / IoU of the heavy models'
defects against the connected components of the ground-truth masks (:mod:`models.svm.localize`;
the screen's own whole-frame defect is not a box and is left out). ``speedup`` = mean frame
time without the screen / with it; ``recall_cost`` = defective recall without minus with.
"""

from __future__ import annotations

import argparse
import json
import statistics
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import cv2
import numpy as np

from core.recipe import Recipe, load_recipe
from core.settings import Settings
from inference.pipeline import Inspector
from models.data import Sample
from models.svm.evaluate_screen import select
from models.svm.features import load_mask
from models.svm.localize import mask_to_boxes, score_boxes

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def _variant(insp: Inspector, images: Sequence[np.ndarray], screen_name: str | None) -> dict:
    """Run ``insp`` on every image; per-image verdict, heavy-model boxes, time, heavy ran."""
    heavy = [s.name for s, _ in insp.models]
    out: dict = {"ng": [], "boxes": [], "ms": [], "heavy_ran": []}
    for i, img in enumerate(images):
        res = insp.inspect(img, "bench", i, NOW)
        out["ng"].append(res.verdict == "NG")
        out["boxes"].append([list(d.bbox) for d in res.defects if d.model != screen_name])
        out["ms"].append(insp.timings["total"])
        out["heavy_ran"].append(any(f"infer:{h}" in insp.timings for h in heavy))
    return out


def _summary(run: dict, y: np.ndarray, gt_boxes: list[list[list[int]]]) -> dict:
    ng = np.asarray(run["ng"], bool)
    defective = y == 1
    boxes = score_boxes(
        [b for b, d in zip(run["boxes"], defective, strict=True) if d],
        [g for g, d in zip(gt_boxes, defective, strict=True) if d],
    )
    return {
        "accuracy": float(np.mean(ng == defective)),
        "recall_defective": float(np.mean(ng[defective])) if defective.any() else float("nan"),
        "false_alarms_ok": int(np.sum(ng & ~defective)),
        "missed_defective": int(np.sum(~ng & defective)),
        "mean_ms": round(statistics.fmean(run["ms"]), 2),
        "median_ms": round(statistics.median(run["ms"]), 2),
        "heavy_ran_fraction": round(float(np.mean(run["heavy_ran"])), 4),
        "boxes_on_defective": boxes,
        "boxes_on_ok_images": int(
            sum(len(b) for b, d in zip(run["boxes"], defective, strict=True) if not d)
        ),
    }


def measure(recipe: Recipe, samples: Sequence[Sample], settings: Settings | None = None) -> dict:
    """Cascade (the recipe) vs no screen on ``samples``; see the module docstring."""
    if recipe.screen is None:
        raise ValueError(f"recipe {recipe.name!r} has no screen")
    settings = settings or Settings(ort_threads=1)
    full = Inspector(recipe.model_copy(update={"screen": None}), settings)
    cascade = Inspector(recipe, settings, models={s.name: m for s, m in full.models})
    images = [cv2.imread(str(s.path), cv2.IMREAD_GRAYSCALE) for s in samples]
    y = np.array([s.label for s in samples], np.int64)
    gt = [mask_to_boxes(load_mask(s, im.shape[:2])) for s, im in zip(samples, images, strict=True)]
    if images:  # first onnxruntime runs are slow: warm both variants up on one real frame
        full.inspect(images[0], "warmup", 0, NOW)
        cascade.inspect(images[0], "warmup", 0, NOW)
    no_screen = _summary(_variant(full, images, None), y, gt)
    with_screen = _summary(_variant(cascade, images, recipe.screen.model.name), y, gt)
    return {
        "recipe": recipe.name,
        "screen_threshold": recipe.screen.threshold,
        "screen_scope": recipe.screen.scope,
        "images": len(samples),
        "defective": int(y.sum()),
        "no_screen": no_screen,
        "cascade": with_screen,
        "speedup": round(no_screen["mean_ms"] / max(with_screen["mean_ms"], 1e-9), 2),
        "recall_cost": round(no_screen["recall_defective"] - with_screen["recall_defective"], 4),
        "ort_threads": settings.ort_threads,
    }


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--recipe", default="commutator", help="recipe name or YAML path")
    ap.add_argument("--data", type=Path, default=Path("../shared/datasets/ksdd"))
    ap.add_argument("--split", default="val", choices=["val", "train", "all"])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1, help="onnxruntime intra-op threads")
    ap.add_argument("--out", type=Path, default=None, help="write cascade.json here")
    args = ap.parse_args(argv)
    settings = Settings(ort_threads=args.threads)
    result = measure(
        load_recipe(args.recipe, settings), select(args.data, args.split, args.seed), settings
    )
    result.update({"data": str(args.data), "split": args.split})
    text = json.dumps(result, indent=2)
    print(text)
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "cascade.json").write_text(text)
    return result


if __name__ == "__main__":
    main()
