"""Cheap input-size comparison for the screen: one network per size, same recipe and split.

    python -m models.svm.compare_sizes --data ../shared/datasets/ksdd \\
        --out /work/runs/alexnet_svm --sizes 384x160,227x227 --epochs 30

``train_screen --compare-sizes`` repeats the whole CV protocol (final net + one net per fold)
at every size; on a shared 2-core CPU that doubles the run. This cheaper check trains only the
final network per size (cached in ``<out>/nets`` with the same key as ``train_screen``, so the
released size is loaded, not retrained) and scores on the grouped validation split:

* the fine-tuning head's argmax,
* an SVM with ``--log2c/--log2g`` (default: the SSA result of ``<out>/card_facts.json``)
  fitted on the training features, at ``d >= 0``,
* the ranking quality of that SVM's decision values (ROC AUC), which does not depend on a
  threshold.

Writes ``<out>/size_comparison.json``. It is weaker evidence than nested CV (one network per
size, 65 validation images), and the card says so.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from sklearn.metrics import roc_auc_score

from models.data import assign_groups, grouped_split, index_dataset
from models.svm.evaluate_screen import screen_metrics
from models.svm.features import NetConfig, extract, load_images, mean_std
from models.svm.train_screen import trained_net
from models.svm.tune import make_svm


def compare(
    data: Path, out: Path, sizes: list[tuple[int, int]], base: NetConfig, log2c: float, log2g: float
) -> dict:
    """Validation figures per input size (see the module docstring)."""
    index = index_dataset(data)
    assign_groups(index, cache_dir=out / "cache")
    train_s, val_s = grouped_split(index, 0.2, base.seed)
    ytr = np.array([s.label for s in train_s], np.int64)
    yva = np.array([s.label for s in val_s], np.int64)
    names = [s.path.name for s in train_s]
    result: dict = {"svm": {"log2C": log2c, "log2gamma": log2g}, "sizes": {}}
    for h, w in sizes:
        cfg = replace(base, input_size=(h, w))
        xtr, mtr = load_images(train_s, cfg.input_size, out / "cache")
        xva, _ = load_images(val_s, cfg.input_size, out / "cache")
        mean, std = mean_std(xtr)
        t0 = time.time()
        tag = f"final_{h}x{w}"
        net, facts = trained_net(cfg, xtr, mtr, ytr, names, mean, std, out / "nets", tag)
        ftr, _ = extract(net, xtr, mean, std)
        fva, lva = extract(net, xva, mean, std)
        svm = make_svm(log2c, log2g).fit(ftr, ytr)
        d = svm.decision_function(fva)
        result["sizes"][f"{h}x{w}"] = {
            "val_head_argmax": screen_metrics(yva, lva.argmax(1)),
            "val_svm_at_0": screen_metrics(yva, (d >= 0).astype(np.int64)),
            "val_svm_roc_auc": round(float(roc_auc_score(yva, d)), 4),
            "train_wall_s": facts["wall_s"],
            "wall_s_this_call": round(time.time() - t0, 1),
        }
        print(f"{h}x{w}: {json.dumps(result['sizes'][f'{h}x{w}'])}", flush=True)
    return result


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--data", type=Path, default=Path("../shared/datasets/ksdd"))
    ap.add_argument("--out", type=Path, default=Path("runs/alexnet_svm"))
    ap.add_argument("--sizes", default="384x160,227x227")
    ap.add_argument("--variant", default="small", choices=["small", "full"])
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--log2c", type=float, default=None)
    ap.add_argument("--log2g", type=float, default=None)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    log2c, log2g = args.log2c, args.log2g
    if log2c is None or log2g is None:
        ssa = json.loads((args.out / "card_facts.json").read_text())["svm_search"]["ssa"]
        log2c, log2g = ssa["log2C"], ssa["log2gamma"]
    sizes = [tuple(int(v) for v in s.lower().split("x")) for s in args.sizes.split(",")]
    base = NetConfig(variant=args.variant, epochs=args.epochs, seed=args.seed)
    result = compare(args.data, args.out, sizes, base, log2c, log2g)  # type: ignore[arg-type]
    (args.out / "size_comparison.json").write_text(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
