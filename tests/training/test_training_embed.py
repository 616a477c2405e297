"""training.model.embed: a tower's vectors of many rows, a batch at a time, into one array
that is the only copy of the result."""

import tracemalloc

import numpy as np
import tensorflow as tf

from training.model import embed


def _tower(dim: int) -> tf.keras.Model:
    x = tf.keras.Input(shape=(3,), name="x", dtype=tf.float32)
    return tf.keras.Model({"x": x}, tf.keras.layers.Dense(dim, use_bias=False)(x))


def test_embed_matches_the_tower_and_holds_the_vectors_once():
    tf.keras.utils.set_random_seed(0)
    tower, n, dim = _tower(64), 50_000, 64
    x = np.random.default_rng(0).normal(size=(n, 3)).astype(np.float32)
    embed(tower, {"x": x[:10]}, batch_size=4)  # the tower traced once, outside the measurement
    tracemalloc.start()
    try:
        vectors = embed(tower, {"x": x}, batch_size=4096)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert vectors.dtype == np.float32 and vectors.shape == (n, dim)
    np.testing.assert_allclose(vectors, x @ tower.layers[-1].kernel.numpy(), rtol=1e-5, atol=1e-5)
    assert peak < 1.3 * vectors.nbytes  # the result plus one batch, not the batches and their join


def test_embed_of_no_rows_is_an_empty_matrix_of_the_towers_width():
    out = embed(_tower(8), {"x": np.zeros((0, 3), np.float32)})
    assert out.shape == (0, 8) and out.dtype == np.float32
