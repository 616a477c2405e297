"""Baseline builders: the TFRS ids-only models (shapes, published settings),
ALS when `implicit` is installed, and the generated index catalogs."""

import numpy as np
import pytest

from benchmarks.baselines import tfrs_ids

USERS = np.array(["u1", "u2", "u3"])
ITEMS = np.array(["i1", "i2", "i3", "i4", "i5"])


def test_published_settings():
    q, t = tfrs_ids.SEED_QUICKSTART, tfrs_ids.TUTORIAL
    assert (q.embedding_dim, q.learning_rate, q.batch_size, q.epochs) == (64, 0.5, 4096, 3)
    assert (t.embedding_dim, t.learning_rate, t.batch_size, t.epochs) == (32, 0.1, 8192, 3)
    assert t.cache and t.shuffle_buffer == 100_000 and t.top_k_in_training and q.top_k_in_training
    assert t.with_dim(64).embedding_dim == 64 and t.with_dim(64).batch_size == 8192


@pytest.mark.parametrize("config", [tfrs_ids.SEED_QUICKSTART, tfrs_ids.TUTORIAL], ids=lambda c: c.name)
def test_model_shapes_and_one_training_step(config):
    from dataclasses import replace

    import tensorflow as tf

    cfg = replace(config, batch_size=4, epochs=1)
    model = tfrs_ids.build_model(USERS, ITEMS, cfg, seed=1)
    dim = config.embedding_dim
    assert model.user_model(tf.constant(["u1", "u2"])).shape == (2, dim)
    assert model.item_model(tf.constant(["i5"])).shape == (1, dim)
    # one row per known id plus one OOV row, as StringLookup(mask_token=None) + Embedding(n + 1)
    assert model.user_model.layers[1].input_dim == len(USERS) + 1
    assert model.item_model.layers[1].input_dim == len(ITEMS) + 1
    ds = tfrs_ids.train_dataset(np.array(["u1", "u2", "u3", "u1", "u2"]), np.array(["i1", "i2", "i3", "i4", "i5"]), cfg, seed=1)
    batch = next(iter(ds))
    assert set(batch) == {"user_id", "item_id"} and batch["user_id"].shape == (4,)
    history = model.fit(ds, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    ue, ie = tfrs_ids.embeddings(model, USERS, ITEMS)
    assert ue.shape == (3, dim) and ie.shape == (5, dim) and ue.dtype == np.float32
    # an unknown id falls into the OOV row, it does not fail
    assert model.user_model(tf.constant(["nobody"])).shape == (1, dim)


def test_als_shapes_when_available():
    from benchmarks.baselines import als

    ok, why = als.available()
    assert ok, f"{why} (the dev extra installs implicit)"
    model = als.fit_als(
        np.array([0, 0, 1, 2, 2]), np.array([0, 1, 1, 2, 3]), 3, 4, factors=4, regularization=0.1, alpha=1.0, iterations=3
    )
    assert model.user_factors.shape == (3, 4) and model.item_factors.shape == (4, 4)
    assert model.score(np.array([0, 2])).shape == (2, 4)


def test_generated_catalog_and_sweep_verdict():
    from benchmarks.index.exact import exact_single, exact_top_k
    from benchmarks.index.vectors import clustered_gaussian
    from benchmarks.index.verdict import verdict
    from training.metrics import top_k_indices

    items, queries = clustered_gaussian(2000, 8, 5, seed=0)
    assert items.shape == (2000, 8) and queries.shape == (5, 8) and items.dtype == np.float32
    top = exact_top_k(items, queries, k=10, chunk=2)
    assert top.shape == (5, 10)
    assert top.tolist() == top_k_indices(queries @ items.T, 10).tolist()  # the project's own exact top-k
    assert exact_single(items, queries[0], k=10).tolist() == top[0].tolist()
    points = [
        {"leaves_to_search": 10, "reorder": 100, "recall_at_10": 0.90, "qps_batched": 1000.0, "chosen": True},
        {"leaves_to_search": 5, "reorder": 100, "recall_at_10": 0.92, "qps_batched": 2000.0, "chosen": False},
        {"leaves_to_search": 20, "reorder": 100, "recall_at_10": 0.99, "qps_batched": 500.0, "chosen": False},
    ]
    v = verdict(points, {})
    assert not v["on_pareto_frontier"]
    assert v["faster_at_same_or_better_recall"][0]["leaves_to_search"] == 5
    assert [p["leaves_to_search"] for p in v["pareto_frontier"]] == [5, 20]


def test_truncated_svd_scores_are_the_projection_on_the_top_item_factors():
    from benchmarks.baselines.svd import fit_svd

    rng = np.random.default_rng(0)
    x = (rng.random((30, 12)) < 0.3).astype(np.float32)
    model = fit_svd(x, components=4, seed=0)
    v = model.item_factors
    assert v.shape == (12, 4)
    np.testing.assert_allclose(v.T @ v, np.eye(4), atol=1e-4)  # orthonormal item factors
    _, _, vt = np.linalg.svd(x, full_matrices=False)
    top = vt[:4].T  # the exact top-4 right singular subspace
    np.testing.assert_allclose(v @ v.T, top @ top.T, atol=1e-3)
    np.testing.assert_allclose(model.score(np.array([2, 5])), x[[2, 5]] @ top @ top.T, atol=1e-3)
    full = fit_svd(x, components=100, seed=0)  # a rank above the matrix size is capped at min(shape) - 1
    assert full.item_factors.shape[1] == 11


def test_lightfm_item_features_are_identity_plus_metadata_tokens_rows_summing_to_one():
    import pandas as pd

    from benchmarks.baselines.lightfm_warp import item_features

    items = pd.DataFrame(
        {"item_id": ["a", "b", "c"], "genres": [["Drama", "War"], [], ["Drama"]], "year": [1995.0, np.nan, 1987.0]}
    )
    m, tokens = item_features(items)
    assert tokens == ["genres=Drama", "genres=War", "decade=1990", "decade=1980"]
    dense = m.toarray()
    assert dense.shape == (3, 3 + 4)
    np.testing.assert_allclose(dense.sum(axis=1), 1.0, rtol=1e-6)
    np.testing.assert_allclose(dense[0], [0.25, 0, 0, 0.25, 0.25, 0.25, 0])  # own id, Drama, War, 1990s
    np.testing.assert_allclose(dense[1], [0, 1, 0, 0, 0, 0, 0])  # no metadata: its id alone


def test_item_knn_cosine_by_hand_and_neighbour_cut():
    from benchmarks.baselines.item_knn import ItemKnn, cosine_neighbours

    x = np.array([[1, 1, 0], [1, 0, 1], [1, 1, 1], [0, 0, 0]], dtype=np.float32)
    sim = cosine_neighbours(x)
    # items 0 (3 users) and 1 (2 users) share 2 users: 2 / sqrt(3 * 2); 1 and 2 share 1: 1 / 2
    assert sim[0, 1] == pytest.approx(2 / np.sqrt(6)) and sim[1, 2] == pytest.approx(0.5)
    assert np.allclose(sim, sim.T) and np.allclose(np.diag(sim), 0.0)
    cut = cosine_neighbours(x, neighbours=1)
    assert (np.count_nonzero(cut, axis=1) == 1).all() and cut[1, 0] == pytest.approx(2 / np.sqrt(6))
    session = np.array([[0, 1, 0]], dtype=np.float32)  # a session that gave item 1
    assert ItemKnn(session, sim).score(np.array([0]))[0].tolist() == pytest.approx(sim[1].tolist())
