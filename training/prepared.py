"""Canonical tables -> row-indexed arrays the towers and the metrics work on."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
import pandas as pd
import tensorflow as tf

from towers.features import as_tensor
from towers.spec import FeatureSpec, ModelSpec
from towers.tower import tower_inputs
from training.data.tables import CanonicalData
from training.history import joined, user_windows
from training.model import CANDIDATE_PREFIX, ITEM_ROW, QUERY_PREFIX, SAMPLING_PROBABILITY
from training.stream.dataset import examples_dataset
from training.stream.shard import cut_examples


@dataclass
class PreparedData:
    """Interactions as (user row, item row) pairs over fixed user and item tables.

    Item row i is catalog row i everywhere downstream: the index, items.parquet
    and the evaluation all share this order.
    """

    data: CanonicalData
    user_ids: np.ndarray
    item_ids: np.ndarray
    user_rows: np.ndarray  # per interaction
    item_rows: np.ndarray  # per interaction
    user_inputs: dict[str, np.ndarray]  # raw query-tower inputs, one row per user (history: every interaction known)
    item_inputs: dict[str, np.ndarray]  # raw candidate-tower inputs, one row per item
    history: list[FeatureSpec] = field(default_factory=list)  # the query tower's history features

    @property
    def num_users(self) -> int:
        return len(self.user_ids)

    @property
    def num_items(self) -> int:
        return len(self.item_ids)

    @cached_property
    def times(self) -> np.ndarray:
        """Per interaction, its time (the timestamp column, else its position)."""
        inter = self.data.interactions
        if "timestamp" in inter.columns:
            return inter["timestamp"].to_numpy(dtype=np.int64)
        return np.arange(len(inter), dtype=np.int64)

    def query_inputs(self, known_rows: np.ndarray) -> dict[str, np.ndarray]:
        """The query tower's raw inputs per user row when the interactions
        ``known_rows`` are all that is known: ``user_inputs`` with each history
        feature the user's last ``history_length`` known items, oldest first,
        joined by its separator. Evaluation passes the training rows; the
        published users.parquet holds the same columns."""
        out = dict(self.user_inputs)
        for f in self.history:
            windows = user_windows(self.user_rows, self.times, known_rows, self.num_users, f.history_length)
            out[f.name] = joined(self.item_ids, self.item_rows, windows, f.separator)
        return out

    def items_by_user(self, rows: np.ndarray) -> list[np.ndarray]:
        """For each user row, the distinct item rows among interactions ``rows``."""
        users, items = self.user_rows[rows], self.item_rows[rows]
        order = np.lexsort((items, users))
        users, items = users[order], items[order]
        distinct = np.r_[True, (users[1:] != users[:-1]) | (items[1:] != items[:-1])] if len(users) else np.zeros(0, bool)
        users, items = users[distinct], items[distinct].astype(np.int64)
        bounds = np.searchsorted(users, np.arange(1, self.num_users))
        return np.split(items, bounds)  # views into one array, sorted per user


def prepare(data: CanonicalData, spec: ModelSpec) -> PreparedData:
    users = data.users.reset_index(drop=True)
    items = data.items.reset_index(drop=True)
    user_ids = users["user_id"].astype(str).to_numpy()
    item_ids = items["item_id"].astype(str).to_numpy()
    user_pos = pd.Index(user_ids)
    item_pos = pd.Index(item_ids)
    inter = data.interactions
    user_rows = user_pos.get_indexer(pd.Index(inter["user_id"].astype(str)))
    item_rows = item_pos.get_indexer(pd.Index(inter["item_id"].astype(str)))
    if (user_rows < 0).any() or (item_rows < 0).any():
        raise ValueError("interactions reference unknown users or items (validate_canonical should have caught it)")
    for f in spec.history_features:
        clash = [i for i in item_ids if f.separator in i][:3]
        if clash:
            raise ValueError(f"history feature {f.name}: item ids contain its separator {f.separator!r}: {clash}")
    prep = PreparedData(
        data=data,
        user_ids=user_ids,
        item_ids=item_ids,
        user_rows=user_rows.astype(np.int64),
        item_rows=item_rows.astype(np.int64),
        user_inputs=tower_inputs(spec.query, users),
        item_inputs=tower_inputs(spec.candidate, items),
        history=spec.history_features,
    )
    if prep.history:
        prep.user_inputs = prep.query_inputs(np.arange(len(inter)))
    return prep


def subset_inputs(inputs: dict[str, np.ndarray], rows: np.ndarray) -> dict[str, np.ndarray]:
    return {k: v[rows] for k, v in inputs.items()}


def sampling_probabilities(prep: PreparedData, train_rows: np.ndarray, strength: float = 1.0) -> np.ndarray:
    """Each item's share of training interactions (logQ correction), raised to
    ``strength`` (1 = the full correction, 0 = none); unseen items get the
    smallest nonzero share so log(p) stays finite."""
    counts = np.bincount(prep.item_rows[train_rows], minlength=prep.num_items).astype(np.float64)
    p = counts / max(counts.sum(), 1.0)
    floor = 1.0 / max(counts.sum(), 1.0)
    return (np.maximum(p, floor) ** strength).astype(np.float32)


def make_dataset(
    prep: PreparedData,
    rows: np.ndarray,
    sampling_p: np.ndarray,
    batch_size: int,
    query_rows: np.ndarray | None = None,
) -> tf.data.Dataset:
    """Batches of the interactions ``rows``, in their order, mapped to the towers' inputs
    (:func:`batch_features`): what the top-K cross-check scores. Each example's history is
    its user's known rows strictly before it (known: ``query_rows``, as for a test pair,
    else ``rows`` themselves), cut by the code that cuts training examples from the
    prepared shards (:func:`training.stream.shard.cut_examples`; training reads its
    batches from the shards, :mod:`training.stream`)."""
    histories = {f.name: f.history_length for f in prep.history}
    rows = np.asarray(rows, dtype=np.int64)
    known = rows if query_rows is None else np.asarray(query_rows, dtype=np.int64)
    examples = cut_examples(prep.user_rows, prep.item_rows, prep.times, rows, known, histories)
    return examples_dataset(lambda: examples.batches(batch_size), histories, batch_features(prep, sampling_p))


def batch_features(
    prep: PreparedData, sampling_p: np.ndarray
) -> Callable[[tf.Tensor, tf.Tensor, dict[str, tf.Tensor]], dict[str, tf.Tensor]]:
    """The map from a batch's (user rows, item rows, history matrices) to the towers'
    inputs: each tower's raw inputs gathered from constant per-user/per-item tables;
    histories as int32 ``[batch, history_length]`` catalog rows + 1, newest first,
    0 = nothing (what ``towers.tower.training_tower`` reads)."""
    user_tables = {n: as_tensor(v) for n, v in prep.user_inputs.items() if n not in {f.name for f in prep.history}}
    item_tables = {n: as_tensor(v) for n, v in prep.item_inputs.items()}
    p_table = tf.constant(sampling_p)

    def features(u: tf.Tensor, i: tf.Tensor, histories: dict[str, tf.Tensor]) -> dict[str, tf.Tensor]:
        feats = {QUERY_PREFIX + n: tf.gather(t, u) for n, t in user_tables.items()}
        feats.update({QUERY_PREFIX + n: h for n, h in histories.items()})
        feats.update({CANDIDATE_PREFIX + n: tf.gather(t, i) for n, t in item_tables.items()})
        feats[ITEM_ROW] = i
        feats[SAMPLING_PROBABILITY] = tf.gather(p_table, i)
        return feats

    return features
