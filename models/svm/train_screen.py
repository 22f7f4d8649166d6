"""Train the ``alexnet_svm`` OK/NG screen on KolektorSDD and write the release candidate.

    python -m models.svm.train_screen --data ../shared/datasets/ksdd --out runs/alexnet_svm \
        --input-size 512x208 --threads 2

Steps (all single-threaded by default, ``--threads``):

1. Grouped stratified split (:func:`models.data.grouped_split`, seed 0, val 20 %); images at
   ``--input-size`` through the contract's preprocessing; mean/std of the training images.
2. Feature network: AlexNet-SPP trained from scratch on the training split
   (:func:`models.svm.features.train_net`). For an honest cross-validation the same recipe is
   also trained on the training folds of a ``--cv-folds`` stratified grouped k-fold of the
   training split ("fold nets"); every fold net's features of its held-out fold are out of fold.
3. SVM (C, gamma) by SSA and by grid search (:mod:`models.svm.tune`) on those folds: fold k's SVM
   is fitted on fold net k's features of the other folds and scored on fold k, so the objective
   sees the same train/test feature shift as the released screen. The SSA result is used.
4. The released SVM is fitted on the final network's features of the whole training split.
   Threshold (:func:`choose_threshold`): on the out-of-fold decision values (CV) and the
   validation decision values together, the largest ``t <= 0`` at which >= 99 % of the
   defective images are caught -- among thresholds that keep accuracy >= 0.97 (the acceptance
   floor); when no such threshold reaches 99 % the one with the highest recall is used. The
   unconstrained 99 %-recall threshold and a sweep are reported too. A Platt fit on the same
   values gives the slope ``a``; the graph outputs ``logits = [-z/2, z/2]``, ``z = a (d - t)``,
   so argmax is the screen decision and softmax a calibrated-ish defect probability.
   Flip views (:mod:`models.svm.views`): the decision averaged over mirrored copies of a
   frame; the view set with the best out-of-fold ROC AUC is used for the threshold and baked
   into the graph.
5. One ONNX graph (:mod:`models.svm.compose`) with the artifact metadata, parity against PyTorch +
   scikit-learn on real validation images, ONNX validation metrics
   (:func:`models.svm.evaluate_screen.evaluate_screen`), FLOPs, latency -> ``card_facts.json``.

``--compare-sizes 384x160,227x227`` additionally runs steps 1-3 at other input sizes (the paper
squeezes the 500 x ~1250 images to 227 x 227) and records validation and CV figures per size in
``card_facts.json["input_size_decision"]["experiment"]``. ``--net-seed`` retrains the networks
with another seed on the same split and folds (run-to-run spread). Trained networks and features
are cached in ``<out>/nets`` keyed by their configuration, so re-running only redoes what
changed. The release command is in ``models/zoo/alexnet_svm.md``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import platform
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch

from core.model_meta import ModelMeta
from models.arch.alexnet_spp import FeatureExtractor, build
from models.data import assign_groups, grouped_split, index_dataset
from models.export import count_flops, ort_latency
from models.svm import compose as composer
from models.svm.evaluate_screen import (
    evaluate_screen,
    screen_errors,
    screen_metrics,
    screen_scores,
)
from models.svm.features import NetConfig, extract, load_images, mean_std, train_net
from models.svm.tune import cv_folds, grid_search, make_svm, ssa_search
from models.svm.views import CANDIDATES, VIEW_AXES, average_views, flip_images

VERSION = "1.2.0"
CLASSES = ["ok", "defect"]


def _log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def _net_key(cfg: NetConfig, mean: list[float], std: list[float], train_names: list[str]) -> str:
    blob = json.dumps([cfg.to_dict(), mean, std, sorted(train_names)], sort_keys=True)
    return hashlib.sha1(blob.encode()).hexdigest()[:12]


def trained_net(
    cfg: NetConfig,
    images: np.ndarray,
    masks: np.ndarray,
    labels: np.ndarray,
    names: list[str],
    mean: list[float],
    std: list[float],
    cache: Path,
    tag: str,
) -> tuple[torch.nn.Module, dict]:
    """Train (or load from ``cache``) one feature network on the given images."""
    key = _net_key(cfg, mean, std, names)
    path = cache / f"{tag}_{key}.pt"
    model = build(2, 1, cfg.variant)
    if path.exists():
        ck = torch.load(path, map_location="cpu", weights_only=False)
        model.load_state_dict(ck["state"])
        return model.eval(), ck["facts"]
    _log(f"training {tag} ({len(images)} images, {int(labels.sum())} defective)")
    model, facts = train_net(images, masks, labels, cfg, mean, std)
    cache.mkdir(parents=True, exist_ok=True)
    torch.save({"state": model.state_dict(), "facts": facts, "config": cfg.to_dict()}, path)
    return model.eval(), facts


def _metrics_at(d: np.ndarray, y: np.ndarray, t: float) -> dict:
    return screen_metrics(y, (d >= t).astype(np.int64))


def pipeline(
    data: Path,
    out: Path,
    cfg: NetConfig,
    cv_k: int,
    seed: int,
    ssa_n: int,
    ssa_iters: int,
    grid_step: float,
    force_views: tuple[str, ...] | None = None,
) -> dict:
    """Steps 1-3 (+ SVM/threshold) at one input size; returns everything needed later."""
    index = index_dataset(data)
    assign_groups(index, cache_dir=out / "cache")
    train_s, val_s = grouped_split(index, 0.2, seed)
    xtr, mtr = load_images(train_s, cfg.input_size, out / "cache")
    xva, _ = load_images(val_s, cfg.input_size, out / "cache")
    ytr = np.array([s.label for s in train_s], np.int64)
    yva = np.array([s.label for s in val_s], np.int64)
    gtr = np.array([s.group for s in train_s])
    names = [s.path.name for s in train_s]
    mean, std = mean_std(xtr)
    size = f"{cfg.input_size[0]}x{cfg.input_size[1]}"
    nets = out / "nets"
    t0 = time.time()
    final, final_facts = trained_net(cfg, xtr, mtr, ytr, names, mean, std, nets, f"final_{size}")
    ftr, _ = extract(final, xtr, mean, std)
    fva, lva = extract(final, xva, mean, std)
    fva_views = {
        v: fva if v == "id" else extract(final, flip_images(xva, v), mean, std)[0]
        for v in VIEW_AXES
    }
    folds = cv_folds(ytr, gtr, cv_k, seed)
    fold_views = []  # per fold: features of all training images by that fold's net, per view
    fold_facts = []
    for k, (tr_idx, _) in enumerate(folds):
        net_k, facts_k = trained_net(
            cfg,
            xtr[tr_idx],
            mtr[tr_idx],
            ytr[tr_idx],
            [names[i] for i in tr_idx],
            mean,
            std,
            nets,
            f"fold{k}of{cv_k}_{size}",
        )
        fold_views.append({v: extract(net_k, flip_images(xtr, v), mean, std)[0] for v in VIEW_AXES})
        fold_facts.append(facts_k)
    fold_feats = [f["id"] for f in fold_views]
    _log(f"{size}: nets ready ({time.time() - t0:.0f} s incl. loading from cache)")
    np.savez(
        out / f"features_{size}.npz",
        train=ftr,
        val=fva,
        val_head_logits=lva,
        folds=np.stack(fold_feats),
        y_train=ytr,
        y_val=yva,
        groups_train=gtr,
    )
    # SVM search on fold features: fold k's SVM sees fold net k's features of the other folds
    nested = NestedFolds(fold_feats, folds)
    yy = np.tile(ytr, cv_k)
    ssa = ssa_search(nested.X, yy, nested.folds, n=ssa_n, iters=ssa_iters, seed=seed)
    grid = grid_search(nested.X, yy, nested.folds, step=grid_step)
    _log(f"{size}: SSA {ssa.as_dict()}")
    _log(f"{size}: grid {grid.as_dict()}")
    searches = {}
    for res in (ssa, grid):
        svm = make_svm(res.log2c, res.log2g).fit(ftr, ytr)
        d_val = svm.decision_function(fva)
        d_oof = nested.oof_decision(ytr, res.log2c, res.log2g)
        searches[res.method] = {
            **res.as_dict(),
            "cv_at_0": _metrics_at(d_oof, ytr, 0.0),
            "val_at_0": _metrics_at(d_val, yva, 0.0),
            "n_support": int(svm.steps[-1][1].n_support_.sum()),
        }
    chosen = ssa
    svm = make_svm(chosen.log2c, chosen.log2g).fit(ftr, ytr)
    d_val_views = {v: svm.decision_function(fva_views[v]) for v in VIEW_AXES}
    d_oof_views = nested.oof_decision_views(
        ytr,
        chosen.log2c,
        chosen.log2g,
        {v: np.concatenate([f[v] for f in fold_views]) for v in VIEW_AXES},
    )
    views, view_table = choose_views(d_oof_views, ytr, d_val_views, yva)
    if force_views:
        views = force_views
    _log(f"{size}: views {views} ({view_table})")
    d_val = average_views(d_val_views, views)
    d_oof = average_views(d_oof_views, views)
    head_val = screen_metrics(yva, lva.argmax(1))
    return {
        "cfg": cfg,
        "size": size,
        "mean": mean,
        "std": std,
        "index": index,
        "train": train_s,
        "val": val_s,
        "ytr": ytr,
        "yva": yva,
        "train_names": names,
        "final": final,
        "final_facts": final_facts,
        "fold_facts": fold_facts,
        "svm": svm,
        "chosen": chosen,
        "searches": searches,
        "d_val": d_val,
        "d_oof": d_oof,
        "views": views,
        "view_table": view_table,
        "head_val": head_val,
        "xva": xva,
        "ftr": ftr,
        "fva": fva,
    }


class NestedFolds:
    """Stack fold-net features so that :mod:`models.svm.tune` can score (C, gamma) by CV.

    Row block k of ``X`` holds fold net k's features of all training images; fold k trains on
    the block-k rows of the other folds and tests on the block-k rows of fold k.
    """

    def __init__(self, fold_feats: list[np.ndarray], folds: list) -> None:
        n = fold_feats[0].shape[0]
        self.n = n
        self.X = np.concatenate(fold_feats)
        self.folds = [(k * n + tr, k * n + te) for k, (tr, te) in enumerate(folds)]
        self._test = [te for _, te in folds]

    def oof_decision(self, y: np.ndarray, log2c: float, log2g: float) -> np.ndarray:
        """Out-of-fold SVM decision values of the training images (plain view)."""
        return self.oof_decision_views(y, log2c, log2g, {"id": self.X})["id"]

    def oof_decision_views(
        self, y: np.ndarray, log2c: float, log2g: float, views: dict[str, np.ndarray]
    ) -> dict[str, np.ndarray]:
        """Out-of-fold decisions per view: fold k's SVM (fitted on plain features) scores
        fold net k's features of its test images seen in each view (``views``: view -> rows
        stacked like ``X``)."""
        yy = np.tile(y, len(self.folds))
        d = {v: np.zeros(self.n) for v in views}
        for (tr, te), te0 in zip(self.folds, self._test, strict=True):
            svm = make_svm(log2c, log2g).fit(self.X[tr], yy[tr])
            for v, xv in views.items():
                d[v][te0] = svm.decision_function(xv[te])
        return d


def choose_views(
    d_oof: dict[str, np.ndarray],
    y_oof: np.ndarray,
    d_val: dict[str, np.ndarray],
    y_val: np.ndarray,
) -> tuple[tuple[str, ...], list[dict]]:
    """The flip-view set with the highest out-of-fold ROC AUC (ties: fewer views); the
    validation figures are reported next to it, never used to choose."""
    from sklearn.metrics import roc_auc_score

    table, best, best_auc = [], CANDIDATES[0], -1.0
    for cand in CANDIDATES:
        oof, val = average_views(d_oof, cand), average_views(d_val, cand)
        auc = float(roc_auc_score(y_oof, oof))
        table.append(
            {
                "views": list(cand),
                "cv_auc": round(auc, 4),
                "val_auc": round(float(roc_auc_score(y_val, val)), 4),
                "cv_at_0": _metrics_at(oof, y_oof, 0.0),
                "val_at_0": _metrics_at(val, y_val, 0.0),
            }
        )
        if auc > best_auc + 1e-9:
            best, best_auc = cand, auc
    return best, table


def _candidates(d: np.ndarray) -> np.ndarray:
    """0 and the midpoints between consecutive distinct decision values that lie below 0."""
    u = np.unique(d)
    mids = (u[1:] + u[:-1]) / 2
    return np.unique(np.r_[0.0, mids[mids < 0]])[::-1]  # from 0 downwards


def recall_threshold(d: np.ndarray, y: np.ndarray, recall: float = 0.99) -> float:
    """Largest ``t <= 0`` (a midpoint between scores) with defective recall >= ``recall``."""
    for t in _candidates(d):
        if np.mean(d[y == 1] >= t) >= recall:
            return float(t)
    return float(_candidates(d)[-1])


def choose_threshold(
    d: np.ndarray, y: np.ndarray, recall: float = 0.99, accuracy_floor: float = 0.97
) -> float:
    """Screen threshold on the decision value ``d`` (NG if ``d >= t``), ``t <= 0``.

    Among thresholds whose accuracy stays >= ``accuracy_floor``: the largest one reaching
    ``recall`` of the defective images if any does, else the one with the highest recall
    (ties: the largest ``t``, i.e. the fewest false alarms). Thresholds are midpoints between
    observed scores, so none sits exactly on an image. ``t = 0`` if nothing meets the floor.
    """
    best, best_rec = 0.0, -1.0
    for t in _candidates(d):
        pred = d >= t
        if np.mean(pred == (y == 1)) < accuracy_floor:
            continue
        rec = float(np.mean(pred[y == 1]))
        if rec >= recall:
            return float(t)
        if rec > best_rec + 1e-12:
            best, best_rec = float(t), rec
    return best


def platt_slope(d: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Logistic fit ``P(defect) = sigmoid(a d + b)`` (scikit-learn, light L2)."""
    from sklearn.linear_model import LogisticRegression

    lr = LogisticRegression(C=10.0).fit(d.reshape(-1, 1), y)
    return float(lr.coef_[0, 0]), float(lr.intercept_[0])


