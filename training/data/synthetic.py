"""A generated storefront dataset with structure a two-tower model can learn.

Deterministic in ``seed`` and vectorised in numpy (1M items and 1M interactions
take seconds). The structure:

* items belong to categories of uneven size; item popularity is Zipf-like
  (weight ``rank ** -1`` over a random ranking), so a few items dominate;
* item titles are ``brand + two category words + a category noun``, tags are
  drawn from the category's tag list (plus ``bestseller`` for the most popular
  items), brands are category-specific and prices lognormal around a
  category median with a per-brand premium;
* users belong to taste clusters; a cluster prefers 1-3 categories, and about
  85% of a user's interactions fall in them. Age, country and segment are
  correlated with the cluster;
* each user's timestamps increase; weight is 1 (view), 2 (cart) or 4
  (purchase), purchases more likely inside the preferred categories.

Tables: items ``item_id, title, category, tags, price, brand``; users
``user_id, age, country, segment``; interactions ``user_id, item_id,
timestamp, weight``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from training.data.log import LogWriter
from training.data.synthetic_vocab import (
    N_BRANDS,
    N_NOUNS,
    N_TAGS,
    N_WORDS,
    CategoryVocab,
    category_vocabs,
)
from training.data.tables import CanonicalData

COUNTRIES = np.array(["US", "GB", "DE", "FR", "IN", "BR", "JP", "CA", "ES", "IT", "NL", "AU"], dtype=object)
COUNTRY_SHARE = np.array([30, 10, 9, 8, 9, 7, 6, 5, 5, 4, 4, 3], dtype=float)
SEGMENTS = np.array(["budget", "premium", "family", "student", "professional", "senior"], dtype=object)
EXPLORE = 0.15  # share of interactions outside the user's preferred categories
START = 1_704_067_200  # 2024-01-01T00:00:00Z
SPAN_SECONDS = 300 * 86_400  # a user's history spans about this long
WEIGHTS = np.array([1.0, 2.0, 4.0])  # view, cart, purchase
DEDUP_ROUNDS = 6
LOG_CHUNK = 1 << 20  # interactions turned into id strings at a time when written as a log
CHUNK = 1 << 20  # interactions whose per-category temporaries are made at a time


@dataclass
class _Catalog:
    """Item-side arrays the interaction sampler needs."""

    category: np.ndarray  # int per item
    popularity: np.ndarray  # sampling weight per item
    order: np.ndarray  # item indices sorted by category
    keys: np.ndarray  # category + within-category cumulative share, per sorted item
    category_mass: np.ndarray  # total popularity per category


def _ids(prefix: str, n: int) -> np.ndarray:
    width = max(6, len(str(max(n - 1, 0))))
    return (prefix + pd.Series(np.arange(n)).astype(str).str.zfill(width)).to_numpy(dtype=object)


def _catalog(rng: np.random.Generator, n_items: int, n_cat: int) -> _Catalog:
    share = rng.dirichlet(np.full(n_cat, 3.0))
    category = rng.choice(n_cat, size=n_items, p=share)
    if n_items >= n_cat:  # every category gets at least one item
        category[rng.choice(n_items, size=n_cat, replace=False)] = np.arange(n_cat)
    rank = rng.permutation(n_items) + 1
    popularity = rank.astype(np.float64) ** -1.0
    order = np.argsort(category, kind="stable")
    cat_sorted = category[order]
    cumulative = np.cumsum(popularity[order])
    starts = np.searchsorted(cat_sorted, np.arange(n_cat), side="left")
    ends = np.searchsorted(cat_sorted, np.arange(n_cat), side="right")
    before = np.where(starts > 0, cumulative[np.maximum(starts - 1, 0)], 0.0)
    totals = np.where(ends > starts, cumulative[np.maximum(ends - 1, 0)] - before, 0.0)
    keys = cat_sorted + (cumulative - before[cat_sorted]) / totals[cat_sorted]
    nonempty = ends > starts
    keys[ends[nonempty] - 1] = np.arange(n_cat)[nonempty] + 1.0  # exact upper edge
    return _Catalog(category, popularity, order, keys, totals)


def _sample_items(rng: np.random.Generator, catalog: _Catalog, categories: np.ndarray) -> np.ndarray:
    """One item per entry of ``categories``, drawn by popularity within the category."""
    u = np.minimum(rng.random(len(categories)), 1.0 - 1e-12)
    position = np.searchsorted(catalog.keys, categories + u, side="right")
    return catalog.order[np.minimum(position, len(catalog.order) - 1)]


def _clusters(rng: np.random.Generator, n_clusters: int, catalog: _Catalog) -> tuple[np.ndarray, np.ndarray]:
    """(preferred categories [K, 3], their weights [K, 3]) per taste cluster."""
    available = np.flatnonzero(catalog.category_mass > 0)
    prefs = np.zeros((n_clusters, 3), dtype=np.int64)
    weights = np.zeros((n_clusters, 3))
    base = np.array([0.6, 0.25, 0.15])
    for k in range(n_clusters):
        m = int(min(rng.choice([1, 2, 3], p=[0.3, 0.4, 0.3]), len(available)))
        primary = available[k % len(available)]
        others = rng.permutation(available[available != primary])[: m - 1]
        chosen = np.concatenate([[primary], others]).astype(np.int64)
        prefs[k, :m] = chosen
        prefs[k, m:] = primary
        weights[k, :m] = base[:m] / base[:m].sum()
    return prefs, weights


def _draw_categories(
    rng: np.random.Generator,
    catalog: _Catalog,
    prefs: np.ndarray,
    weights: np.ndarray,
    cluster: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """(category, preferred?) per interaction of users in clusters ``cluster``."""
    n = len(cluster)
    draw = rng.random(n)
    category = np.empty(n, dtype=np.int32)
    for at in range(0, n, CHUNK):  # [chunk, 3] temporaries, not [n, 3]: the same values
        part = slice(at, at + CHUNK)
        cumulative = np.cumsum(weights[cluster[part]], axis=1)
        slot = np.minimum((draw[part, None] > cumulative).sum(axis=1), 2)
        category[part] = prefs[cluster[part], slot]
    del draw
    explore = rng.random(n) < EXPLORE
    mass = catalog.category_mass / catalog.category_mass.sum()
    category[explore] = rng.choice(len(mass), size=int(explore.sum()), p=mass)
    preferred = np.empty(n, dtype=bool)
    for at in range(0, n, CHUNK):
        part = slice(at, at + CHUNK)
        preferred[part] = (prefs[cluster[part]] == category[part, None]).any(axis=1)
    return category, preferred


def _timestamps(rng: np.random.Generator, users: np.ndarray, n_users: int) -> np.ndarray:
    """Per-user increasing timestamps (seconds) spanning about :data:`SPAN_SECONDS`."""
    counts = np.bincount(users, minlength=n_users)
    order = np.argsort(users, kind="stable")
    sorted_users = users[order]
    mean_gap = SPAN_SECONDS / np.maximum(counts, 1)
    gaps = np.ceil(rng.exponential(1.0, len(users)) * mean_gap[sorted_users]).astype(np.int64) + 1
    cumulative = np.cumsum(gaps)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    first = np.minimum(starts, len(users) - 1)  # each user's first sorted position
    offset = np.where(counts > 0, cumulative[first] - gaps[first], 0)
    start = START + rng.integers(0, 120 * 86_400, size=n_users)
    stamps = np.empty(len(users), dtype=np.int64)
    stamps[order] = start[sorted_users] + cumulative - offset[sorted_users]
    return stamps


def _interactions(
    rng: np.random.Generator,
    n: int,
    n_users: int,
    catalog: _Catalog,
    cluster_of_user: np.ndarray,
    prefs: np.ndarray,
    weights: np.ndarray,
) -> pd.DataFrame:
    activity = rng.lognormal(0.0, 1.0, n_users)
    users = rng.choice(n_users, size=n, p=activity / activity.sum()).astype(np.int32)
    category, preferred = _draw_categories(rng, catalog, prefs, weights, cluster_of_user[users])
    items = _sample_items(rng, catalog, category).astype(np.int32)
    n_items = len(catalog.category)
    for _ in range(DEDUP_ROUNDS):  # re-draw repeated (user, item) pairs: mostly unique
        dup = _repeated(users.astype(np.int64) * n_items + items)
        if not dup.any():
            break
        idx = np.flatnonzero(dup)
        cat_d, pref_d = _draw_categories(rng, catalog, prefs, weights, cluster_of_user[users[idx]])
        category[idx], preferred[idx] = cat_d, pref_d
        items[idx] = _sample_items(rng, catalog, cat_d)
    del category
    p_purchase = np.where(preferred, 0.12, 0.03)
    del preferred
    roll = rng.random(n)
    event = np.where(roll < p_purchase, 2, np.where(roll < p_purchase + 0.10, 1, 0)).astype(np.int8)
    del roll, p_purchase
    stamps = _timestamps(rng, users, n_users)
    order = np.lexsort((users, stamps))  # by time, then user
    out = pd.DataFrame({"timestamp": stamps[order]})
    del stamps
    out["user"], out["item"], out["weight"] = users[order], items[order], WEIGHTS[event[order]]
    return out[["user", "item", "timestamp", "weight"]]


def _repeated(keys: np.ndarray) -> np.ndarray:
    """True where a key equals an earlier one (``pandas.Series.duplicated``, by a stable sort)."""
    order = np.argsort(keys, kind="stable")
    ranked = keys[order]
    repeated = np.zeros(len(keys), dtype=bool)
    repeated[order[1:]] = ranked[1:] == ranked[:-1]
    return repeated


def _items_table(rng: np.random.Generator, catalog: _Catalog, vocabs: list[CategoryVocab]) -> pd.DataFrame:
    n = len(catalog.category)
    cat = catalog.category
    words = np.array([v.words for v in vocabs], dtype=object)
    nouns = np.array([v.nouns for v in vocabs], dtype=object)
    tags = np.array([v.tags for v in vocabs], dtype=object)
    brands = np.array([v.brands for v in vocabs], dtype=object)
    names = np.array([v.name for v in vocabs], dtype=object)
    brand_share = 1.0 / np.arange(1, N_BRANDS + 1)
    brand_idx = rng.choice(N_BRANDS, size=n, p=brand_share / brand_share.sum())
    w1 = rng.integers(0, N_WORDS, size=n)
    w2 = (w1 + 1 + rng.integers(0, N_WORDS - 1, size=n)) % N_WORDS
    noun = rng.integers(0, N_NOUNS, size=n)
    brand = pd.Series(brands[cat, brand_idx], dtype=str)
    title = (
        brand
        + " "
        + pd.Series(words[cat, w1], dtype=str)
        + " "
        + pd.Series(words[cat, w2], dtype=str)
        + " "
        + pd.Series(nouns[cat, noun], dtype=str)
    )
    n_tags = rng.integers(1, 4, size=n)
    tag_idx = np.argsort(rng.random((n, N_TAGS)), axis=1)[:, :3]
    tag_rows = tags[cat[:, None], tag_idx].tolist()
    best = catalog.popularity >= np.quantile(catalog.popularity, 0.98)
    tag_lists = [
        row[:k] + ["bestseller"] if b else row[:k] for row, k, b in zip(tag_rows, n_tags.tolist(), best.tolist(), strict=True)
    ]
    median = np.array([v.median_price for v in vocabs])
    premium = rng.normal(0.0, 0.35, size=(len(vocabs), N_BRANDS))
    log_price = np.log(median[cat]) + premium[cat, brand_idx] + rng.normal(0.0, 0.45, size=n)
    price = np.round(np.maximum(np.exp(log_price), 0.5), 2)
    return pd.DataFrame(
        {
            "title": title,
            "category": pd.Series(names[cat], dtype=str),
            "tags": pd.Series(tag_lists, dtype=object),
            "price": price,
            "brand": brand,
        }
    )


def _users_table(rng: np.random.Generator, cluster: np.ndarray, n_clusters: int) -> pd.DataFrame:
    n = len(cluster)
    age_mean = rng.uniform(22, 60, size=n_clusters)
    age = np.clip(np.round(age_mean[cluster] + rng.normal(0, 7, size=n)), 16, 90)
    home = rng.choice(len(COUNTRIES), size=n_clusters, p=COUNTRY_SHARE / COUNTRY_SHARE.sum())
    any_country = rng.choice(len(COUNTRIES), size=n, p=COUNTRY_SHARE / COUNTRY_SHARE.sum())
    country = np.where(rng.random(n) < 0.5, home[cluster], any_country)
    cluster_segment = rng.integers(0, len(SEGMENTS), size=n_clusters)
    segment = np.where(rng.random(n) < 0.75, cluster_segment[cluster], rng.integers(0, len(SEGMENTS), size=n))
    return pd.DataFrame(
        {
            "age": age.astype(np.float64),
            "country": pd.Series(COUNTRIES[country], dtype=str),
            "segment": pd.Series(SEGMENTS[segment], dtype=str),
        }
    )


def generate_storefront(
    items: int = 2000,
    users: int = 1000,
    interactions: int = 50000,
    seed: int = 0,
    categories: int | list[str] | tuple[str, ...] | None = None,
    log_dir: Path | None = None,
) -> CanonicalData:
    """Generate the synthetic storefront tables (see the module docstring).

    ``categories``: None for the 12 built-in categories, an int for that many,
    or a list of names (unknown names get generated vocabularies). ``log_dir``: write
    the interactions there as Parquet files, :data:`LOG_CHUNK` rows at a time (the
    same rows; :class:`training.data.log.InteractionLog`), instead of a DataFrame.
    """
    if items < 1 or users < 1 or interactions < 1:
        raise ValueError("items, users and interactions must all be >= 1")
    vocabs = category_vocabs(categories)
    rng = np.random.default_rng(seed)
    catalog = _catalog(rng, items, len(vocabs))
    n_clusters = max(2, 2 * len(vocabs))
    prefs, weights = _clusters(rng, n_clusters, catalog)
    cluster_of_user = rng.integers(0, n_clusters, size=users)
    events = _interactions(rng, interactions, users, catalog, cluster_of_user, prefs, weights)
    item_ids, user_ids = _ids("i", items), _ids("u", users)
    item_table = _items_table(rng, catalog, vocabs)
    item_table.insert(0, "item_id", pd.Series(item_ids, dtype=str))
    user_table = _users_table(rng, cluster_of_user, n_clusters)
    user_table.insert(0, "user_id", pd.Series(user_ids, dtype=str))
    source = f"synthetic(items={items}, users={users}, interactions={interactions}, seed={seed}, categories={len(vocabs)})"
    files = {"interactions": "synthetic:interactions", "items": "synthetic:items", "users": "synthetic:users"}
    if log_dir is None:
        return CanonicalData(_interaction_table(events, user_ids, item_ids), item_table, user_table, source, files=files)
    writer = LogWriter(Path(log_dir), ("user_id", "item_id", "timestamp", "weight"))
    for start in range(0, len(events), LOG_CHUNK):
        writer.write(_interaction_table(events.iloc[start : start + LOG_CHUNK], user_ids, item_ids))
    del events
    log = writer.close()
    return CanonicalData(log.empty_frame(), item_table, user_table, source, files=files, log=log)


def _interaction_table(events: pd.DataFrame, user_ids: np.ndarray, item_ids: np.ndarray) -> pd.DataFrame:
    """Events (user, item numbers) as the canonical interactions (ids as str)."""
    return pd.DataFrame(
        {
            "user_id": pd.Series(user_ids[events["user"].to_numpy()], dtype=str),
            "item_id": pd.Series(item_ids[events["item"].to_numpy()], dtype=str),
            "timestamp": events["timestamp"].to_numpy(dtype=np.int64),
            "weight": events["weight"].to_numpy(dtype=np.float64),
        }
    )
