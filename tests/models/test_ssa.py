"""Sparrow Search Algorithm (``models.svm.ssa``): finds known minima, deterministic per seed."""

from __future__ import annotations

import numpy as np
import pytest

from models.svm.ssa import _a_plus_l, ssa_minimize


def shifted_sphere(x: np.ndarray) -> float:
    return float(((x - np.array([3.0, -2.0])) ** 2).sum())


def rosenbrock(x: np.ndarray) -> float:
    return float((1 - x[0]) ** 2 + 100 * (x[1] - x[0] ** 2) ** 2)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_shifted_sphere(seed: int) -> None:
    r = ssa_minimize(shifted_sphere, [(-10, 10), (-10, 10)], n=20, iters=50, seed=seed)
    assert np.allclose(r.x, [3.0, -2.0], atol=0.1)
    assert r.fun < 1e-2
    assert r.history == sorted(r.history, reverse=True)  # best-so-far never gets worse


def test_rosenbrock() -> None:
    r = ssa_minimize(rosenbrock, [(-5, 5), (-5, 5)], n=20, iters=50, seed=0)
    assert np.allclose(r.x, [1.0, 1.0], atol=0.05)
    assert r.fun < 1e-3


def test_minimum_off_centre_of_asymmetric_box() -> None:
    # the (log2 C, log2 gamma) box of the SVM search, optimum near a corner
    target = np.array([12.0, -13.0])
    r = ssa_minimize(lambda x: float(((x - target) ** 2).sum()), [(-5, 15), (-15, 3)], seed=0)
    assert np.allclose(r.x, target, atol=0.2)


def test_deterministic_for_seed() -> None:
    a = ssa_minimize(rosenbrock, [(-5, 5), (-5, 5)], n=10, iters=10, seed=7)
    b = ssa_minimize(rosenbrock, [(-5, 5), (-5, 5)], n=10, iters=10, seed=7)
    c = ssa_minimize(rosenbrock, [(-5, 5), (-5, 5)], n=10, iters=10, seed=8)
    assert np.array_equal(a.x, b.x) and a.fun == b.fun and a.history == b.history
    assert not np.array_equal(a.x, c.x)


def test_stays_in_box() -> None:
    seen = []

    def f(x: np.ndarray) -> float:
        seen.append(x.copy())
        return float(-x.sum())  # minimum at the upper corner

    r = ssa_minimize(f, [(0, 1), (-2, -1)], n=8, iters=10, seed=0)
    pts = np.array(seen)
    assert (pts[:, 0] >= 0).all() and (pts[:, 0] <= 1).all()
    assert (pts[:, 1] >= -2).all() and (pts[:, 1] <= -1).all()
    assert np.allclose(r.x, [1, -1], atol=1e-6)


def test_pseudo_inverse_step() -> None:
    # A+ = A^T (A A^T)^-1 for a 1 x d row of +-1 is A^T / d; A+ L is d x d with equal columns
    rng = np.random.default_rng(0)
    m = _a_plus_l(4, rng)
    assert m.shape == (4, 4)
    assert np.allclose(np.abs(m), 0.25)
    assert np.allclose(m, m[:, :1])


def test_rejects_bad_safety_threshold() -> None:
    with pytest.raises(ValueError):
        ssa_minimize(rosenbrock, [(-1, 1), (-1, 1)], st=0.3)
