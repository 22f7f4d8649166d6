"""RBF-SVM hyper-parameters (C, gamma) by SSA and by grid search on the same CV folds.

Pipeline: ``StandardScaler`` -> ``SVC(kernel="rbf", class_weight="balanced")``. The search
space is ``(log2 C, log2 gamma)`` in ``[-5, 15] x [-15, 3]`` (the LIBSVM guide's box). Folds:
stratified *grouped* k-fold on the training split (near-duplicate images stay in one fold).

Objective (minimised): ``1 - balanced accuracy`` of the out-of-fold predictions, plus a tiny
tie-breaker ``1e-3 * mean(hinge loss)`` of the standardised out-of-fold decision values, so
that among equally accurate settings the one with the widest out-of-fold margins wins (on
features that separate the training images perfectly many settings tie at 0).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from sklearn.model_selection import StratifiedGroupKFold
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC

from models.svm.ssa import ssa_minimize

BOX = ((-5.0, 15.0), (-15.0, 3.0))


def make_svm(log2c: float, log2g: float) -> Pipeline:
    """The scaler + RBF SVM pipeline at ``C = 2**log2c``, ``gamma = 2**log2g``."""
    return make_pipeline(
        StandardScaler(), SVC(C=2.0**log2c, gamma=2.0**log2g, class_weight="balanced")
    )


def cv_folds(y: np.ndarray, groups: np.ndarray, k: int = 5, seed: int = 0) -> list:
    """Stratified grouped k-fold (train, test) index pairs."""
    skf = StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=seed)
    return list(skf.split(np.zeros(len(y)), y, groups))


def oof_decision(
    X: np.ndarray, y: np.ndarray, folds: list, log2c: float, log2g: float
) -> tuple[np.ndarray, np.ndarray]:
    """Decision values on every fold's test rows (concatenated) and the matching labels.

    ``folds`` index rows of ``X``/``y``; the test rows of all folds need not cover ``X`` (see
    :class:`models.svm.train_screen.NestedFolds`, whose ``X`` stacks one block per fold net).
    """
    d, t = [], []
    for tr, te in folds:
        d.append(make_svm(log2c, log2g).fit(X[tr], y[tr]).decision_function(X[te]))
        t.append(y[te])
    return np.concatenate(d), np.concatenate(t)


def balanced_accuracy(y: np.ndarray, pred: np.ndarray) -> float:
    return float(np.mean([np.mean(pred[y == c] == c) for c in np.unique(y)]))


def make_objective(X: np.ndarray, y: np.ndarray, folds: list) -> Callable[[np.ndarray], float]:
    """``f([log2 C, log2 gamma]) = 1 - balanced accuracy + 1e-3 * mean hinge`` (out of fold)."""

    def f(p: np.ndarray) -> float:
        d, t = oof_decision(X, y, folds, float(p[0]), float(p[1]))
        hinge = np.maximum(0.0, 1.0 - np.where(t == 1, 1.0, -1.0) * d).mean()
        return 1.0 - balanced_accuracy(t, (d > 0).astype(int)) + 1e-3 * float(hinge)

    return f


def _cv_ba(X: np.ndarray, y: np.ndarray, folds: list, log2c: float, log2g: float) -> float:
    d, t = oof_decision(X, y, folds, log2c, log2g)
    return balanced_accuracy(t, (d > 0).astype(int))


@dataclass
class SearchResult:
    """Best ``(log2 C, log2 gamma)``, its CV objective and balanced accuracy, cost."""

    method: str
    log2c: float
    log2g: float
    objective: float
    cv_balanced_accuracy: float
    evaluations: int
    wall_s: float

    def as_dict(self) -> dict:
        return {
            "method": self.method,
            "C": 2.0**self.log2c,
            "gamma": 2.0**self.log2g,
            "log2C": round(self.log2c, 4),
            "log2gamma": round(self.log2g, 4),
            "cv_objective": round(self.objective, 6),
            "cv_balanced_accuracy": round(self.cv_balanced_accuracy, 4),
            "evaluations": self.evaluations,
            "wall_s": round(self.wall_s, 2),
        }


def ssa_search(
    X: np.ndarray, y: np.ndarray, folds: list, n: int = 20, iters: int = 30, seed: int = 0
) -> SearchResult:
    """SSA over ``BOX`` (see :mod:`models.svm.ssa`)."""
    f = make_objective(X, y, folds)
    t0 = time.time()
    r = ssa_minimize(f, BOX, n=n, iters=iters, seed=seed)
    ba = _cv_ba(X, y, folds, *map(float, r.x))
    return SearchResult("ssa", *map(float, r.x), r.fun, ba, r.nfev, time.time() - t0)


def grid_search(X: np.ndarray, y: np.ndarray, folds: list, step: float = 1.0) -> SearchResult:
    """Exhaustive grid over ``BOX`` with ``step`` in log2 units (LIBSVM-style)."""
    f = make_objective(X, y, folds)
    t0 = time.time()
    best = (np.inf, 0.0, 0.0)
    count = 0
    for lc in np.arange(BOX[0][0], BOX[0][1] + 1e-9, step):
        for lg in np.arange(BOX[1][0], BOX[1][1] + 1e-9, step):
            v = f(np.array([lc, lg]))
            count += 1
            if v < best[0]:
                best = (v, float(lc), float(lg))
    ba = _cv_ba(X, y, folds, best[1], best[2])
    return SearchResult("grid", best[1], best[2], best[0], ba, count, time.time() - t0)
