"""Offline evaluation of a trained model beside the popularity baseline, on one split.

The split lives in prepared shards (:mod:`training.stream.prepare`): evaluation samples
its test pairs and users from them, gathers every row of those users
(:func:`training.stream.reduce.gather`) and scores a view of the data over those rows
only (:meth:`training.prepared.PreparedData.view`): a user's history and seen items are
all in the view, so the figures are those of the whole log, in memory bounded by the
sample."""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tensorflow as tf

from training.config import TrainConfig
from training.history import joined, windows_before
from training.metrics import RowVectors, counts_score_fn, embedding_score_fn, ranking_metrics, top_k_accuracy
from training.model import embed
from training.prepared import PreparedData
from training.split import Split
from training.stream.prepare import FIT, TEST, Prepared
from training.stream.reduce import gather, item_counts, part_pairs
from training.stream.run import rows_prepared


def _sample(n: int, cap: int, seed: int) -> np.ndarray:
    if n <= cap:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, cap, replace=False))


@dataclass(frozen=True)
class EvalSample:
    """What one evaluation scores: a view of the data over the rows of the sampled users
    (local positions), its sampled test pairs and users, and the split's global counts."""

    view: PreparedData
    pairs: np.ndarray  # local rows of the sampled test pairs, in position order
    users: np.ndarray  # user rows scored per user (P2), sorted
    train: np.ndarray  # local rows of the training parts
    test: np.ndarray  # local rows of the test parts
    train_item_counts: np.ndarray  # per item row, over the whole training split
    num_train: int
    num_test: int


def eval_sample(
    prep: PreparedData,
    prepared: Prepared,
    train_parts: tuple[int, ...],
    test_parts: tuple[int, ...],
    cap: int,
    seed: int,
) -> EvalSample:
    """At most ``cap`` test pairs and ``cap`` users with test items (seeded samples of the
    pairs in position order and of the users in row order), with the rows of their users."""
    test = part_pairs(prepared, test_parts)
    pair_index = _sample(len(test), cap, seed)
    users = np.unique(test.user_rows)
    users = users[_sample(len(users), cap, seed)]
    rows = gather(prepared, np.union1d(users, test.user_rows[pair_index]))
    return EvalSample(
        view=prep.view(rows),
        pairs=np.searchsorted(rows.positions, test.positions[pair_index]),
        users=users,
        train=np.flatnonzero(np.isin(rows.parts, train_parts)),
        test=np.flatnonzero(np.isin(rows.parts, test_parts)),
        train_item_counts=item_counts(prepared, train_parts),
        num_train=prepared.rows_of(train_parts),
        num_test=len(test),
    )


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
    return top_k_accuracy(score, np.arange(len(pair_rows)), prep.item_rows[pair_rows], ks, num_items=len(item_embeddings))


def evaluate_sample(
    sample: EvalSample,
    user_embeddings: RowVectors,
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
      per user (``user_embeddings``, per user row: the query from all training
      items), training items excluded, averaged over users.
    At most ``config.max_eval_queries`` pairs and users are scored (the sample's
    seeded choice, recorded in the result) to bound evaluation time on huge data.
    """
    view = sample.view
    pair_users, pair_items = view.user_rows[sample.pairs], view.item_rows[sample.pairs]
    test_items = view.items_by_user(sample.test, sample.users)
    train_items = view.items_by_user(sample.train, sample.users)
    scorers = {
        "model": embedding_score_fn(user_embeddings, item_embeddings),
        "popularity": counts_score_fn(sample.train_item_counts),
    }
    result: dict = {
        "split": config.split.value,
        "num_train_interactions": sample.num_train,
        "num_test_interactions": sample.num_test,
        "num_test_pairs_scored": len(sample.pairs),
        "num_test_users_scored": len(sample.users),
        "top_k_accuracy_queries": "per pair: training items before it" if query_tower is not None else "per user",
    }
    for name, score in scorers.items():
        if name == "model" and query_tower is not None:
            metrics = pair_accuracy(query_tower, item_embeddings, view, sample.train, sample.pairs)
        else:
            metrics = top_k_accuracy(score, pair_users, pair_items, num_items=view.num_items)
        metrics.update(ranking_metrics(score, sample.users, test_items, train_items, view.num_items))
        result[name] = metrics
    return result


def split_sample(prep: PreparedData, split: Split, config: TrainConfig, folder: Path) -> EvalSample:
    """:func:`eval_sample` of a split held as row arrays (benchmarks, tests), prepared in ``folder``."""
    prepared = rows_prepared(prep, {FIT: split.train, TEST: split.test}, folder, config.seed)
    return eval_sample(prep, prepared, (FIT,), (TEST,), config.max_eval_queries, config.seed)


def evaluate_split(
    prep: PreparedData,
    split: Split,
    user_embeddings: np.ndarray,
    item_embeddings: np.ndarray,
    config: TrainConfig,
    query_tower: tf.keras.Model | None = None,
) -> dict:
    """:func:`evaluate_sample` of a split held as row arrays (benchmarks, tests): the
    split is prepared into shards in a temporary folder and scored as ``recsys train`` scores."""
    with tempfile.TemporaryDirectory(prefix="recsys-eval-") as tmp:
        sample = split_sample(prep, split, config, Path(tmp) / "prepared")
    return evaluate_sample(sample, user_embeddings, item_embeddings, config, query_tower)
