"""The history feature's encoder: "i1|i2|...|iN" (oldest first) -> one pooled item vector.

The input is one string per query, the user's recent item ids joined by the
feature's separator, oldest first. The encoder keeps the last
``history_length`` ids, looks them up (in a table of its own, or in the
candidate tower's item_id table when ``shared_embedding``), and pools them.
Empty strings, empty tokens and ids outside the vocabulary are masked out; a
history with nothing left pools to the zero vector.

Positions are counted from the most recent item (0 = the newest), so the
recency weights mean the same thing whatever the history's length.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from towers.spec import FeatureSpec, HistoryPooling


class HistoryEncoder(tf.keras.layers.Layer):
    """history: split -> last N -> lookup (OOV = 0, masked) -> embedding -> masked pooling.

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

    def call(self, x: tf.Tensor) -> tf.Tensor:  # type: ignore[override]
        tokens = tf.strings.split(x, sep=self.separator)[:, -self.length :]
        lengths = tokens.row_lengths()
        dense = tokens.to_tensor(default_value="", shape=[None, self.length])  # newest item in column lengths-1
        ids = self.lookup(dense)
        mask = tf.cast(tf.not_equal(ids, 0), tf.float32)  # [b, N]
        emb = self.embed(ids)  # [b, N, d]
        if self.pooling is HistoryPooling.MEAN:
            weights = mask / tf.maximum(tf.reduce_sum(mask, axis=1, keepdims=True), 1.0)
        else:
            from_newest = tf.cast(lengths, tf.int32)[:, tf.newaxis] - 1 - tf.range(self.length)[tf.newaxis, :]
            logits = tf.gather(self.position_logits, tf.clip_by_value(from_newest, 0, self.length - 1))
            if self.pooling is HistoryPooling.ATTENTION:
                logits = logits + tf.squeeze(self.attention_score(self.attention_hidden(emb)), axis=-1)
            logits = logits - tf.reduce_max(tf.where(mask > 0, logits, -1e9), axis=1, keepdims=True)
            unnormalised = tf.exp(tf.minimum(logits, 0.0)) * mask
            weights = unnormalised / tf.maximum(tf.reduce_sum(unnormalised, axis=1, keepdims=True), 1e-12)
        return tf.reduce_sum(emb * weights[..., tf.newaxis], axis=1)


def own_tables(item_vocabulary: np.ndarray, dim: int, name: str) -> tuple[tf.keras.layers.StringLookup, tf.keras.layers.Embedding]:
    """A lookup and an embedding table of the history's own (OOV and "" -> row 0)."""
    vocab = np.asarray([v for v in item_vocabulary if v != ""] or ["<none>"], dtype=object)
    lookup = tf.keras.layers.StringLookup(vocabulary=vocab, num_oov_indices=1, mask_token=None, name=f"{name}_lookup")
    return lookup, tf.keras.layers.Embedding(len(vocab) + 1, dim, name=f"{name}_table")


__all__ = ["HistoryEncoder", "own_tables"]
