"""Canonical tables -> row-indexed arrays the towers and the metrics work on."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from functools import cached_property

import numpy as np
import pandas as pd
import tensorflow as tf

from towers.features import as_tensor
from towers.spec import FeatureSpec, ModelSpec
from towers.tower import tower_inputs
from training.data.tables import CanonicalData
from training.history import Windows, distinct_pairs, joined, user_windows
from training.model import CANDIDATE_PREFIX, ITEM_ROW, QUERY_PREFIX, SAMPLING_PROBABILITY
from training.stream.dataset import examples_dataset
from training.stream.reduce import UserLists
from training.stream.shard import ShardRows, cut_examples


@dataclass
class PreparedData:
    """Interactions as (user row, item row) pairs over fixed user and item tables.

    Item row i is catalog row i everywhere downstream: the index, items.parquet
    and the evaluation all share this order.
    """

    data: CanonicalData
    user_ids: np.ndarray
    item_ids: np.ndarray
    user_inputs: dict[str, np.ndarray]  # raw query-tower inputs, one row per user, history features left out
    item_inputs: dict[str, np.ndarray]  # raw candidate-tower inputs, one row per item
    history: list[FeatureSpec] = field(default_factory=list)  # the query tower's history features
    rows: InteractionRows | None = None  # a view's interactions (:meth:`view`); else the data's, on first use

    @property
    def num_users(self) -> int:
        return len(self.user_ids)

    @property
    def num_items(self) -> int:
        return len(self.item_ids)

    @cached_property
    def _interactions(self) -> InteractionRows:
        if self.rows is not None:
            return self.rows
        return interaction_rows(self.data, self.user_ids, self.item_ids)

    @property
    def user_rows(self) -> np.ndarray:
        """Per interaction, its user row. The arrays of every interaction are built on first use (the
        benchmarks' and tests' small data); ``recsys train`` reads the prepared shards instead."""
        return self._interactions.user_rows

    @property
    def item_rows(self) -> np.ndarray:
        """Per interaction, its item row."""
        return self._interactions.item_rows

    @property
    def times(self) -> np.ndarray:
        """Per interaction, its time (the timestamp column, else its position)."""
        return self._interactions.times

    def item_counts(self, rows: np.ndarray) -> np.ndarray:
        """Per item row, its interactions among ``rows``."""
        return np.bincount(self.item_rows[rows], minlength=self.num_items)

    def user_counts(self, rows: np.ndarray) -> np.ndarray:
        """Per user row, its interactions among ``rows``."""
        return np.bincount(self.user_rows[rows], minlength=self.num_users)

    def view(self, rows: ShardRows) -> PreparedData:
        """The same tables over the interactions ``rows`` only (in position order; positions
        become 0..len-1): what the evaluation and the validation metric score, the rows of
        their users gathered from the shards (:func:`training.stream.reduce.gather`)."""
        return replace(self, rows=InteractionRows(rows.user_rows, rows.item_rows, rows.times))

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

    def latest_query_inputs(self, latest: UserLists, users: np.ndarray | None = None) -> dict[str, np.ndarray]:
        """:meth:`query_inputs` from each user's latest items (``latest``: per user row, oldest
        first, at least as many as any history feature takes; computed from the prepared
        shards by :func:`training.stream.reduce.latest_items`), for the user rows ``users``
        (default: every user row)."""
        if users is None:
            out = dict(self.user_inputs)
        else:
            out, latest = subset_inputs(self.user_inputs, users), latest.take(users)
        end = latest.offsets[1:]
        for f in self.history:
            start = np.maximum(latest.offsets[:-1], end - f.history_length)
            windows = Windows(order=np.arange(len(latest.items), dtype=np.int64), start=start, end=end)
            out[f.name] = joined(self.item_ids, latest.items, windows, f.separator)
        return out

    def items_by_user(self, rows: np.ndarray, users: np.ndarray | None = None) -> list[np.ndarray]:
        """For each user row of ``users`` (default: every user row), the distinct item rows
        among interactions ``rows``, ascending."""
        row_users, items = distinct_pairs(self.user_rows[rows], self.item_rows[rows])
        items = items.astype(np.int64)
        if users is None:
            bounds = np.searchsorted(row_users, np.arange(1, self.num_users))
            return np.split(items, bounds)  # views into one array, sorted per user
        users = np.asarray(users, dtype=np.int64)
        lo, hi = np.searchsorted(row_users, users, side="left"), np.searchsorted(row_users, users, side="right")
        return [items[a:b] for a, b in zip(lo, hi, strict=True)]


@dataclass(frozen=True)
class InteractionRows:
    """Interactions as rows of the user and item tables, in position order."""

    user_rows: np.ndarray  # int64
    item_rows: np.ndarray  # int64
    times: np.ndarray  # int64: the timestamp, else the position


ROWS_CHUNK = 1 << 20  # interactions mapped to rows at a time (the ids' temporary index stays small)


def interaction_rows(data: CanonicalData, user_ids: np.ndarray, item_ids: np.ndarray, dtype: type = np.int64) -> InteractionRows:
    """The interactions of ``data`` as rows of ``user_ids`` / ``item_ids``, mapped a chunk at a time."""
    n = data.num_interactions
    user_pos, item_pos = pd.Index(user_ids), pd.Index(item_ids)
    user_rows: np.ndarray = np.empty(n, dtype=dtype)
    item_rows: np.ndarray = np.empty(n, dtype=dtype)
    stamped = "timestamp" in data.interactions.columns
    times = np.empty(n, dtype=np.int64) if stamped else np.arange(n, dtype=np.int64)
    start = 0
    for chunk in data.interaction_frames(ROWS_CHUNK):
        end = start + len(chunk)
        user_rows[start:end] = user_pos.get_indexer(chunk["user_id"].astype(str))
        item_rows[start:end] = item_pos.get_indexer(chunk["item_id"].astype(str))
        if stamped:
            times[start:end] = chunk["timestamp"].to_numpy(dtype=np.int64)
        start = end
    if n and (user_rows.min() < 0 or item_rows.min() < 0):
        raise ValueError("interactions reference unknown users or items (validate_canonical should have caught it)")
    return InteractionRows(user_rows, item_rows, times)


def prepare(data: CanonicalData, spec: ModelSpec) -> PreparedData:
    """The vocabularies (user and item rows) and the towers' raw inputs per row. The
    interactions stay where they are: ``recsys train`` prepares them into shards
    (:func:`training.stream.run.prepare_run`)."""
    users = data.users.reset_index(drop=True)
    items = data.items.reset_index(drop=True)
    user_ids = users["user_id"].astype(str).to_numpy()
    item_ids = items["item_id"].astype(str).to_numpy()
    for f in spec.history_features:
        clash = [i for i in item_ids if f.separator in i][:3]
        if clash:
            raise ValueError(f"history feature {f.name}: item ids contain its separator {f.separator!r}: {clash}")
    history = {f.name for f in spec.history_features}
    return PreparedData(
        data=data,
        user_ids=user_ids,
        item_ids=item_ids,
        user_inputs={n: v for n, v in tower_inputs(spec.query, users).items() if n not in history},
        item_inputs=tower_inputs(spec.candidate, items),
        history=spec.history_features,
    )


def subset_inputs(inputs: dict[str, np.ndarray], rows: np.ndarray) -> dict[str, np.ndarray]:
    return {k: v[rows] for k, v in inputs.items()}


def sampling_probabilities(item_counts: np.ndarray, strength: float = 1.0) -> np.ndarray:
    """Each item's share of training interactions (``item_counts``: per item row; logQ
    correction), raised to ``strength`` (1 = the full correction, 0 = none); unseen
    items get the smallest nonzero share so log(p) stays finite."""
    counts = np.asarray(item_counts, dtype=np.float64)
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
