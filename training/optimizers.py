"""The optimizer a training run uses, and which of its updates are sparse.

Keras's Adam turns an embedding table's sparse gradient into a dense update:
at every step it decays the first and second moments of every row of every
table and moves every row (``tf_keras`` ``Adam.update_step``), so a step costs
time in proportion to the number of ids, not to the batch (BENCHMARKS.md,
"Training at scale"). Two sparse alternatives (``TrainConfig.optimizer``):

- ``lazy_adam`` (:class:`LazyAdam`): Adam whose sparse-gradient variables
  (the embedding tables) update only the rows a batch touches: those rows'
  moments and values, with the global step's bias correction, as
  TensorFlow Addons' LazyAdam did; dense variables get plain Adam;
- ``adam_adagrad``: TFRS's ``CompositeOptimizer`` with Adagrad (sparse by
  nature) on the embedding tables at ``embedding_learning_rate`` and Adam on
  every other variable.
"""

from __future__ import annotations

import tensorflow as tf
import tensorflow_recommenders as tfrs

from training.config import OptimizerKind, TrainConfig


class LazyAdam(tf.keras.optimizers.Adam):
    """Adam that leaves the rows a sparse gradient does not name untouched.

    Dense gradients take Keras's Adam step unchanged; an ``IndexedSlices``
    gradient (an embedding lookup's) updates only its rows' moments and
    values, a row named more than once with the sum of its parts."""

    def __init__(self, learning_rate: float = 0.001, name: str = "LazyAdam", **kw: object) -> None:
        if kw.get("amsgrad"):
            raise ValueError("LazyAdam does not implement amsgrad")
        # Keras compiles each update with XLA on a GPU; tf.unique's output has a
        # shape XLA cannot know, so the sparse step stays uncompiled.
        kw.setdefault("jit_compile", False)
        super().__init__(learning_rate=learning_rate, name=name, **kw)

    def update_step(self, gradient: tf.Tensor | tf.IndexedSlices, variable: tf.Variable) -> None:
        if not isinstance(gradient, tf.IndexedSlices):
            super().update_step(gradient, variable)
            return
        dtype = variable.dtype
        lr = tf.cast(self.learning_rate, dtype)
        step = tf.cast(self.iterations + 1, dtype)
        beta_1 = tf.cast(self.beta_1, dtype)
        beta_2 = tf.cast(self.beta_2, dtype)
        alpha = lr * tf.sqrt(1 - tf.pow(beta_2, step)) / (1 - tf.pow(beta_1, step))
        key = self._index_dict[self._var_key(variable)]
        m, v = self._momentums[key], self._velocities[key]
        # Keras sums a replica's duplicate rows, but a cross-worker all-reduce
        # concatenates the workers' slices: sum each row's parts once more.
        rows, position = tf.unique(gradient.indices)
        grad = tf.math.unsorted_segment_sum(gradient.values, position, tf.shape(rows)[0])
        m_rows = beta_1 * tf.gather(m, rows) + (1 - beta_1) * grad
        v_rows = beta_2 * tf.gather(v, rows) + (1 - beta_2) * tf.square(grad)
        m.scatter_update(tf.IndexedSlices(m_rows, rows))
        v.scatter_update(tf.IndexedSlices(v_rows, rows))
        variable.scatter_sub(tf.IndexedSlices(alpha * m_rows / (tf.sqrt(v_rows) + self.epsilon), rows))


def embedding_tables(*towers: tf.keras.Model) -> list[tf.Variable]:
    """Every ``Embedding`` layer's table in ``towers``, each once (a history
    feature may share the candidate tower's item table)."""
    seen: dict[object, tf.Variable] = {}
    for tower in towers:
        for layer in tower.submodules:
            if isinstance(layer, tf.keras.layers.Embedding):
                seen.setdefault(layer.embeddings.ref(), layer.embeddings)
    return list(seen.values())


def make_optimizer(config: TrainConfig, model: tf.keras.Model) -> tf.keras.optimizers.Optimizer:
    """The optimizer ``config.optimizer`` names, for ``model`` (a model with
    ``query_tower`` and ``candidate_tower``; ``adam_adagrad`` needs to know
    which variables are tables)."""
    kind = config.optimizer
    lr = config.learning_rate
    if kind is OptimizerKind.LAZY_ADAM:
        return LazyAdam(learning_rate=lr)
    if kind is OptimizerKind.ADAM:
        return tf.keras.optimizers.Adam(learning_rate=lr)
    if kind is OptimizerKind.ADAGRAD:
        return tf.keras.optimizers.Adagrad(learning_rate=lr)
    if kind is OptimizerKind.SGD:
        return tf.keras.optimizers.SGD(learning_rate=lr)
    tables = embedding_tables(model.query_tower, model.candidate_tower)
    table_refs = {t.ref() for t in tables}
    return tfrs.experimental.optimizers.CompositeOptimizer(
        [
            (tf.keras.optimizers.legacy.Adagrad(learning_rate=config.embedding_learning_rate), lambda: tables),
            (
                tf.keras.optimizers.legacy.Adam(learning_rate=lr),
                lambda: [v for v in model.trainable_variables if v.ref() not in table_refs],
            ),
        ]
    )


__all__ = ["LazyAdam", "embedding_tables", "make_optimizer"]
