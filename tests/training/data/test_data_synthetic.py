"""The synthetic storefront generator: determinism, columns and learnable structure."""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import pytest

from training.data.synthetic import generate_storefront
from training.data.synthetic_vocab import BUILTIN
from training.data.tables import validate_canonical


@pytest.fixture(scope="module")
def store():
    return validate_canonical(generate_storefront())


def test_columns_sizes_and_ids(store) -> None:
    assert list(store.items.columns) == ["item_id", "title", "category", "tags", "price", "brand"]
    assert list(store.users.columns) == ["user_id", "age", "country", "segment"]
    assert list(store.interactions.columns) == ["user_id", "item_id", "timestamp", "weight"]
    assert (len(store.items), len(store.users), len(store.interactions)) == (2000, 1000, 50000)
    assert store.items["item_id"].iloc[123] == "i000123"
    assert store.users["user_id"].iloc[45] == "u000045"
    assert store.report.count == 0
    assert store.interactions["timestamp"].dtype == np.int64
    assert store.interactions["weight"].dtype == np.float64
    assert store.items["price"].dtype == np.float64 and store.users["age"].dtype == np.float64
    assert all(isinstance(t, list) and t and all(isinstance(x, str) for x in t) for t in store.items["tags"])
    assert pd.api.types.infer_dtype(store.interactions["item_id"]) == "string"


def test_same_seed_same_frames_other_seed_differs() -> None:
    a = generate_storefront(items=300, users=100, interactions=4000, seed=7)
    b = generate_storefront(items=300, users=100, interactions=4000, seed=7)
    c = generate_storefront(items=300, users=100, interactions=4000, seed=8)
    for name in ("interactions", "items", "users"):
        pd.testing.assert_frame_equal(a.table(name), b.table(name))
    assert a.fingerprint() == b.fingerprint()
    assert a.fingerprint() != c.fingerprint()
    assert not a.interactions.equals(c.interactions)
    assert a.source == b.source and "seed=7" in a.source


def test_popularity_is_skewed(store) -> None:
    counts = store.interactions["item_id"].value_counts()
    top = counts.iloc[: len(store.items) // 10].sum()
    assert top / len(store.interactions) > 0.30


def test_users_concentrate_in_few_categories(store) -> None:
    merged = store.interactions.merge(store.items[["item_id", "category"]], on="item_id")
    per_user = merged.groupby("user_id")["category"]
    share = per_user.agg(lambda s: s.value_counts().iloc[:3].sum() / len(s))
    n = per_user.size()
    assert share[n >= 20].mean() > 0.75  # uniform over 12 categories would give ~0.25


def test_segment_correlates_with_taste(store) -> None:
    merged = store.interactions.merge(store.items[["item_id", "category"]], on="item_id")
    merged = merged.merge(store.users[["user_id", "segment"]], on="user_id")
    table = pd.crosstab(merged["segment"], merged["category"], normalize="index")
    overall = merged["category"].value_counts(normalize=True)
    # some segment's category mix departs clearly from the overall mix
    assert (table - overall).abs().to_numpy().max() > 0.05


def test_titles_carry_category_words(store) -> None:
    last_word = store.items["title"].str.split().str[-1]
    assert (store.items.groupby(last_word)["category"].nunique() == 1).all()
    first_word = store.items["title"].str.split().str[0]
    assert (first_word == store.items["brand"]).all()
    electronics = store.items[store.items["category"] == "electronics"]
    assert electronics["title"].str.split().str[-1].isin(BUILTIN["electronics"].nouns).all()


def test_price_depends_on_category(store) -> None:
    medians = store.items.groupby("category")["price"].median()
    assert medians.max() / medians.min() > 2.5
    assert (store.items["price"] > 0).all()


def test_timestamps_increase_per_user_and_weights(store) -> None:
    frame = store.interactions
    assert (frame["timestamp"].diff().dropna() >= 0).all()  # sorted by time overall
    per_user = frame.groupby("user_id")["timestamp"].apply(lambda s: s.is_monotonic_increasing and s.is_unique)
    assert per_user.all()
    assert set(frame["weight"].unique()) == {1.0, 2.0, 4.0}
    assert (frame["weight"] == 1.0).mean() > 0.6


def test_pairs_are_mostly_unique(store) -> None:
    assert store.interactions.duplicated(["user_id", "item_id"]).mean() < 0.15


def test_categories_argument() -> None:
    three = generate_storefront(items=100, users=20, interactions=500, categories=3)
    assert three.items["category"].nunique() == 3
    named = generate_storefront(items=100, users=20, interactions=500, categories=["books", "widgets"])
    assert set(named.items["category"]) == {"books", "widgets"}
    widgets = named.items[named.items["category"] == "widgets"]
    assert widgets["tags"].map(lambda t: all(x.startswith("widgets-") or x == "bestseller" for x in t)).all()
    many = generate_storefront(items=500, users=20, interactions=500, categories=20)
    assert many.items["category"].nunique() == 20
    with pytest.raises(ValueError):
        generate_storefront(categories=0)


def test_tiny_sizes_are_valid() -> None:
    data = validate_canonical(generate_storefront(items=2, users=1, interactions=5, seed=1))
    assert len(data.interactions) == 5 and data.report.count == 0
    with pytest.raises(ValueError):
        generate_storefront(items=0)


def test_large_generation_is_fast() -> None:
    start = time.perf_counter()
    data = generate_storefront(items=200_000, users=100_000, interactions=200_000)
    seconds = time.perf_counter() - start
    assert len(data.items) == 200_000 and data.items["item_id"].is_unique
    assert seconds < 10, seconds
