"""The exact min-norm solver (MGDA-UB) against exact rational arithmetic and the KKT conditions.

The reference enumerates every face of the simplex with `fractions.Fraction`
(exact Gaussian elimination, exactly singular faces skipped: the optimum always
lies on an affinely independent face), so it shares no floating-point code with
the solver. Tolerance: 1e-8 relative to the largest gradient norm, on the
min-norm VECTOR (the weights are not unique when the Gram matrix is singular).
"""

from __future__ import annotations

import itertools
from fractions import Fraction

import numpy as np
import pytest

from edgemtl.training.methods.min_norm import MAX_TASKS, min_norm_weights

TOL = 1e-8


def _solve(matrix: list[list[Fraction]], rhs: list[Fraction]) -> list[Fraction] | None:
    """Exact Gauss-Jordan elimination; None when the matrix is singular."""
    n = len(matrix)
    rows = [row[:] + [rhs[i]] for i, row in enumerate(matrix)]
    for col in range(n):
        pivot = next((i for i in range(col, n) if rows[i][col] != 0), None)
        if pivot is None:
            return None
        rows[col], rows[pivot] = rows[pivot], rows[col]
        for i in range(n):
            if i != col and rows[i][col] != 0:
                factor = rows[i][col] / rows[col][col]
                rows[i] = [x - factor * y for x, y in zip(rows[i], rows[col])]
    return [rows[i][n] / rows[i][i] for i in range(n)]


def exact_min_norm_point(grads: np.ndarray) -> np.ndarray:
    """The min-norm point of the convex hull of the rows, in exact rationals."""
    g = [[Fraction(float(x)) for x in row] for row in grads]
    t = len(g)
    gram = [[sum(x * y for x, y in zip(g[i], g[j])) for j in range(t)] for i in range(t)]
    best: tuple[Fraction, list[Fraction]] | None = None
    for size in range(1, t + 1):
        for face in itertools.combinations(range(t), size):
            kkt = [[gram[i][j] for j in face] + [Fraction(1)] for i in face]
            kkt.append([Fraction(1)] * size + [Fraction(0)])
            sol = _solve(kkt, [Fraction(0)] * size + [Fraction(1)])
            if sol is None or any(a < 0 for a in sol[:size]):
                continue
            v = [sum(sol[k] * g[i][d] for k, i in enumerate(face)) for d in range(len(g[0]))]
            value = sum(x * x for x in v)
            if best is None or value < best[0]:
                best = (value, v)
    assert best is not None
    return np.array([float(x) for x in best[1]])


def check(grads: np.ndarray, expected: np.ndarray) -> np.ndarray:
    """Solver weights: on the simplex, KKT-optimal, and giving the expected min-norm vector."""
    gram = grads @ grads.T
    a = min_norm_weights(gram)
    scale = float(np.linalg.norm(grads, axis=1).max())
    assert a.dtype == np.float64 and a.shape == (len(grads),)
    assert a.min() >= 0 and a.sum() == pytest.approx(1.0, abs=1e-12)
    v = a @ grads
    assert np.linalg.norm(v - expected) <= TOL * scale, (v, expected)
    # KKT of min a^T G a on the simplex: (G a)_i >= a^T G a for every i, equality on the support.
    g_a, value = gram @ a, float(a @ gram @ a)
    assert (g_a >= value - TOL * scale**2).all()
    assert np.abs(g_a[a > 1e-9] - value).max() <= TOL * scale**2
    return a


def test_vertex_optimum() -> None:
    # g1 lies in the cone where every other point is farther: the hull's min-norm point is g1.
    grads = np.array([[1.0, 0.2], [3.0, -1.0], [2.5, 2.0]])
    a = check(grads, grads[0])
    assert a.tolist() == pytest.approx([1.0, 0.0, 0.0], abs=1e-12)


def test_edge_optimum() -> None:
    # g1 = (1, 1), g2 = (1, -1): midpoint (1, 0); g3 = (2, 0.5) is farther and gets weight 0.
    grads = np.array([[1.0, 1.0], [1.0, -1.0], [2.0, 0.5]])
    a = check(grads, np.array([1.0, 0.0]))
    assert a.tolist() == pytest.approx([0.5, 0.5, 0.0], abs=1e-12)


def test_interior_optimum_is_the_origin_when_the_hull_contains_it() -> None:
    grads = np.array([[1.0, 0.0], [-0.5, 0.8], [-0.5, -0.8]])
    check(grads, np.zeros(2))


def test_small_min_norm_vector_three_tasks() -> None:
    # The case Frank-Wolfe stopped short on: a tiny min-norm vector far from every vertex.
    grads = np.array([[1.0, 0.0, 1e-3], [-1.0, 1e-2, 1e-3], [0.0, -1.0, 1e-3]])
    check(grads, exact_min_norm_point(grads))


@pytest.mark.parametrize(
    "kind", ["random", "nearly collinear", "rank deficient", "shifted (edge/face optima)"]
)
def test_random_gradient_sets_against_exact_arithmetic(kind: str) -> None:
    rng = np.random.default_rng(len(kind))
    for _ in range(6):
        tasks, dim = int(rng.integers(2, 9)), int(rng.integers(2, 12))
        grads = rng.normal(size=(tasks, dim))
        if kind == "nearly collinear":
            grads = grads[0] + 1e-6 * grads
        elif kind == "rank deficient":
            grads = rng.normal(size=(tasks, 2)) @ rng.normal(size=(2, dim))
        elif kind.startswith("shifted"):
            grads = grads + 3.0 * rng.normal(size=dim)
        check(grads, exact_min_norm_point(grads))


def test_eight_identical_gradients_and_zero_gradients() -> None:
    g = np.tile(np.array([[0.3, -1.2, 2.0]]), (8, 1))
    check(g, g[0])
    assert min_norm_weights(np.zeros((3, 3))).tolist() == pytest.approx([1 / 3] * 3)


def test_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="square"):
        min_norm_weights(np.zeros((2, 3)))
    with pytest.raises(ValueError, match="non-finite"):
        min_norm_weights(np.array([[1.0, np.nan], [np.nan, 1.0]]))
    with pytest.raises(ValueError, match=f"1 to {MAX_TASKS}"):
        min_norm_weights(np.eye(MAX_TASKS + 1))
