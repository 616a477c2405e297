"""The two-tower retrieval model: a thin ``tfrs.Model`` around a ``Retrieval`` task."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import tensorflow as tf
import tensorflow_recommenders as tfrs

from towers.features import as_tensor
from training.config import TrainConfig

QUERY_PREFIX = "q_"
CANDIDATE_PREFIX = "c_"
ITEM_ROW = "_item_row"
SAMPLING_PROBABILITY = "_sampling_probability"


class TwoTowerModel(tfrs.Model):
    """Query tower and candidate tower trained with in-batch softmax.

    Features arrive as one dict per batch: ``q_<name>`` for query inputs,
    ``c_<name>`` for candidate inputs, ``_item_row`` (the item's catalog row,
    used to drop accidental hits) and ``_sampling_probability`` (the item's
    share of training interactions, for the logQ correction).

    ``FactorizedTopK`` scores every example against the whole catalog, which
    would dominate training time, so the task gets it only for evaluation
    (:meth:`attach_top_k_metrics`) and training computes no metrics at all.
    """

    def __init__(
        self,
        query_tower: tf.keras.Model,
        candidate_tower: tf.keras.Model,
        query_names: Sequence[str],
        candidate_names: Sequence[str],
        config: TrainConfig,
    ) -> None:
        super().__init__()
        self.query_tower = query_tower
        self.candidate_tower = candidate_tower
        self.query_names = list(query_names)
        self.candidate_names = list(candidate_names)
        self.embedding_l2 = float(config.embedding_l2)
        self.logq = bool(config.logq_correction)
        self.remove_hits = bool(config.remove_accidental_hits)
        self.task = tfrs.tasks.Retrieval(
            temperature=config.temperature,
            num_hard_negatives=config.num_hard_negatives,
            remove_accidental_hits=config.remove_accidental_hits,
        )

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
        query = self.query_tower({n: features[QUERY_PREFIX + n] for n in self.query_names}, training=training)
        candidate = self.candidate_tower(
            {n: features[CANDIDATE_PREFIX + n] for n in self.candidate_names}, training=training
        )
        loss = self.task(
            query,
            candidate,
            candidate_sampling_probability=features[SAMPLING_PROBABILITY] if self.logq else None,
            candidate_ids=features[ITEM_ROW] if self.remove_hits else None,
            compute_metrics=not training,
            compute_batch_metrics=False,
        )
        if self.embedding_l2 > 0:
            penalty = tf.reduce_mean(tf.reduce_sum(tf.square(query), axis=1)) + tf.reduce_mean(
                tf.reduce_sum(tf.square(candidate), axis=1)
            )
            loss = loss + self.embedding_l2 * penalty
        return loss


def make_optimizer(config: TrainConfig) -> tf.keras.optimizers.Optimizer:
    kind = config.optimizer.value
    if kind == "adam":
        return tf.keras.optimizers.Adam(learning_rate=config.learning_rate)
    if kind == "adagrad":
        return tf.keras.optimizers.Adagrad(learning_rate=config.learning_rate)
    return tf.keras.optimizers.SGD(learning_rate=config.learning_rate)


def embed(tower: tf.keras.Model, inputs: dict[str, np.ndarray], batch_size: int = 8192) -> np.ndarray:
    """Run a tower over raw input arrays in batches; float32 [n, dim]."""
    n = len(next(iter(inputs.values())))
    tensors = {k: as_tensor(v) for k, v in inputs.items()}
    outs = []
    for start in range(0, n, batch_size):
        chunk = {k: t[start : start + batch_size] for k, t in tensors.items()}
        outs.append(tower(chunk, training=False).numpy())
    dim = tower.output_shape[-1]
    return np.concatenate(outs, axis=0).astype(np.float32) if outs else np.zeros((0, dim), np.float32)
