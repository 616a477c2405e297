"""Retrieval metrics over a dense score function, exactly as BENCHMARKS.md defines them.

``score_fn(user_rows) -> float32[len(user_rows), num_items]`` is the only thing
a model (or the popularity baseline) must provide; the metrics never look
inside it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol

import numpy as np

ScoreFn = Callable[[np.ndarray], np.ndarray]


class RowVectors(Protocol):
    """Vectors by row: an array ``[n, dim]``, or vectors made for the rows asked for
    (:class:`training.stored_inputs.QueryVectors`)."""

    def __len__(self) -> int: ...

    def __getitem__(self, rows: Any) -> Any: ...


SCORES_BYTES = 64 << 20  # float32 scores per batch of users in the per-user metrics (the top-K selection takes 3x more)


def bounded_batch(batch: int, num_items: int, budget: int = SCORES_BYTES) -> int:
    """``batch`` rows of scores, fewer where ``batch x num_items`` float32 would pass ``budget`` bytes."""
    return int(max(1, min(batch, budget // (4 * max(1, num_items)))))


def top_k_indices(scores: np.ndarray, k: int) -> np.ndarray:
    """Per row, the column indices of the ``k`` largest scores, best first."""
    k = min(k, scores.shape[1])
    part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    order = np.argsort(-np.take_along_axis(scores, part, axis=1), axis=1, kind="stable")
    return np.take_along_axis(part, order, axis=1)


def top_k_accuracy(
    score_fn: ScoreFn,
    pair_users: np.ndarray,
    pair_items: np.ndarray,
    ks: Sequence[int] = (10, 50, 100),
    batch: int = 512,
    num_items: int | None = None,
) -> dict[str, float]:
    """P1: share of (user, item) test pairs whose item ranks in the user's top K
    over all items (training items not excluded), as FactorizedTopK reports.

    An item's rank is the number of items scoring strictly higher, so ties
    count in the item's favour, like ``tf.math.top_k`` with a stable order.
    ``num_items`` (the scores' width), when given, bounds a batch's scores.
    """
    hits = {k: 0 for k in ks}
    if num_items:  # the scores' width
        batch = bounded_batch(batch, num_items)
    for start in range(0, len(pair_users), batch):
        u = pair_users[start : start + batch]
        it = pair_items[start : start + batch]
        scores = score_fn(u)
        true = scores[np.arange(len(u)), it][:, None]
        rank = (scores > true).sum(axis=1)
        for k in ks:
            hits[k] += int((rank < k).sum())
    n = max(len(pair_users), 1)
    return {f"top_{k}_accuracy": hits[k] / n for k in ks}


def ranking_metrics_per_user(
    score_fn: ScoreFn,
    users: np.ndarray,
    test_items: Sequence[np.ndarray],
    train_items: Sequence[np.ndarray],
    num_items: int,
    recall_ks: Sequence[int] = (10, 100),
    ndcg_k: int = 10,
    coverage_k: int = 10,
    batch: int = 256,
) -> tuple[dict[str, np.ndarray], float]:
    """P2 per user: recommend top K excluding the user's training items;
    Recall@K (hits / |test items|) and NDCG@k (binary relevance) for every
    user with test items (arrays in ``users`` order, those users only), and
    catalog coverage@k (distinct recommended items / catalog size)."""
    kmax = max(max(recall_ks), ndcg_k, coverage_k)
    recall: dict[int, list[float]] = {k: [] for k in recall_ks}
    ndcg: list[float] = []
    covered = np.zeros(num_items, dtype=bool)
    discounts = 1.0 / np.log2(np.arange(2, kmax + 2))
    batch = bounded_batch(batch, num_items)  # a batch's scores and its top-K work stay small
    for start in range(0, len(users), batch):
        u = users[start : start + batch]
        scores = np.array(score_fn(u), dtype=np.float32, copy=True)
        for j in range(len(u)):
            seen = train_items[start + j]
            if len(seen):
                scores[j, seen] = -np.inf
        top = top_k_indices(scores, kmax)
        for j in range(len(u)):
            relevant = np.zeros(num_items, dtype=bool)
            relevant[test_items[start + j]] = True
            n_rel = int(relevant.sum())
            if n_rel == 0:
                continue
            hit = relevant[top[j]]
            for k in recall_ks:
                recall[k].append(hit[:k].sum() / n_rel)
            dcg = float((hit[:ndcg_k] * discounts[:ndcg_k]).sum())
            idcg = float(discounts[: min(n_rel, ndcg_k)].sum())
            ndcg.append(dcg / idcg)
            covered[top[j, :coverage_k]] = True
    out = {f"recall_at_{k}": np.asarray(recall[k], dtype=np.float64) for k in recall_ks}
    out[f"ndcg_at_{ndcg_k}"] = np.asarray(ndcg, dtype=np.float64)
    return out, float(covered.sum() / max(num_items, 1))


def ranking_metrics(
    score_fn: ScoreFn,
    users: np.ndarray,
    test_items: Sequence[np.ndarray],
    train_items: Sequence[np.ndarray],
    num_items: int,
    **options: Any,
) -> dict[str, float]:
    """P2: :func:`ranking_metrics_per_user` (``options``: its ``recall_ks``,
    ``ndcg_k``, ``coverage_k``, ``batch``) averaged over the users with test
    items, and the catalog coverage@k."""
    per_user, coverage = ranking_metrics_per_user(score_fn, users, test_items, train_items, num_items, **options)
    n = max(sum(1 for t in test_items if len(t)), 1)
    out = {k: float(v.sum() / n) for k, v in per_user.items()}
    out[f"coverage_at_{options.get('coverage_k', 10)}"] = coverage
    return out


def paired_bootstrap(a: np.ndarray, b: np.ndarray, resamples: int = 1000, seed: int = 0) -> dict[str, float]:
    """Paired bootstrap over users of mean(a) - mean(b) (per-user values of two
    models on the same users): the observed difference, its 95% interval, and
    the share of resamples in which ``a`` is not ahead (a one-sided p-value)."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 1 or len(a) == 0:
        raise ValueError("paired bootstrap needs two equally long, non-empty 1-D arrays")
    diff = a - b
    idx = np.random.default_rng(seed).integers(0, len(diff), size=(resamples, len(diff)))
    means = diff[idx].mean(axis=1)
    return {
        "difference": float(diff.mean()),
        "ci95_low": float(np.quantile(means, 0.025)),
        "ci95_high": float(np.quantile(means, 0.975)),
        "p_not_better": float((means <= 0).mean()),
        "resamples": resamples,
        "users": len(diff),
    }


def popularity_score_fn(train_item_rows: np.ndarray, num_items: int) -> ScoreFn:
    """The popularity baseline: every user gets the training interaction counts."""
    return counts_score_fn(np.bincount(train_item_rows, minlength=num_items))


def counts_score_fn(item_counts: np.ndarray) -> ScoreFn:
    """The popularity baseline from its counts (per item row): every user gets them."""
    counts = np.asarray(item_counts, dtype=np.float32)

    def score(users: np.ndarray) -> np.ndarray:
        return np.broadcast_to(counts, (len(users), len(counts)))

    return score


def embedding_score_fn(user_embeddings: RowVectors, item_embeddings: np.ndarray) -> ScoreFn:
    """Dot-product scores of users' query embeddings against every item."""

    def score(users: np.ndarray) -> np.ndarray:
        return user_embeddings[users] @ item_embeddings.T

    return score


def recall_vs_exact(approx: np.ndarray, exact: np.ndarray) -> float:
    """Mean share of the exact top-k neighbours that the approximate search found."""
    k = exact.shape[1]
    found = [len(set(a[:k]) & set(e)) / k for a, e in zip(approx, exact, strict=True)]
    return float(np.mean(found)) if found else 1.0
