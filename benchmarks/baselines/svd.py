"""Truncated SVD of the interaction matrix (PureSVD, Cremonesi et al. 2010),
through scikit-learn's ``TruncatedSVD``.

With ``X ~ U S V^T`` (rank ``k``), a user's scores are the projection of
their row onto the top ``k`` item factors: ``x_u V V^T``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class PureSvd:
    x: np.ndarray  # users x items, float32, binary
    item_factors: np.ndarray  # items x k (V)

    def score(self, users: np.ndarray) -> np.ndarray:
        return (self.x[users] @ self.item_factors) @ self.item_factors.T


def fit_svd(x: np.ndarray, components: int, seed: int = 42) -> PureSvd:
    """Top ``components`` right singular vectors of the (users x items) matrix ``x``
    (randomized solver, seeded)."""
    import scipy.sparse as sp
    from sklearn.decomposition import TruncatedSVD

    k = max(1, min(components, min(x.shape) - 1))
    svd = TruncatedSVD(n_components=k, algorithm="randomized", n_iter=10, random_state=seed)
    svd.fit(sp.csr_matrix(x))
    return PureSvd(x=np.asarray(x, dtype=np.float32), item_factors=svd.components_.T.astype(np.float32))
