"""Canonical tables -> row-indexed arrays the towers and the metrics work on."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import tensorflow as tf

from towers.features import as_tensor
from towers.spec import ModelSpec
from towers.tower import tower_inputs
from training.data.tables import CanonicalData
from training.model import CANDIDATE_PREFIX, ITEM_ROW, QUERY_PREFIX, SAMPLING_PROBABILITY


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
    user_inputs: dict[str, np.ndarray]  # raw query-tower inputs, one row per user
    item_inputs: dict[str, np.ndarray]  # raw candidate-tower inputs, one row per item

    @property
    def num_users(self) -> int:
        return len(self.user_ids)

    @property
    def num_items(self) -> int:
        return len(self.item_ids)

    def items_by_user(self, rows: np.ndarray) -> list[np.ndarray]:
        """For each user row, the distinct item rows among interactions ``rows``."""
        frame = pd.DataFrame({"u": self.user_rows[rows], "i": self.item_rows[rows]}).drop_duplicates()
        grouped = frame.groupby("u")["i"].apply(lambda s: np.sort(s.to_numpy()))
        out = [np.zeros(0, dtype=np.int64)] * self.num_users
        for u, items in grouped.items():
            out[int(u)] = items.astype(np.int64)
        return out


def prepare(data: CanonicalData, spec: ModelSpec) -> PreparedData:
    users = data.users.reset_index(drop=True)
    items = data.items.reset_index(drop=True)
    user_ids = users["user_id"].astype(str).to_numpy()
    item_ids = items["item_id"].astype(str).to_numpy()
    user_pos = pd.Index(user_ids)
    item_pos = pd.Index(item_ids)
    inter = data.interactions
    user_rows = user_pos.get_indexer(inter["user_id"].astype(str))
    item_rows = item_pos.get_indexer(inter["item_id"].astype(str))
    if (user_rows < 0).any() or (item_rows < 0).any():
        raise ValueError("interactions reference unknown users or items (validate_canonical should have caught it)")
    return PreparedData(
        data=data,
        user_ids=user_ids,
        item_ids=item_ids,
        user_rows=user_rows.astype(np.int64),
        item_rows=item_rows.astype(np.int64),
        user_inputs=tower_inputs(spec.query, users),
        item_inputs=tower_inputs(spec.candidate, items),
    )


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
    seed: int,
    shuffle: bool = True,
) -> tf.data.Dataset:
    """Batches of interaction features: shuffle (user row, item row) pairs, batch,
    then gather each tower's raw inputs from constant per-user/per-item tables."""
    user_tables = {n: as_tensor(v) for n, v in prep.user_inputs.items()}
    item_tables = {n: as_tensor(v) for n, v in prep.item_inputs.items()}
    p_table = tf.constant(sampling_p)
    ds = tf.data.Dataset.from_tensor_slices((prep.user_rows[rows], prep.item_rows[rows]))
    if shuffle:
        ds = ds.shuffle(len(rows), seed=seed, reshuffle_each_iteration=True)
    ds = ds.batch(batch_size)

    def gather(u: tf.Tensor, i: tf.Tensor) -> dict[str, tf.Tensor]:
        feats = {QUERY_PREFIX + n: tf.gather(t, u) for n, t in user_tables.items()}
        feats.update({CANDIDATE_PREFIX + n: tf.gather(t, i) for n, t in item_tables.items()})
        feats[ITEM_ROW] = i
        feats[SAMPLING_PROBABILITY] = tf.gather(p_table, i)
        return feats

    return ds.map(gather, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)
