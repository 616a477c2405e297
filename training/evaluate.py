"""Offline evaluation of a trained model beside the popularity baseline, on one split."""

from __future__ import annotations

import numpy as np

from training.config import TrainConfig
from training.metrics import embedding_score_fn, popularity_score_fn, ranking_metrics, top_k_accuracy
from training.prepared import PreparedData
from training.split import Split


def _sample(n: int, cap: int, seed: int) -> np.ndarray:
    if n <= cap:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, cap, replace=False))


def evaluate_split(
    prep: PreparedData,
    split: Split,
    user_embeddings: np.ndarray,
    item_embeddings: np.ndarray,
    config: TrainConfig,
) -> dict:
    """Model and popularity on the same test rows.

    - ``top_k_accuracy`` (P1 metric): per test pair, is the item in the user's
      top K over all items, training items not excluded;
    - ``recall_at_10/100``, ``ndcg_at_10``, ``coverage_at_10`` (P2 metrics):
      per user, training items excluded, averaged over users.
    At most ``config.max_eval_queries`` pairs and users are scored (a seeded
    sample, recorded in the result) to bound evaluation time on huge data.
    """
    pairs = split.test[_sample(len(split.test), config.max_eval_queries, config.seed)]
    pair_users, pair_items = prep.user_rows[pairs], prep.item_rows[pairs]
    test_by_user = prep.items_by_user(split.test)
    train_by_user = prep.items_by_user(split.train)
    users = np.array([u for u in range(prep.num_users) if len(test_by_user[u])], dtype=np.int64)
    users = users[_sample(len(users), config.max_eval_queries, config.seed)]
    test_items = [test_by_user[u] for u in users]
    train_items = [train_by_user[u] for u in users]

    scorers = {
        "model": embedding_score_fn(user_embeddings, item_embeddings),
        "popularity": popularity_score_fn(prep.item_rows[split.train], prep.num_items),
    }
    result: dict = {
        "split": config.split.value,
        "num_train_interactions": int(len(split.train)),
        "num_test_interactions": int(len(split.test)),
        "num_test_pairs_scored": int(len(pairs)),
        "num_test_users_scored": int(len(users)),
    }
    for name, score in scorers.items():
        metrics = top_k_accuracy(score, pair_users, pair_items)
        metrics.update(ranking_metrics(score, users, test_items, train_items, prep.num_items))
        result[name] = metrics
    return result
