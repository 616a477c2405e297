"""Offline evaluation of a trained model beside the popularity baseline, on one split."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import tensorflow as tf

from training.config import TrainConfig
from training.history import joined, windows_before
from training.metrics import embedding_score_fn, popularity_score_fn, ranking_metrics, top_k_accuracy
from training.model import embed
from training.prepared import PreparedData
from training.split import Split


def _sample(n: int, cap: int, seed: int) -> np.ndarray:
    if n <= cap:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, cap, replace=False))


def pair_query_inputs(prep: PreparedData, known_rows: np.ndarray, pair_rows: np.ndarray) -> dict[str, np.ndarray]:
    """The query tower's raw inputs per interaction of ``pair_rows``: its user's
    inputs, with each history feature the user's ``known_rows`` strictly before
    that interaction (the last ``history_length``, oldest first, joined), cut
    exactly as a training example's history is."""
    out = {name: values[prep.user_rows[pair_rows]] for name, values in prep.user_inputs.items()}
    for f in prep.history:
        windows = windows_before(prep.user_rows, prep.times, known_rows, pair_rows, f.history_length)
        out[f.name] = joined(prep.item_ids, prep.item_rows, windows, f.separator)
    return out


def pair_accuracy(
    query_tower: tf.keras.Model,
    item_embeddings: np.ndarray,
    prep: PreparedData,
    known_rows: np.ndarray,
    pair_rows: np.ndarray,
    ks: Sequence[int] = (10, 50, 100),
) -> dict[str, float]:
    """P1's top-K accuracy, each pair queried as it happened: with its user's
    known items strictly before it (:func:`pair_query_inputs`), not with items
    that came after it. Without history features the same as per user."""
    queries = embed(query_tower, pair_query_inputs(prep, known_rows, pair_rows))
    score = embedding_score_fn(queries, item_embeddings)
    return top_k_accuracy(score, np.arange(len(pair_rows)), prep.item_rows[pair_rows], ks)


def evaluate_split(
    prep: PreparedData,
    split: Split,
    user_embeddings: np.ndarray,
    item_embeddings: np.ndarray,
    config: TrainConfig,
    query_tower: tf.keras.Model | None = None,
) -> dict:
    """Model and popularity on the same test rows.

    - ``top_k_accuracy`` (P1 metric): per test pair, is the item in the top K
      over all items, training items not excluded; with ``query_tower`` each
      pair's query sees its user's training items strictly before it
      (:func:`pair_accuracy`), else the user's ``user_embeddings``;
    - ``recall_at_10/100``, ``ndcg_at_10``, ``coverage_at_10`` (P2 metrics):
      per user (``user_embeddings``: the query from all training items),
      training items excluded, averaged over users.
    At most ``config.max_eval_queries`` pairs and users are scored (a seeded
    sample, recorded in the result) to bound evaluation time on huge data.
    """
    pairs = split.test[_sample(len(split.test), config.max_eval_queries, config.seed)]
    pair_users, pair_items = prep.user_rows[pairs], prep.item_rows[pairs]
    users = np.unique(prep.user_rows[split.test])  # the users with test items
    users = users[_sample(len(users), config.max_eval_queries, config.seed)]
    sampled = np.zeros(prep.num_users, dtype=bool)
    sampled[users] = True  # per-user lists for the scored users only (not one per user of a large log)
    test_by_user = prep.items_by_user(split.test[sampled[prep.user_rows[split.test]]])
    train_by_user = prep.items_by_user(split.train[sampled[prep.user_rows[split.train]]])
    test_items = [test_by_user[u] for u in users]
    train_items = [train_by_user[u] for u in users]

    scorers = {
        "model": embedding_score_fn(user_embeddings, item_embeddings),
        "popularity": popularity_score_fn(prep.item_rows[split.train], prep.num_items),
    }
    result: dict = {
        "split": config.split.value,
        "num_train_interactions": len(split.train),
        "num_test_interactions": len(split.test),
        "num_test_pairs_scored": len(pairs),
        "num_test_users_scored": len(users),
        "top_k_accuracy_queries": "per pair: training items before it" if query_tower is not None else "per user",
    }
    for name, score in scorers.items():
        if name == "model" and query_tower is not None:
            metrics = pair_accuracy(query_tower, item_embeddings, prep, split.train, pairs)
        else:
            metrics = top_k_accuracy(score, pair_users, pair_items)
        metrics.update(ranking_metrics(score, users, test_items, train_items, prep.num_items))
        result[name] = metrics
    return result
