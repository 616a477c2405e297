"""Item-based k-nearest neighbours with cosine similarity (Sarwar et al. 2001).

``S[i, j]`` is the cosine of items i and j over the users' binary interaction
vectors, zero on the diagonal; each item keeps its ``neighbours`` most similar
items (0 = all). A user's (or a session's) scores are ``x S``: every given
item votes for its neighbours with its similarity.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def cosine_neighbours(x: np.ndarray, neighbours: int = 0) -> np.ndarray:
    """(items x items) float32 cosine similarity of the columns of ``x``, each row
    cut to its ``neighbours`` largest entries (0 = keep all)."""
    x = np.asarray(x, dtype=np.float32)
    norms = np.sqrt((x * x).sum(axis=0))
    inv = np.divide(1.0, norms, out=np.zeros_like(norms), where=norms > 0)
    sim = (x.T @ x) * inv[:, None] * inv[None, :]
    np.fill_diagonal(sim, 0.0)
    if 0 < neighbours < sim.shape[1]:
        cut = np.argpartition(-sim, neighbours - 1, axis=1)[:, neighbours:]
        np.put_along_axis(sim, cut, 0.0, axis=1)
    return sim


@dataclass
class ItemKnn:
    x: np.ndarray | None  # (users or sessions) x items, binary; None where only score() is called
    sim: np.ndarray  # items x items

    def score(self, rows: np.ndarray) -> np.ndarray:
        if self.x is None:
            raise ValueError("ItemKnn has no rows to score: set x (the users' or sessions' items) first")
        return self.x[rows] @ self.sim
