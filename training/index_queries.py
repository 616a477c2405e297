"""The query vectors an index is tuned and checked on: a seeded sample of the
version's own known users' query vectors, split into a tuning half and a
checking half (:mod:`training.index_tuning`).

Where the version has fewer than ``MIN_USERS`` known users, their vectors are
topped up with a seeded sample of item vectors as proxy queries (in a two-tower
model both live in the same space; an item's nearest items by dot product
stand in for a user's). Which vectors were used is recorded in the manifest
(``index.tuning.queries``).

The same index answers similar-items queries (``GET /v1/items/{id}/similar``:
an item's own vector, the item itself left out), so a second seeded sample of
item rows, split in halves the same way, is tuned and checked as such
(``similar_tuning`` / ``similar_checking``; recorded as ``queries.similar``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

SAMPLE_SIZE = 2_000  # tuning + checking queries, when that many users exist
MIN_USERS = 300  # fewer known users than this: item vectors top the sample up to 2 * MIN_USERS


@dataclass
class QuerySample:
    tuning: np.ndarray  # float32 [t, dim]
    checking: np.ndarray  # float32 [c, dim]
    source: str  # "users" | "users+items" | "items"
    users: int  # user vectors in the sample
    items: int  # item vectors in the sample (proxy queries)
    seed: int
    user_rows: np.ndarray  # rows of the user vectors given that are in the sample (for held-out checks)
    similar_tuning: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))  # item rows queried as similar-items
    similar_checking: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))

    def describe(self) -> dict:
        """The manifest's ``index.tuning.queries``."""
        out = asdict(self)
        for name in ("tuning", "checking", "user_rows", "similar_tuning", "similar_checking"):
            out.pop(name)
        similar = {
            "items": len(np.union1d(self.similar_tuning, self.similar_checking)),
            "tuning": len(self.similar_tuning),
            "checking": len(self.similar_checking),
        }
        return {**out, "tuning": len(self.tuning), "checking": len(self.checking), "similar": similar}


def sample_queries(
    user_vectors: np.ndarray | None,
    item_vectors: np.ndarray,
    *,
    size: int = SAMPLE_SIZE,
    seed: int = 0,
    min_users: int = MIN_USERS,
) -> QuerySample:
    """``size`` query vectors (fewer if fewer exist), shuffled with ``seed`` and split in two halves;
    and ``size`` item rows (fewer if fewer exist) as similar-items queries, split the same way
    (drawn after the user sample, so that sample does not depend on them)."""
    rng = np.random.default_rng(seed)
    users = np.zeros((0, item_vectors.shape[1]), np.float32) if user_vectors is None else np.asarray(user_vectors, np.float32)
    finite = np.flatnonzero(np.isfinite(users).all(axis=1))
    user_rows = np.sort(rng.choice(finite, min(size, len(finite)), replace=False))
    parts = [users[user_rows]]
    n_items = 0
    if len(user_rows) < min_users:
        n_items = min(2 * min_users, size, len(item_vectors)) - len(user_rows)
        n_items = max(n_items, 0)
        parts.append(np.asarray(item_vectors, np.float32)[np.sort(rng.choice(len(item_vectors), n_items, replace=False))])
    queries = np.ascontiguousarray(np.concatenate(parts)[rng.permutation(len(user_rows) + n_items)], dtype=np.float32)
    half = (len(queries) + 1) // 2
    source = "items" if not len(user_rows) else ("users+items" if n_items else "users")
    similar = rng.choice(len(item_vectors), min(size, len(item_vectors)), replace=False).astype(np.int64)
    shalf = (len(similar) + 1) // 2
    return QuerySample(
        tuning=queries[:half],
        checking=queries[half:] if len(queries) > 1 else queries,
        source=source,
        users=len(user_rows),
        items=int(n_items),
        seed=seed,
        user_rows=user_rows,
        similar_tuning=similar[:shalf],
        similar_checking=similar[shalf:] if len(similar) > 1 else similar,
    )
