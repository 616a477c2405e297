"""The generated catalog: consistent tables and vectors, deterministic in the seed."""

import numpy as np

from benchmarks.catalog import generate_catalog, item_id, user_id


def test_generated_catalog_is_consistent_and_deterministic():
    a = generate_catalog(2_000, 300, dim=16, seed=3)
    b = generate_catalog(2_000, 300, dim=16, seed=3)
    c = generate_catalog(2_000, 300, dim=16, seed=4)
    assert a.item_embeddings.shape == (2_000, 16) and a.item_embeddings.dtype == np.float32
    assert a.user_vectors.shape == (300, 16)
    assert list(a.items.columns) == ["item_id", "popularity", "category", "price"]
    assert a.items["item_id"].iloc[7] == item_id(7) == "i0000007" and a.users["user_id"].iloc[5] == user_id(5)
    assert a.items["item_id"].is_unique and a.users["user_id"].is_unique
    assert (a.items["popularity"] >= 0).all()
    rows = np.concatenate([np.asarray(r) for r in a.seen["item_rows"]])
    assert rows.min() >= 0 and rows.max() < 2_000
    assert set(a.seen["user_id"]) <= set(a.users["user_id"])
    assert np.array_equal(a.item_embeddings, b.item_embeddings) and a.items.equals(b.items)
    assert not np.array_equal(a.item_embeddings, c.item_embeddings)
