"""EASE's closed form on a hand-made matrix, checked against its definition."""

import numpy as np
import pytest

from benchmarks.baselines.ease import Ease, ease_weights, interaction_matrix

X = np.array(
    [
        [1, 1, 0, 0],
        [1, 1, 1, 0],
        [0, 1, 1, 0],
        [0, 0, 1, 1],
        [1, 0, 0, 1],
    ],
    dtype=np.float64,
)


def test_two_items_by_hand():
    # X^T X = [[3, 2], [2, 3]]; G = X^T X + 1 I = [[4, 2], [2, 4]]; P = G^-1 = [[4, -2], [-2, 4]] / 12
    # B_01 = -P_01 / P_11 = (2/12) / (4/12) = 1/2, symmetric; diagonal 0.
    x = np.array([[1, 1], [1, 1], [1, 0], [0, 1]], dtype=np.float64)
    b = ease_weights(x, lam=1.0)
    assert b == pytest.approx(np.array([[0.0, 0.5], [0.5, 0.0]]))


@pytest.mark.parametrize("lam", [0.5, 2.0, 10.0])
def test_each_column_is_the_constrained_ridge_solution(lam):
    # diag(B) = 0 makes column j a ridge regression of item j on the other items:
    # b_{-j,j} = (X_{-j}^T X_{-j} + lam I)^-1 X_{-j}^T x_j
    b = ease_weights(X, lam)
    n = X.shape[1]
    assert np.allclose(np.diag(b), 0.0)
    for j in range(n):
        others = [i for i in range(n) if i != j]
        xo = X[:, others]
        expected = np.linalg.solve(xo.T @ xo + lam * np.eye(n - 1), xo.T @ X[:, j])
        assert b[others, j] == pytest.approx(expected, rel=1e-9, abs=1e-12)


def test_objective_is_minimal_among_zero_diagonal_perturbations():
    lam = 1.5
    b = ease_weights(X, lam)

    def loss(m):
        return float(((X - X @ m) ** 2).sum() + lam * (m**2).sum())

    rng = np.random.default_rng(0)
    for _ in range(20):
        d = rng.normal(scale=1e-2, size=b.shape)
        np.fill_diagonal(d, 0.0)
        assert loss(b) <= loss(b + d)


def test_scores_and_validation():
    x = interaction_matrix(np.array([0, 0, 1, 2]), np.array([0, 1, 1, 3]), num_users=3, num_items=4)
    assert x.tolist() == [[1, 1, 0, 0], [0, 1, 0, 0], [0, 0, 0, 1]]
    model = Ease.fit(x, lam=1.0)
    scores = model.score(np.array([0, 2]))
    assert scores.shape == (2, 4) and scores.dtype == np.float32
    assert scores == pytest.approx(x[[0, 2]] @ ease_weights(x, 1.0), abs=1e-6)
    with pytest.raises(ValueError):
        ease_weights(x, 0.0)
