"""LightFM with the WARP loss and item features (Kula 2015), the optional
``lightfm`` package (1.17; it builds from source with
``pip install "pip<25"`` then ``pip install --no-use-pep517 --no-build-isolation lightfm==1.17``).
Absent package -> :func:`available` is False and the quality benchmark reports
LightFM as skipped.

Item features: each item's own indicator plus its metadata tokens (MovieLens:
genres and release decade), each row scaled to sum 1 (LightFM's usual
normalisation), so an item's vector is the mean of its id's and its tokens'.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd


def available() -> tuple[bool, str]:
    """(True, version) when ``lightfm`` imports, else (False, why)."""
    try:
        import lightfm
    except Exception as exc:  # ImportError or a broken build
        return False, f"lightfm not importable ({exc.__class__.__name__}: {exc}); see benchmarks/baselines/lightfm_warp.py"
    return True, str(getattr(lightfm, "__version__", "unknown"))


def item_features(items: pd.DataFrame) -> tuple[object, list[str]]:
    """(scipy CSR [items x (items + tokens)], token names): identity + metadata tokens, rows summing to 1.

    Tokens: every value of list columns (``genres``, ``tags``), ``category``
    and ``brand`` values, and the decade of ``year``."""
    import scipy.sparse as sp

    n = len(items)
    rows, cols, names = list(range(n)), list(range(n)), list[str]()
    index: dict[str, int] = {}

    def add(row: int, token: str) -> None:
        if token not in index:
            index[token] = n + len(names)
            names.append(token)
        rows.append(row)
        cols.append(index[token])

    for column in ("genres", "tags", "category", "brand", "year"):
        if column not in items.columns:
            continue
        for row, value in enumerate(items[column].tolist()):
            if isinstance(value, (list, tuple, np.ndarray)):
                for v in value:
                    add(row, f"{column}={v}")
            elif column == "year":
                if value is not None and np.isfinite(value):
                    add(row, f"decade={int(value) // 10 * 10}")
            elif isinstance(value, str) and value:
                add(row, f"{column}={value}")
    m = sp.csr_matrix((np.ones(len(rows), dtype=np.float32), (rows, cols)), shape=(n, n + len(names)))
    m = sp.csr_matrix(sp.diags(1.0 / np.asarray(m.sum(axis=1)).ravel()) @ m, dtype=np.float32)
    return m, names


@dataclass
class LightFmModel:
    user_embeddings: np.ndarray  # users x k
    user_biases: np.ndarray
    item_embeddings: np.ndarray  # items x k (through the item features)
    item_biases: np.ndarray

    def score(self, users: np.ndarray) -> np.ndarray:
        return self.user_embeddings[users] @ self.item_embeddings.T + self.item_biases[None, :] + self.user_biases[users, None]


class LightFmWarp:
    """A LightFM WARP model trained epoch by epoch, so one fit serves several epoch counts."""

    def __init__(
        self,
        user_rows: np.ndarray,
        item_rows: np.ndarray,
        num_users: int,
        num_items: int,
        features,
        *,
        components: int,
        learning_rate: float,
        item_alpha: float,
        seed: int = 42,
        threads: int = 2,
    ) -> None:
        import scipy.sparse as sp
        from lightfm import LightFM

        x = sp.coo_matrix((np.ones(len(user_rows), np.float32), (user_rows, item_rows)), shape=(num_users, num_items))
        x.sum_duplicates()
        x.data[:] = 1.0
        self.interactions, self.features, self.threads = x, features, threads
        self.model = LightFM(
            loss="warp", no_components=components, learning_rate=learning_rate, item_alpha=item_alpha, random_state=seed
        )
        self.epochs = 0

    def train(self, epochs: int) -> LightFmModel:
        """Train up to ``epochs`` in total; the model as it stands then."""
        if epochs > self.epochs:
            self.model.fit_partial(
                self.interactions, item_features=self.features, epochs=epochs - self.epochs, num_threads=self.threads
            )
            self.epochs = epochs
        ib, ie = self.model.get_item_representations(self.features)
        ub, ue = self.model.get_user_representations()
        return LightFmModel(ue.astype(np.float32), ub.astype(np.float32), ie.astype(np.float32), ib.astype(np.float32))
