"""The two-tower retrieval model: a thin ``tfrs.Model`` around a ``Retrieval`` task."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol

import numpy as np
import tensorflow as tf
import tensorflow_recommenders as tfrs

from towers.features import as_tensor
from towers.tower import has_cold_path
from training.config import Negatives, TrainConfig

QUERY_PREFIX = "q_"
CANDIDATE_PREFIX = "c_"
ITEM_ROW = "_item_row"
SAMPLING_PROBABILITY = "_sampling_probability"
ITEM_ID = "item_id"
OOV_ITEM_ID = ""  # never in a vocabulary (item ids are non-empty): the id lookup's out-of-vocabulary row


class TwoTowerModel(tfrs.Model):
    """Query tower and candidate tower trained with a sampled or full softmax.

    Features arrive as one dict per batch: ``q_<name>`` for query inputs,
    ``c_<name>`` for candidate inputs, ``_item_row`` (the item's catalog row,
    used to drop accidental hits) and ``_sampling_probability`` (the item's
    share of training interactions, for the logQ correction).

    Negatives (``config.negatives``, resolved): ``in_batch`` scores each query
    against the batch's positives (logQ-corrected); ``full`` against every
    item of ``catalog`` (the candidate tower runs over the whole catalog each
    step; no sampling, so no correction); ``mixed`` against the batch's
    positives plus ``config.mixed_negatives`` items drawn uniformly from
    ``catalog`` each step, corrected by each item's expected count in that
    pool (Yang et al., "Mixed Negative Sampling", 2020). All three go through
    the same ``tfrs.tasks.Retrieval``.

    ``FactorizedTopK`` scores every example against the whole catalog, which
    would dominate training time, so the task gets it only for evaluation
    (:meth:`attach_top_k_metrics`) and training computes no metrics at all.

    Item-id dropout (``config.item_id_dropout``): in training steps, each
    candidate the candidate tower embeds has its ``item_id`` replaced by the
    out-of-vocabulary id with that probability (a stateless draw seeded by
    ``config.seed`` and the optimizer's step, so a resumed run draws the same).
    The OOV row then learns what an item nobody has seen looks like and the
    metadata features learn to place it, which is how a catalog update embeds
    a new item (its id goes through that same OOV row).

    A candidate tower with a cold path (``TowerSpec.cold_path``,
    ``towers.tower.with_cold_path``) gets a second loss in training steps: the
    batch's candidates embedded as if their ids were unknown, against the
    batch's queries held fixed (the same in-batch softmax and logQ correction).
    Its gradient reaches the cold path's own projection only (the metadata
    blocks are held fixed on that path), so the known items' vectors and the
    query tower train exactly as without it.
    """

    def __init__(
        self,
        query_tower: tf.keras.Model,
        candidate_tower: tf.keras.Model,
        query_names: Sequence[str],
        candidate_names: Sequence[str],
        config: TrainConfig,
        catalog: Mapping[str, np.ndarray] | None = None,
        sampling_probability: np.ndarray | None = None,
        training_query_tower: tf.keras.Model | None = None,
    ) -> None:
        """``catalog``: the candidate tower's raw inputs of every item (row =
        item row) and ``sampling_probability`` the logQ table; both are needed
        by the full and mixed softmax only. ``training_query_tower``: the query
        tower's layers fed a history as catalog rows (``towers.tower.training_tower``),
        used for batches that carry it so (``training.stream.shard.Examples.histories``)."""
        super().__init__()
        self.query_tower = query_tower
        self.training_query_tower = query_tower if training_query_tower is None else training_query_tower
        self.candidate_tower = candidate_tower
        self.query_names = list(query_names)
        self.candidate_names = list(candidate_names)
        self.embedding_l2 = float(config.embedding_l2)
        self.logq = bool(config.logq_correction)
        self.remove_hits = bool(config.remove_accidental_hits)
        self.negatives = config.negatives
        self.mixed_negatives = int(config.mixed_negatives)
        self.item_id_dropout = float(config.item_id_dropout)
        self.seed = int(config.seed)
        self.cold_path = has_cold_path(candidate_tower)
        self._catalog: dict[str, tf.Tensor] = {}
        if self.negatives is not Negatives.IN_BATCH:
            if catalog is None or (self.negatives is Negatives.MIXED and sampling_probability is None):
                raise ValueError(f"{self.negatives.value} negatives need the catalog's inputs and sampling probabilities")
            self._catalog = {n: as_tensor(np.asarray(v)) for n, v in catalog.items()}
            self.num_items = len(next(iter(catalog.values())))
            self._probability = tf.constant(
                sampling_probability if sampling_probability is not None else np.ones(self.num_items), tf.float32
            )
        self.task = tfrs.tasks.Retrieval(
            temperature=config.temperature,
            num_hard_negatives=config.num_hard_negatives,
            remove_accidental_hits=config.remove_accidental_hits,
        )
        # Every weight lives in the towers, built with their vocabularies: the model is complete
        # before its first batch, which is what BackupAndRestore checks before it restores a run.
        self.built = True

    def attach_top_k_metrics(self, item_embeddings: np.ndarray, ks: Sequence[int] = (10, 50, 100)) -> None:
        """Give the task a FactorizedTopK over the whole catalog (evaluation only).

        A K larger than the catalog is clamped to the catalog size.
        """
        ks = sorted({min(k, len(item_embeddings)) for k in ks})
        index = tfrs.layers.factorized_top_k.BruteForce(k=max(ks))
        index.index(
            tf.constant(item_embeddings, dtype=tf.float32),
            identifiers=tf.range(len(item_embeddings), dtype=tf.int64),
        )
        self.task.factorized_metrics = [tfrs.metrics.FactorizedTopK(candidates=index, ks=list(ks))]

    def compute_loss(self, features: dict[str, tf.Tensor], training: bool = False) -> tf.Tensor:
        query_inputs = {n: features[QUERY_PREFIX + n] for n in self.query_names}
        as_rows = any(t.dtype.is_integer for t in query_inputs.values())  # a history as catalog rows
        query = (self.training_query_tower if as_rows else self.query_tower)(query_inputs, training=training)
        rows = features[ITEM_ROW]
        # Evaluation (FactorizedTopK, which wants one id per query) takes the in-batch path.
        if self.negatives is Negatives.FULL and training:
            loss, candidate = self._full_softmax(query, rows, training)
        else:
            candidate = self._candidates({n: features[CANDIDATE_PREFIX + n] for n in self.candidate_names}, training, salt=0)
            candidates, ids, probability = candidate, rows, features[SAMPLING_PROBABILITY]
            if self.negatives is Negatives.MIXED and training:
                candidates, ids, probability = self._with_uniform_negatives(candidate, rows, probability, training)
            loss = self.task(
                query,
                candidates,
                candidate_sampling_probability=probability if self.logq else None,
                candidate_ids=ids if self.remove_hits else None,
                compute_metrics=not training,
                compute_batch_metrics=False,
            )
        if training and self.cold_path:
            loss = loss + self._cold_loss(query, features, rows)
        if self.embedding_l2 > 0:
            penalty = tf.reduce_mean(tf.reduce_sum(tf.square(query), axis=1)) + tf.reduce_mean(
                tf.reduce_sum(tf.square(candidate), axis=1)
            )
            loss = loss + self.embedding_l2 * penalty
        return loss

    def _candidates(self, inputs: dict[str, tf.Tensor], training: bool, salt: int) -> tf.Tensor:
        """The candidate tower's vectors of ``inputs``; in training, with item-id dropout."""
        ids = inputs.get(ITEM_ID)
        if training and self.item_id_dropout > 0 and ids is not None and ids.dtype == tf.string:
            step = tf.cast(self.optimizer.iterations, tf.int64) if self.optimizer is not None else tf.constant(0, tf.int64)
            seed = tf.stack([tf.constant(self.seed * 3 + salt, tf.int64), step])
            drop = tf.random.stateless_uniform(tf.shape(ids), seed=seed) < self.item_id_dropout
            inputs = {**inputs, ITEM_ID: tf.where(drop, tf.constant(OOV_ITEM_ID), ids)}
        return self.candidate_tower(inputs, training=training)

    def _cold_loss(self, query: tf.Tensor, features: dict[str, tf.Tensor], rows: tf.Tensor) -> tf.Tensor:
        """The cold path's loss: every candidate of the batch with its id out of vocabulary, scored
        against the batch's queries held fixed."""
        inputs = {n: features[CANDIDATE_PREFIX + n] for n in self.candidate_names}
        inputs[ITEM_ID] = tf.fill(tf.shape(inputs[ITEM_ID]), OOV_ITEM_ID)
        return self.task(
            tf.stop_gradient(query),
            self.candidate_tower(inputs, training=True),
            candidate_sampling_probability=features[SAMPLING_PROBABILITY] if self.logq else None,
            candidate_ids=rows if self.remove_hits else None,
            compute_metrics=False,
            compute_batch_metrics=False,
        )

    def _full_softmax(self, query: tf.Tensor, rows: tf.Tensor, training: bool) -> tuple[tf.Tensor, tf.Tensor]:
        """Each query against every item: candidates = [the batch's positives, the
        catalog]; the mask keeps, per row, its own positive and every catalog
        item but that positive's second copy."""
        catalog = self._candidates(self._catalog, training, salt=1)
        positives = tf.gather(catalog, rows)
        batch = tf.shape(query)[0]
        own = tf.eye(batch, dtype=tf.bool)
        every = tf.range(self.num_items, dtype=rows.dtype)
        others = tf.not_equal(rows[:, tf.newaxis], every[tf.newaxis, :])
        loss = self.task(
            query,
            tf.concat([positives, catalog], axis=0),
            candidate_ids=tf.concat([rows, every], axis=0),  # the task's accidental-hit removal agrees with the mask
            score_mask=tf.concat([own, others], axis=1),
            compute_metrics=False,
            compute_batch_metrics=False,
        )
        return loss, positives

    def _with_uniform_negatives(
        self, candidate: tf.Tensor, rows: tf.Tensor, probability: tf.Tensor, training: bool
    ) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
        """Append ``mixed_negatives`` uniformly drawn items; each candidate's
        logQ term is its expected count in the pool: B * p(item) + M / N."""
        sampled = tf.random.uniform([self.mixed_negatives], 0, self.num_items, dtype=rows.dtype)
        negatives = self._candidates({n: tf.gather(t, sampled) for n, t in self._catalog.items()}, training, salt=2)
        batch = tf.cast(tf.shape(candidate)[0], tf.float32)
        uniform = self.mixed_negatives / self.num_items
        expected = tf.concat([probability, tf.gather(self._probability, sampled)], axis=0) * batch + uniform
        return tf.concat([candidate, negatives], axis=0), tf.concat([rows, sampled], axis=0), expected


