"""Sparse embedding updates: after a training step, the rows of every table
that the batch did not touch are bit-identical (lazy Adam, Adagrad tables via
TFRS's CompositeOptimizer); Keras's dense Adam moves them, which is why it is
no longer the default."""

import numpy as np
import pytest
import tensorflow as tf

from tests.training.batches import training_batches
from training.config import OptimizerKind, TrainConfig
from training.data.synthetic import generate_storefront
from training.optimizers import LazyAdam, embedding_tables
from training.pipeline import default_spec
from training.prepared import prepare
from training.trainer import build_model


@pytest.fixture(scope="module")
def prep():
    data = generate_storefront(items=400, users=600, interactions=6000, seed=3)
    spec = default_spec(data.source, data, embedding_dim=8)
    assert spec.history_features  # the product's spec: its history table is updated too
    return prepare(data, spec), spec


def _two_batches(prep_and_spec):
    prep, _ = prep_and_spec
    rows = np.arange(len(prep.user_rows))
    with training_batches(prep, rows, 64, seed=1) as ds:
        it = iter(ds)
        return next(it), next(it)


def _touched(model, batch) -> dict[str, np.ndarray]:
    """Per table, the rows this batch's gradient names."""
    tables = embedding_tables(model.query_tower, model.candidate_tower)
    with tf.GradientTape() as tape:
        loss = model.compute_loss(batch, training=True)
    grads = tape.gradient(loss, tables)
    out = {}
    for table, grad in zip(tables, grads, strict=True):
        assert isinstance(grad, tf.IndexedSlices), f"{table.name}: dense gradient"
        out[table.name] = np.unique(grad.indices.numpy())
    return out


def _step_and_compare(prep_and_spec, optimizer: OptimizerKind):
    prep, spec = prep_and_spec
    config = TrainConfig(optimizer=optimizer, seed=0, embedding_l2=0.05)
    tf.keras.utils.set_random_seed(0)
    rows = np.arange(len(prep.user_rows))
    model = build_model(prep, spec, config, rows)
    first, second = _two_batches(prep_and_spec)
    model.train_step(first)  # moments of the first batch's rows become nonzero
    tables = embedding_tables(model.query_tower, model.candidate_tower)
    before = {t.name: t.numpy().copy() for t in tables}
    touched = _touched(model, second)
    model.train_step(second)
    return tables, before, touched


@pytest.mark.parametrize("optimizer", [OptimizerKind.LAZY_ADAM, OptimizerKind.ADAM_ADAGRAD])
def test_sparse_updates_leave_untouched_rows_bit_identical(prep, optimizer):
    tables, before, touched = _step_and_compare(prep, optimizer)
    assert len(tables) >= 4  # user id, item id, categories, history table...
    for t in tables:
        after = t.numpy()
        rows = touched[t.name]
        untouched = np.setdiff1d(np.arange(after.shape[0]), rows)
        assert len(untouched) > 0, t.name
        assert np.array_equal(after[untouched], before[t.name][untouched]), f"{t.name}: untouched rows moved"
        assert not np.array_equal(after[rows], before[t.name][rows]), f"{t.name}: touched rows did not move"


def test_dense_adam_moves_rows_the_batch_did_not_touch(prep):
    """The reason for the default: Keras Adam's momentum moves rows of earlier batches too."""
    tables, before, touched = _step_and_compare(prep, OptimizerKind.ADAM)
    moved = 0
    for t in tables:
        untouched = np.setdiff1d(np.arange(t.shape[0]), touched[t.name])
        moved += int((t.numpy()[untouched] != before[t.name][untouched]).any(axis=1).sum())
    assert moved > 0


def test_lazy_adam_matches_adam_on_the_rows_it_updates():
    """One step from zero moments: lazy and dense Adam agree on the touched
    rows (both see the same moments), and on dense variables always;
    lazy leaves the other rows where they were."""
    init = np.random.default_rng(0).normal(size=(6, 3)).astype(np.float32)
    rows = tf.constant([4, 1], tf.int64)
    grad = tf.IndexedSlices(tf.constant([[1.0, -2.0, 0.5], [0.3, 0.3, -1.0]]), rows, tf.constant([6, 3], tf.int64))
    dense_grad = tf.constant(np.ones((2, 2), np.float32))
    out = []
    for opt in (LazyAdam(0.01), tf.keras.optimizers.Adam(0.01)):
        table, kernel = tf.Variable(init), tf.Variable(np.zeros((2, 2), np.float32))
        for _ in range(3):
            opt.apply_gradients([(grad, table), (dense_grad, kernel)])
        out.append((table.numpy(), kernel.numpy()))
    (lazy_t, lazy_k), (adam_t, adam_k) = out
    np.testing.assert_allclose(
        lazy_t[[1, 4]], adam_t[[1, 4]], rtol=1e-5, atol=1e-6
    )  # the same rows every step: same moments (float32 rounding apart)
    np.testing.assert_array_equal(lazy_t[[0, 2, 3, 5]], init[[0, 2, 3, 5]])
    np.testing.assert_array_equal(lazy_k, adam_k)


def test_lazy_adam_sums_a_row_named_twice():
    """What a cross-worker all-reduce hands over: the workers' slices concatenated."""
    init = np.zeros((4, 2), np.float32)
    twice = tf.IndexedSlices(tf.constant([[1.0, 0.0], [0.5, -1.0]]), tf.constant([2, 2], tf.int64), tf.constant([4, 2], tf.int64))
    once = tf.IndexedSlices(tf.constant([[1.5, -1.0]]), tf.constant([2], tf.int64), tf.constant([4, 2], tf.int64))
    out = []
    for grad in (twice, once):
        table, opt = tf.Variable(init), LazyAdam(0.1)
        opt.build([table])
        opt.update_step(grad, table)  # below apply_gradients, which would sum the duplicates itself
        out.append(table.numpy())
    np.testing.assert_array_equal(out[0], out[1])
    assert out[1][2].tolist() != [0.0, 0.0]


def test_the_default_optimizer_is_lazy_and_composite_covers_every_variable(prep):
    data, spec = prep
    rows = np.arange(len(data.user_rows))
    assert isinstance(build_model(data, spec, TrainConfig(seed=0), rows).optimizer, LazyAdam)
    model = build_model(data, spec, TrainConfig(seed=0, optimizer=OptimizerKind.ADAM_ADAGRAD), rows)
    (adagrad, tables), (adam, rest) = model.optimizer._optimizers_and_vars
    assert isinstance(adagrad, tf.keras.optimizers.legacy.Adagrad) and isinstance(adam, tf.keras.optimizers.legacy.Adam)
    handled = [v.ref() for v in [*tables(), *rest()]]
    assert len(handled) == len(set(handled)) == len(model.trainable_variables)
    assert {t.ref() for t in tables()} == {t.ref() for t in embedding_tables(model.query_tower, model.candidate_tower)}
