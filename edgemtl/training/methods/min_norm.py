"""The exact min-norm point of the convex hull of T task gradients (MGDA-UB's weights).

Pure numpy on the T x T Gram matrix: the trainer calls it once per step with T
(the number of tasks) small, so enumerating every face of the simplex is both
exact and cheap (2^T - 1 faces of at most T + 1 unknowns; T = 8: 255 tiny
solves, about 5 ms).
"""

from __future__ import annotations

import itertools

import numpy as np

#: Face enumeration costs 2^T solves; past this many tasks it would dominate a step.
MAX_TASKS = 12


def min_norm_weights(gram: np.ndarray) -> np.ndarray:
    """argmin over the simplex {a >= 0, sum a = 1} of a^T G a, G_ij = g_i . g_j.

    The min-norm point v* = sum_t a_t g_t of the convex hull of the task gradients
    (Sener & Koltun 2018, "Multi-Task Learning as Multi-Objective Optimization",
    Eq. 3 / §3.2). Exact by enumeration: the optimum lies in the relative interior
    of one face S of the simplex, where it solves that face's KKT system
    (Nocedal & Wright, "Numerical Optimization", §16.1, equality-constrained QP)

        [G_SS  1] [a_S]   [0]
        [1^T   0] [ mu] = [1],        a_i = 0 for i not in S,

    whose least-squares solution (`numpy.linalg.lstsq`) also covers singular G_SS
    (affinely dependent gradients). Among the faces whose solution is feasible
    (a_S >= 0) the one with the smallest a^T G a is the optimum: the point
    v* is unique; the weights are unique only when G is non-singular.

    Args:
        gram: T x T symmetric positive semi-definite matrix (any float dtype;
            computed in float64), 1 <= T <= MAX_TASKS.

    Returns:
        float64 array of T weights, each >= 0, summing to 1.

    Raises:
        ValueError: `gram` is not square, has non-finite entries, or T is
            outside 1..MAX_TASKS.
    """
    g = np.asarray(gram, dtype=np.float64)
    if g.ndim != 2 or g.shape[0] != g.shape[1]:
        raise ValueError(f"min_norm_weights: expected a square Gram matrix, got shape {g.shape}")
    n = g.shape[0]
    if not 1 <= n <= MAX_TASKS:
        raise ValueError(f"min_norm_weights: {n} tasks; the exact solver takes 1 to {MAX_TASKS}")
    if not np.isfinite(g).all():
        raise ValueError("min_norm_weights: the Gram matrix has non-finite entries")
    g = 0.5 * (g + g.T)
    scale = float(np.max(np.abs(np.diag(g))))
    if scale == 0.0:  # every gradient is zero: any point of the simplex is optimal
        return np.full(n, 1.0 / n)
    g = g / scale  # entries O(1): tolerances below are relative to the largest |g_t|^2
    best_a, best_value = np.zeros(n), np.inf
    best_a[int(np.argmin(np.diag(g)))] = 1.0  # the best vertex: always feasible
    best_value = float(np.min(np.diag(g)))
    for size in range(2, n + 1):
        for face in itertools.combinations(range(n), size):
            idx = list(face)
            kkt = np.zeros((size + 1, size + 1))
            kkt[:size, :size] = g[np.ix_(idx, idx)]
            kkt[:size, size] = 1.0
            kkt[size, :size] = 1.0
            rhs = np.zeros(size + 1)
            rhs[size] = 1.0
            sol = np.linalg.lstsq(kkt, rhs, rcond=None)[0][:size]
            if not np.isfinite(sol).all() or sol.min() < -1e-12:
                continue
            a = np.zeros(n)
            a[idx] = np.clip(sol, 0.0, None)
            total = a.sum()
            if total <= 0.0:
                continue
            a /= total
            value = float(a @ g @ a)
            if value < best_value:
                best_a, best_value = a, value
    return best_a
