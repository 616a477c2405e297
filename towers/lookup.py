"""The string -> row lookup of the towers' id and categorical tables.

Keras's ``StringLookup`` keeps its vocabulary in a named ``tf.lookup.StaticHashTable``:
TensorFlow's resource manager holds a named table until the process exits, whether
or not anything still refers to it. A process that builds two models (the selection
run, then the refit) or loads one version after another (serving's hot swap) keeps
every table it ever built: 0.09 GB per million ids. :class:`IdLookup` keeps the
same table anonymous, so it goes when the last layer or function holding it goes.
"""

from __future__ import annotations

import tensorflow as tf


@tf.keras.utils.register_keras_serializable(package="towers")
class IdLookup(tf.keras.layers.StringLookup):
    """``StringLookup`` (same arguments, same rows) whose table is freed with it."""

    def _lookup_table_from_tokens(self, tokens: tf.Tensor) -> tf.lookup.StaticHashTable:
        if self.invert:  # not used by the towers: the parent's named table
            return super()._lookup_table_from_tokens(tokens)
        with tf.init_scope():
            start = self._token_start_index()
            rows = tf.range(start, start + tf.size(tokens), dtype=self._value_dtype)
            initializer = tf.lookup.KeyValueTensorInitializer(tokens, rows, self._key_dtype, self._value_dtype)
            return tf.lookup.StaticHashTable(initializer, self._default_value, experimental_is_anonymous=True)


__all__ = ["IdLookup"]
