"""EASE (Steck, "Embarrassingly Shallow Autoencoders for Sparse Data", WWW 2019).

An item-item weight matrix ``B`` that minimises ``||X - X B||^2 + lam ||B||^2``
subject to ``diag(B) = 0``, with the closed form

    P = (X^T X + lam I)^-1,   B_ij = -P_ij / P_jj  (i != j),   B_jj = 0.

A user's scores are ``x_u B``: one dense row over the catalog.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def ease_weights(x: np.ndarray, lam: float) -> np.ndarray:
    """The EASE item-item matrix for the (users x items) interaction matrix ``x``."""
    if lam <= 0:
        raise ValueError("lam must be positive (it keeps the Gram matrix invertible)")
    x = np.asarray(x, dtype=np.float64)
    gram = x.T @ x
    gram[np.diag_indices_from(gram)] += lam
    p = np.linalg.inv(gram)
    b = -p / np.diag(p)[None, :]
    b[np.diag_indices_from(b)] = 0.0
    return b


@dataclass
class Ease:
    """Fitted EASE: ``score(users)`` is ``x[users] @ B`` (float32)."""

    x: np.ndarray  # users x items, float32, binary
    b: np.ndarray  # items x items, float32

    @classmethod
    def fit(cls, x: np.ndarray, lam: float) -> Ease:
        return cls(x=np.asarray(x, dtype=np.float32), b=ease_weights(x, lam).astype(np.float32))

    def score(self, users: np.ndarray) -> np.ndarray:
        return self.x[users] @ self.b


def interaction_matrix(user_rows: np.ndarray, item_rows: np.ndarray, num_users: int, num_items: int) -> np.ndarray:
    """Dense binary (users x items) float32 matrix: 1 where the user interacted with the item."""
    x = np.zeros((num_users, num_items), dtype=np.float32)
    x[user_rows, item_rows] = 1.0
    return x
