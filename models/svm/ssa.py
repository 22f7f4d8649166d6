"""Sparrow Search Algorithm (SSA) minimising a function over a box.

Sources. The paper (Cai, improved AlexNet-SVM and Fast RCNN, Sec. 2.1.2 (1)) gives two update rules:

* Eq. (5), producers ("discoverers")::

      X[i,j](t+1) = X[i,j](t) * exp(-i / (alpha * iter_max))   if R2 <  ST
                  = X[i,j](t) + Q * L                          if R2 >= ST

  with ``alpha ~ U(0, 1]``, alarm value ``R2 ~ U[0, 1]``, safety threshold ``ST in [0.5, 1]``,
  ``Q ~ N(0, 1)`` and ``L`` a 1 x d row of ones;
* Eq. (6), scroungers ("followers")::

      X[i,j](t+1) = Q * exp((X_worst(t) - X[i,j](t)) / i^2)          if i > n / 2
                  = X_P(t+1) + |X[i,j](t) - X_P(t+1)| A+ L           otherwise

  with ``A`` a 1 x d row of random +-1 and ``A+ = A^T (A A^T)^-1``.

The text stops there. From the original SSA definition (Xue & Shen, "A novel swarm intelligence
optimization approach: sparrow search algorithm", Systems Science & Control Engineering 8(1),
2020) we take: the population sorted by fitness each iteration with the first ``PD`` sparrows as
producers (the rest scroungers); one ``R2`` draw per iteration; ``X_P`` = the best producer after
the producer step and ``X_worst`` = the current worst; and the danger-aware step (Eq. (5) of
Xue & Shen), applied to ``SD`` randomly chosen sparrows::

      X(t+1) = X_best(t) + beta * |X(t) - X_best(t)|                     if f_i > f_g
             = X(t) + K * |X(t) - X_worst(t)| / ((f_i - f_w) + eps)       if f_i = f_g

  with ``beta ~ N(0, 1)``, ``K ~ U[-1, 1]``, ``f_g``/``f_w`` the current best/worst fitness.
  Positions are clipped to the box after every step.

Our choices (documented deviations)
-----------------------------------
1. The search runs in box-normalised coordinates ``u = 2 (x - lo) / (hi - lo) - 1 in [-1, 1]``.
   Eq. (5)'s ``exp(-i / (alpha iter_max))`` contraction pulls towards ``u = 0`` (the box
   centre), not towards the arbitrary origin of the user's units.
2. Greedy (elitist) acceptance: a sparrow moves only if its new position is at least as good.
   Plain SSA is known to drift towards the origin on shifted functions; with greedy acceptance
   the contraction of Eq. (5) is still explored but never loses a good position. Set
   ``greedy=False`` for the textbook behaviour.
3. Evaluations are memoised on the exact position (the SVM objective is deterministic).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np


@dataclass
class SSAResult:
    """Best position and value, evaluation count and per-iteration best values."""

    x: np.ndarray
    fun: float
    nfev: int
    history: list[float] = field(default_factory=list)


def _a_plus_l(d: int, rng: np.random.Generator) -> np.ndarray:
    """``A+ L`` of Eq. (6): ``A`` 1 x d of +-1, ``A+ = A^T (A A^T)^-1`` (d x 1), ``L`` 1 x d."""
    a = rng.choice([-1.0, 1.0], size=(1, d))
    a_plus = a.T @ np.linalg.inv(a @ a.T)
    return a_plus @ np.ones((1, d))  # d x d; row vector |X - X_P| @ this = the Eq. (6) step


def ssa_minimize(
    func: Callable[[np.ndarray], float],
    bounds: Sequence[tuple[float, float]],
    n: int = 20,
    iters: int = 30,
    producers: float = 0.2,
    scouts: float = 0.2,
    st: float = 0.8,
    seed: int = 0,
    greedy: bool = True,
) -> SSAResult:
    """Minimise ``func`` over the box ``bounds`` (list of ``(lo, hi)``) with SSA.

    ``producers``/``scouts`` are the fractions PD and SD of the population ``n``; ``st`` is the
    safety threshold ST. Deterministic for a given ``seed``.
    """
    if not 0.5 <= st <= 1.0:
        raise ValueError("safety threshold ST must lie in [0.5, 1]")
    lo = np.array([b[0] for b in bounds], dtype=float)
    hi = np.array([b[1] for b in bounds], dtype=float)
    d = len(bounds)
    rng = np.random.default_rng(seed)
    cache: dict[bytes, float] = {}

    def to_x(u: np.ndarray) -> np.ndarray:
        return lo + (u + 1.0) * 0.5 * (hi - lo)

    def f(u: np.ndarray) -> float:
        key = u.tobytes()
        if key not in cache:
            cache[key] = float(func(to_x(u)))
        return cache[key]

    pd = max(1, int(round(producers * n)))
    sd = max(1, int(round(scouts * n)))
    pos = rng.uniform(-1.0, 1.0, size=(n, d))
    fit = np.array([f(p) for p in pos])
    best_i = int(fit.argmin())
    gbest, gval = pos[best_i].copy(), float(fit[best_i])
    history: list[float] = []

    def move(i: int, new: np.ndarray) -> None:
        nonlocal gbest, gval
        new = np.clip(new, -1.0, 1.0)
        val = f(new)
        if not greedy or val <= fit[i]:
            pos[i], fit[i] = new, val
        if val < gval:
            gbest, gval = new.copy(), val

    for _ in range(iters):
        order = np.argsort(fit, kind="stable")
        pos, fit = pos[order], fit[order]
        worst = pos[-1].copy()
        r2 = rng.uniform()
        # Eq. (5): producers (rank i = 1..PD)
        for k in range(pd):
            rank = k + 1
            if r2 < st:
                alpha = rng.uniform(np.finfo(float).eps, 1.0)
                move(k, pos[k] * np.exp(-rank / (alpha * iters)))
            else:
                move(k, pos[k] + rng.standard_normal() * np.ones(d))
        xp = pos[int(fit[:pd].argmin())].copy()
        # Eq. (6): scroungers (rank i = PD+1..n)
        for k in range(pd, n):
            rank = k + 1
            if rank > n / 2:
                move(k, rng.standard_normal() * np.exp((worst - pos[k]) / rank**2))
            else:
                move(k, xp + np.abs(pos[k] - xp) @ _a_plus_l(d, rng))
        # danger-aware sparrows (Xue & Shen Eq. (5))
        f_g, f_w = float(fit.min()), float(fit.max())
        x_best, x_worst = pos[int(fit.argmin())].copy(), pos[int(fit.argmax())].copy()
        for k in rng.choice(n, size=sd, replace=False):
            if fit[k] > f_g:
                move(k, x_best + rng.standard_normal() * np.abs(pos[k] - x_best))
            else:
                kk = rng.uniform(-1.0, 1.0)
                move(k, pos[k] + kk * np.abs(pos[k] - x_worst) / ((fit[k] - f_w) + 1e-12))
        history.append(gval)
    return SSAResult(x=to_x(gbest), fun=gval, nfev=len(cache), history=history)
