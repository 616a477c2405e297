"""The two ids-only TFRS retrieval models the project must be compared with,
written here from their published descriptions (not copied):

* the **TFRS README quick-start** (what the project's seed code did): a user
  embedding table and an item embedding table, 64-d, ``StringLookup`` over the
  known ids (one OOV row), ``tfrs.tasks.Retrieval`` with a ``FactorizedTopK``
  metric over the whole catalog, Adagrad(0.5), batch 4096, 3 epochs over the
  training interactions in one fixed shuffled order;
* the **TFRS basic-retrieval tutorial**: the same shape at 32-d, Adagrad(0.1),
  training data shuffled once (``shuffle(100_000)``), batched by 8192 and
  cached, 3 epochs.

In both, the task's ``FactorizedTopK`` metric is computed in the training step
too (``compute_loss`` calls the task with its default ``compute_metrics=True``),
as the published code does; that is part of what the training-speed benchmark
measures. The only deliberate difference: items are keyed by MovieLens item id,
where the tutorial keys them by title (a few titles are shared by two films).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
import tensorflow as tf
import tensorflow_recommenders as tfrs


@dataclass(frozen=True)
class TfrsBaselineConfig:
    name: str
    embedding_dim: int
    learning_rate: float
    batch_size: int
    epochs: int
    shuffle_buffer: int | None  # tutorial: train.shuffle(100_000); quick-start: no shuffle op
    cache: bool  # tutorial: .batch(8192).cache()
    top_k_in_training: bool = True
    candidate_batch: int = 128  # movies.batch(128).map(movie_model) in both

    def with_dim(self, dim: int) -> TfrsBaselineConfig:
        return replace(self, embedding_dim=dim)


SEED_QUICKSTART = TfrsBaselineConfig(
    name="tfrs_quickstart", embedding_dim=64, learning_rate=0.5, batch_size=4096, epochs=3, shuffle_buffer=None, cache=False
)
TUTORIAL = TfrsBaselineConfig(
    name="tfrs_tutorial", embedding_dim=32, learning_rate=0.1, batch_size=8192, epochs=3, shuffle_buffer=100_000, cache=True
)
BASELINES = {c.name: c for c in (SEED_QUICKSTART, TUTORIAL)}


def id_tower(vocabulary: Sequence[str], dim: int, name: str) -> tf.keras.Model:
    """StringLookup (no mask, one OOV index) -> Embedding(len(vocab) + 1, dim)."""
    vocab = np.asarray(vocabulary, dtype=str)
    return tf.keras.Sequential(
        [
            tf.keras.layers.StringLookup(vocabulary=vocab, mask_token=None),
            tf.keras.layers.Embedding(len(vocab) + 1, dim),
        ],
        name=name,
    )


class IdsRetrievalModel(tfrs.Model):
    """User id -> embedding, item id -> embedding, in-batch softmax retrieval."""

    def __init__(self, user_vocab: Sequence[str], item_vocab: Sequence[str], config: TfrsBaselineConfig) -> None:
        super().__init__()
        self.config = config
        self.user_model = id_tower(user_vocab, config.embedding_dim, "user_model")
        self.item_model = id_tower(item_vocab, config.embedding_dim, "item_model")
        items = tf.data.Dataset.from_tensor_slices(np.asarray(item_vocab, dtype=str))
        self.task = tfrs.tasks.Retrieval(
            metrics=tfrs.metrics.FactorizedTopK(candidates=items.batch(config.candidate_batch).map(self.item_model))
        )

    def compute_loss(self, features: dict[str, tf.Tensor], training: bool = False) -> tf.Tensor:
        user_embeddings = self.user_model(features["user_id"])
        item_embeddings = self.item_model(features["item_id"])
        return self.task(user_embeddings, item_embeddings, compute_metrics=self.config.top_k_in_training or not training)


def build_model(
    user_vocab: Sequence[str], item_vocab: Sequence[str], config: TfrsBaselineConfig, seed: int = 42
) -> IdsRetrievalModel:
    tf.keras.utils.set_random_seed(seed)
    model = IdsRetrievalModel(user_vocab, item_vocab, config)
    model.compile(optimizer=tf.keras.optimizers.Adagrad(learning_rate=config.learning_rate))
    return model


def train_dataset(user_ids: np.ndarray, item_ids: np.ndarray, config: TfrsBaselineConfig, seed: int = 42) -> tf.data.Dataset:
    """The training input pipeline of the published code.

    ``user_ids``/``item_ids`` are the training interactions in the order the
    published code sees them (MovieLens shuffled once with a fixed seed).
    """
    ds = tf.data.Dataset.from_tensor_slices(
        {"user_id": np.asarray(user_ids, dtype=str), "item_id": np.asarray(item_ids, dtype=str)}
    )
    if config.shuffle_buffer:
        ds = ds.shuffle(config.shuffle_buffer, seed=seed)
    ds = ds.batch(config.batch_size)
    if config.cache:
        ds = ds.cache()
    return ds


def eval_dataset(user_ids: np.ndarray, item_ids: np.ndarray, batch_size: int = 4096) -> tf.data.Dataset:
    ds = tf.data.Dataset.from_tensor_slices(
        {"user_id": np.asarray(user_ids, dtype=str), "item_id": np.asarray(item_ids, dtype=str)}
    )
    return ds.batch(batch_size)


def embeddings(model: IdsRetrievalModel, user_ids: Sequence[str], item_ids: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """float32 user and item embeddings, rows in the order of the given ids."""
    users = model.user_model(tf.constant(np.asarray(user_ids, dtype=str))).numpy().astype(np.float32)
    items = model.item_model(tf.constant(np.asarray(item_ids, dtype=str))).numpy().astype(np.float32)
    return users, items