class InputRows(Protocol):
    """Raw inputs made for a range of rows at a time (:class:`training.stored_inputs.StoredInputs`)."""

    def __len__(self) -> int: ...

    def rows(self, start: int, stop: int) -> dict[str, np.ndarray]: ...


def embed(tower: tf.keras.Model, inputs: Mapping[str, np.ndarray] | InputRows, batch_size: int = 8192) -> np.ndarray:
    """Run a tower over raw input arrays (or inputs made a range of rows at a time) in batches; float32 [n, dim]."""
    if isinstance(inputs, Mapping):
        arrays = inputs
        n = len(next(iter(arrays.values())))

        def rows(start: int, stop: int) -> Mapping[str, np.ndarray]:
            return {k: v[start:stop] for k, v in arrays.items()}
    else:
        n, rows = len(inputs), inputs.rows
    # filled in place: gathering the batches and joining them held the vectors two or three
    # times over (0.77 GB for a million users at dim 64, where the result is 0.26 GB)
    out = np.empty((n, tower.output_shape[-1]), np.float32)
    for start in range(0, n, batch_size):  # tensors per batch: a million users' histories are never one tensor
        chunk = {k: as_tensor(v) for k, v in rows(start, start + batch_size).items()}
        out[start : start + batch_size] = tower(chunk, training=False).numpy()
    return out
