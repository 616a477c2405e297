"""The history feature's encoder: the user's recent items -> one pooled item vector.

Two inputs mean the same history:

- at the serving signature (and in evaluation), one string per query, the
  user's recent item ids joined by the feature's separator, oldest first;
- in training, an int32 [batch, history_length] tensor of catalog rows + 1,
  newest first, 0 = nothing (:meth:`training.stream.shard.Examples.histories` cuts it
  from the time-ordered interactions once per batch: no strings are joined or
  split in the training step). :class:`CatalogRowIds` maps those rows to the
  table's ids, and :func:`towers.tower.training_tower` feeds them.

Both become newest-first table ids ``[batch, history_length]`` (0 = padding,
an empty token or an id outside the vocabulary: masked), so column j is the
j-th most recent item whatever the history's length, and the recency weights
mean the same thing for every query. A history with nothing left pools to
the zero vector.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from towers.lookup import IdLookup
from towers.spec import FeatureSpec, HistoryPooling


class HistoryEncoder(tf.keras.layers.Layer):
    """history: (strings -> last N, newest first -> lookup) or table ids -> embedding -> masked pooling.

    ``lookup`` must map every unknown string (and "") to 0: a StringLookup with
    one OOV index and no mask token, as :class:`towers.features.LookupEmbedding`
    builds for ids, so the candidate tower's item_id layers can be shared.
    """

    def __init__(
        self,
        spec: FeatureSpec,
        lookup: tf.keras.layers.StringLookup,
        embed: tf.keras.layers.Embedding,
        **kw: object,
    ) -> None:
        super().__init__(**kw)
        self.separator = spec.separator
        self.length = spec.history_length
        self.pooling = spec.pooling
        self.lookup = lookup
        self.embed = embed
        if self.pooling is not HistoryPooling.MEAN:
            # one logit per position from the newest; all 0 at the start = the plain mean
            self.position_logits = self.add_weight(
                name="position_logits", shape=(self.length,), initializer="zeros", trainable=True
            )
        if self.pooling is HistoryPooling.ATTENTION:
            self.attention_hidden = tf.keras.layers.Dense(32, activation="tanh", name="attention_hidden")
            self.attention_score = tf.keras.layers.Dense(1, use_bias=False, name="attention_score")

    def table_ids(self, x: tf.Tensor) -> tf.Tensor:
        """ "i1|i2|...|in" (oldest first) -> [b, N] table ids, newest first, 0-padded."""
        tokens = tf.reverse(tf.strings.split(x, sep=self.separator), axis=[1])[:, : self.length]
        return self.lookup(tokens.to_tensor(default_value="", shape=[None, self.length]))

    def call(self, x: tf.Tensor) -> tf.Tensor:
        ids = self.table_ids(x) if x.dtype == tf.string else x
        mask = tf.cast(tf.not_equal(ids, 0), tf.float32)  # [b, N]
        emb = self.embed(ids)  # [b, N, d]
        if self.pooling is HistoryPooling.MEAN:
            weights = mask / tf.maximum(tf.reduce_sum(mask, axis=1, keepdims=True), 1.0)
        else:
            logits = tf.broadcast_to(self.position_logits[tf.newaxis, :], tf.shape(mask))
            if self.pooling is HistoryPooling.ATTENTION:
                # an item's score depends on the item alone, and a batch's histories repeat
                # items: score each distinct item once (a third less work than per position)
                distinct, where = tf.unique(tf.reshape(ids, [-1]))
                scores = tf.squeeze(self.attention_score(self.attention_hidden(self.embed(distinct))), axis=-1)
                logits = logits + tf.reshape(tf.gather(scores, where), tf.shape(ids))
            logits = logits - tf.reduce_max(tf.where(mask > 0, logits, -1e9), axis=1, keepdims=True)
            unnormalised = tf.exp(tf.minimum(logits, 0.0)) * mask
            weights = unnormalised / tf.maximum(tf.reduce_sum(unnormalised, axis=1, keepdims=True), 1e-12)
        return tf.reduce_sum(emb * weights[..., tf.newaxis], axis=1)


class CatalogRowIds(tf.keras.layers.Layer):
    """Catalog rows + 1 (0 = nothing) -> the encoder's table ids (0 = masked).

    The map is a constant made once from the catalog's item ids in row order
    (``lookup(item_ids[row])``); it lives only in the training tower, so the
    exported query tower knows nothing of the catalog."""

    def __init__(self, lookup: tf.keras.layers.StringLookup, item_ids: np.ndarray, **kw: object) -> None:
        super().__init__(**kw)
        ids = lookup(tf.constant(np.asarray(item_ids, dtype=object).astype(str))) if len(item_ids) else tf.zeros([0], tf.int64)
        self.ids_of_row = tf.concat([tf.zeros([1], tf.int64), tf.cast(ids, tf.int64)], axis=0)

    def call(self, rows: tf.Tensor) -> tf.Tensor:
        return tf.gather(self.ids_of_row, rows)


def own_tables(
    item_vocabulary: np.ndarray, dim: int, name: str
) -> tuple[tf.keras.layers.StringLookup, tf.keras.layers.Embedding]:
    """A lookup and an embedding table of the history's own (OOV and "" -> row 0)."""
    vocab = np.asarray([v for v in item_vocabulary if v != ""] or ["<none>"], dtype=object)
    lookup = IdLookup(vocabulary=vocab, num_oov_indices=1, mask_token=None, name=f"{name}_lookup")
    return lookup, tf.keras.layers.Embedding(len(vocab) + 1, dim, name=f"{name}_table")


__all__ = ["CatalogRowIds", "HistoryEncoder", "own_tables"]