def summary(r: dict) -> dict:
    """Per-input-size figures for the input-size experiment."""
    return {
        "input_size": list(r["cfg"].input_size),
        "val_head_argmax": r["head_val"],
        "val_svm_at_0": _metrics_at(r["d_val"], r["yva"], 0.0),
        "cv_svm_at_0": _metrics_at(r["d_oof"], r["ytr"], 0.0),
        "cv_balanced_accuracy": r["chosen"].cv_balanced_accuracy,
        "roc_auc_by_views": {
            "+".join(c["views"]): {"cv": c["cv_auc"], "val": c["val_auc"]} for c in r["view_table"]
        },
        "svm": r["searches"]["ssa"],
        "train_wall_s": r["final_facts"]["wall_s"],
    }


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--data", type=Path, default=Path("../shared/datasets/ksdd"))
    ap.add_argument("--out", type=Path, default=Path("runs/alexnet_svm"))
    ap.add_argument("--input-size", default="512x208", help="HxW of the network input")
    ap.add_argument("--compare-sizes", default="", help="comma-separated HxW, e.g. 227x227")
    ap.add_argument("--variant", default="small", choices=["small", "full"])
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--cv-folds", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0, help="split, folds, SSA and (default) nets")
    ap.add_argument(
        "--net-seed",
        type=int,
        default=None,
        help="seed of the networks' initialisation and augmentation only (default --seed): "
        "retrains on the same split and folds to measure run-to-run spread",
    )
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--ssa-pop", type=int, default=20)
    ap.add_argument("--ssa-iters", type=int, default=20)
    ap.add_argument("--grid-step", type=float, default=1.0)
    ap.add_argument("--recall-target", type=float, default=0.99)
    ap.add_argument("--accuracy-floor", type=float, default=0.97)
    ap.add_argument("--threshold", type=float, default=None, help="override the decision t")
    ap.add_argument(
        "--views",
        default="",
        help="comma-separated flip views to bake in instead of the CV choice, e.g. 'id' for a "
        "single-pass screen",
    )
    ap.add_argument("--name", default="alexnet_svm", help="file stem of the written ONNX")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    out = args.out
    out.mkdir(parents=True, exist_ok=True)

    def size_of(s: str) -> tuple[int, int]:
        h, w = s.lower().split("x")
        return int(h), int(w)

    net_seed = args.seed if args.net_seed is None else args.net_seed
    base = NetConfig(variant=args.variant, epochs=args.epochs, seed=net_seed)
    t_all = time.time()
    common = (args.cv_folds, args.seed, args.ssa_pop, args.ssa_iters, args.grid_step)
    forced = tuple(v.strip() for v in args.views.split(",") if v.strip()) or None
    if forced and any(v not in VIEW_AXES for v in forced):
        ap.error(f"--views: unknown view in {args.views!r}; known: {list(VIEW_AXES)}")
    r = pipeline(
        args.data, out, replace(base, input_size=size_of(args.input_size)), *common, forced
    )
    experiment = {r["size"]: summary(r)}
    for s in filter(None, args.compare_sizes.split(",")):
        other = pipeline(args.data, out, replace(base, input_size=size_of(s)), *common)
        experiment[other["size"]] = summary(other)
        del other

    # threshold and Platt slope from out-of-fold (CV) + validation decision values
    d_all = np.concatenate([r["d_oof"], r["d_val"]])
    y_all = np.concatenate([r["ytr"], r["yva"]])
    t_recall = recall_threshold(d_all, y_all, args.recall_target)
    t = choose_threshold(d_all, y_all, args.recall_target, args.accuracy_floor)
    if args.threshold is not None:
        t = float(args.threshold)
    a, _ = platt_slope(d_all, y_all)
    cfg = r["cfg"]
    meta = ModelMeta(
        task="classify",
        classes=CLASSES,
        input_size=list(cfg.input_size),
        channels=1,
        mean=r["mean"],
        std=r["std"],
        version=VERSION,
        dataset=r["index"].fingerprint(),
    )
    onnx_path = out / f"{args.name}.onnx"
    composer.save(
        composer.compose(r["final"], r["svm"], meta, a=a, b=-a * t, views=r["views"]),
        onnx_path,
    )
    _log(f"wrote {onnx_path} (t = {t:.4f}, a = {a:.4f})")

    # parity on real validation images: ONNX vs torch features -> sklearn pipeline
    onnx_logits = screen_scores(onnx_path, r["val"])
    z = a * (r["d_val"] - t)
    ref = np.stack([-z / 2, z / 2], 1)
    parity = {
        "max_abs_diff_logits": float(np.abs(onnx_logits - ref).max()),
        "decisions_agree": bool((onnx_logits.argmax(1) == (r["d_val"] >= t)).all()),
        "sklearn_decision_agree_at_0": bool(
            ((onnx_logits[:, 1] - onnx_logits[:, 0] >= -a * t) == (r["d_val"] >= 0)).all()
        ),
        "images": len(r["val"]),
    }
    _log(f"parity {parity}")
    onnx_val = evaluate_screen(onnx_path, args.data, "val", seed=args.seed)

    feat_net = FeatureExtractor(r["final"]).eval()
    h, w = cfg.input_size
    params_net = sum(p.numel() for p in feat_net.parameters())
    params_net -= sum(p.numel() for p in r["final"].head.parameters())
    params_net -= sum(p.numel() for p in r["final"].aux.parameters())
    svc = r["svm"].steps[-1][1]
    n_sv = int(svc.n_support_.sum())
    flops_net = count_flops(feat_net, torch.zeros(1, 1, h, w)) * len(r["views"])
    flops_svm = 2 * n_sv * (3 * 256) + 2 * 256
    latency = {f"batch_{b}": ort_latency(onnx_path, [b, 1, h, w]) for b in (1, 32)}
    val_at = {
        "default_0.5 (d >= 0)": _metrics_at(r["d_val"], r["yva"], 0.0),
        "chosen_threshold": _metrics_at(r["d_val"], r["yva"], t),
    }
    cv_at = {
        "default_0.5 (d >= 0)": _metrics_at(r["d_oof"], r["ytr"], 0.0),
        "chosen_threshold": _metrics_at(r["d_oof"], r["ytr"], t),
    }
    cv_at["errors_at_chosen"] = screen_errors(
        r["train_names"], r["ytr"], (r["d_oof"] >= t).astype(np.int64)
    )
    fold_wall = sum(f["wall_s"] for f in r["fold_facts"])
    facts = {
        "name": args.name,
        "version": VERSION,
        "arch": "alexnet_spp (features: GAP of pool5, 256-d) + StandardScaler + RBF SVC",
        "variant": cfg.variant,
        "onnx": str(onnx_path),
        "size_mb": round(onnx_path.stat().st_size / 1e6, 2),
        "opset": {
            (o.domain or "ai.onnx"): o.version
            for o in onnx.load(str(onnx_path), load_external_data=False).opset_import
        },
        "meta": meta.to_props(),
        "params": {
            "feature_net": int(params_net),
            "svm_support_vectors": n_sv,
            "svm_values": int(n_sv * 257 + 2 * 256 + 1),
            "total": int(params_net + n_sv * 257 + 2 * 256 + 1),
        },
        "flops": {
            "feature_net": int(flops_net),
            "svm": int(flops_svm),
            "gflops_total": round((flops_net + flops_svm) / 1e9, 3),
            "counting": "2 x multiply-adds of Conv2d/Linear (models.export.count_flops), once "
            f"per flip view ({len(r['views'])}), + SVM",
        },
        "latency_ort_cpu": latency,
        "machine": f"{platform.machine()} CPU, onnxruntime {ort.__version__}, 2 threads",
        "input_size_decision": {
            "chosen": list(cfg.input_size),
            "experiment": experiment,
            "rule": "higher CV (out-of-fold) and validation balanced accuracy; ties -> cheaper",
        },
        "views": {
            "chosen": list(r["views"]),
            "rule": "flip-view set with the highest out-of-fold ROC AUC (ties: fewer views); "
            "the SVM decision is averaged over the views inside the ONNX graph",
            "candidates": r["view_table"],
        },
        "svm_search": {
            "space": "log2 C in [-5, 15], log2 gamma in [-15, 3]",
            "objective": "1 - balanced accuracy of out-of-fold predictions (+1e-3 mean hinge)",
            "folds": f"{args.cv_folds}-fold stratified grouped CV of the training split, "
            "fold nets retrained per fold",
            "ssa": r["searches"]["ssa"],
            "grid": r["searches"]["grid"],
            "used": "ssa",
        },
        "threshold": {
            "decision_value_t": round(t, 6),
            "platt_slope_a": round(a, 6),
            "logits": "[-z/2, z/2], z = a * (d - t), d = SVM decision value; argmax = NG if d >= t",
            "rule": f"on the pooled out-of-fold CV + validation decision values: the largest "
            f"t <= 0 with defective recall >= {args.recall_target} among thresholds keeping "
            f"accuracy >= {args.accuracy_floor}; if none reaches that recall, the one with the "
            "highest recall (then fewest false alarms)",
            "pooled_at_chosen": _metrics_at(d_all, y_all, t),
            "pooled_at_0": _metrics_at(d_all, y_all, 0.0),
            f"recall_{args.recall_target}_threshold": {
                "t": round(t_recall, 6),
                "pooled": _metrics_at(d_all, y_all, t_recall),
                "validation": _metrics_at(r["d_val"], r["yva"], t_recall),
                "cv_out_of_fold": _metrics_at(r["d_oof"], r["ytr"], t_recall),
            },
            "sweep": [
                {
                    "t": round(float(tt), 4),
                    "val_acc_recall": [
                        round(_metrics_at(r["d_val"], r["yva"], tt)[k], 4)
                        for k in ("accuracy", "recall_defective")
                    ],
                    "cv_acc_recall": [
                        round(_metrics_at(r["d_oof"], r["ytr"], tt)[k], 4)
                        for k in ("accuracy", "recall_defective")
                    ],
                }
                for tt in (0.0, -0.1, -0.2, -0.3, -0.4, -0.5, -0.6, -0.8, -1.0)
            ],
        },
        "validation": val_at,
        "validation_onnx": onnx_val,
        "cv_out_of_fold": cv_at,
        "validation_head_argmax": r["head_val"],
        "parity": parity,
        "split": {
            "train": len(r["train"]),
            "train_defective": int(r["ytr"].sum()),
            "val": len(r["val"]),
            "val_defective": int(r["yva"].sum()),
            "seed": args.seed,
            "val_fraction": 0.2,
        },
        "training": {
            "config": cfg.to_dict(),
            "final_net_wall_s": r["final_facts"]["wall_s"],
            "cv_fold_nets_wall_s": round(fold_wall, 1),
            "threads": args.threads,
            "history": r["final_facts"]["history"],
            "command": "python -m models.svm.train_screen --data ../shared/datasets/ksdd "
            f"--out runs/alexnet_svm --input-size {h}x{w} --variant {cfg.variant} "
            f"--epochs {cfg.epochs} --cv-folds {args.cv_folds} --threads {args.threads}"
            + (f" --compare-sizes {args.compare_sizes}" if args.compare_sizes else "")
            + (f" --net-seed {args.net_seed}" if args.net_seed is not None else "")
            + (f" --views {args.views} --name {args.name}" if args.views else ""),
            "invocation_wall_s": round(time.time() - t_all, 1),
            "note": "nets already in <out>/nets are loaded, not retrained; the *_wall_s of the "
            "nets are their original training times (torch threads as in 'threads')",
        },
        "localisation": "not in this graph: boxes from a KolektorSDD segmenter's mask via "
        "models.svm.localize (Faster R-CNN of the paper not implemented)",
        "dataset_license": "KolektorSDD, CC BY-NC-SA 4.0 (research use)",
    }
    facts_path = out / ("card_facts.json" if args.name == "alexnet_svm" else f"{args.name}.json")
    facts_path.write_text(json.dumps(facts, indent=2, default=str))
    _log(f"wrote {facts_path}")
    return facts


if __name__ == "__main__":
    main()
