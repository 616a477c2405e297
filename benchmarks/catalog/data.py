"""The generated catalog: items, users, seen lists and their vectors from one Gaussian mixture."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from benchmarks.common import log as _log

COUNTRIES = ("de", "fr", "gb", "us", "es", "it", "nl", "pl", "se", "jp", "br", "in")
SEGMENTS = ("new", "casual", "regular", "vip")
NUM_CATEGORIES = 50
GENERATOR_VERSION = 3  # 3: tree + AH index without its own float vectors; bump when the generated versions change (the serving benchmark rebuilds older ones)


def log(msg: str) -> None:
    _log("catalog", msg)


def item_id(row: int) -> str:
    return f"i{row:07d}"


def user_id(row: int) -> str:
    return f"u{row:07d}"


@dataclass
class GeneratedCatalog:
    items: pd.DataFrame
    users: pd.DataFrame
    seen: pd.DataFrame
    item_embeddings: np.ndarray  # float32 [num_items, dim]
    user_vectors: np.ndarray  # float32 [num_users, dim]
    seed: int
    timings: dict[str, float] = field(default_factory=dict)


def generate_catalog(num_items: int, num_users: int, dim: int = 64, seed: int = 0, seen_per_user: int = 10) -> GeneratedCatalog:
    """Items, users, seen lists and embeddings from one Gaussian mixture (deterministic in ``seed``)."""
    if num_items < 1 or num_users < 1:
        raise ValueError("num_items and num_users must be positive")
    rng = np.random.default_rng(seed)
    clusters = max(100, num_items // 100)
    centres = rng.standard_normal((clusters, dim), dtype=np.float32)
    item_cluster = rng.integers(0, clusters, num_items)
    emb = centres[item_cluster]
    emb += 0.5 * rng.standard_normal((num_items, dim), dtype=np.float32)
    emb *= np.exp(0.2 * rng.standard_normal(num_items)).astype(np.float32)[:, None]
    user_cluster = rng.integers(0, clusters, num_users)
    users_vec = centres[user_cluster] + 0.5 * rng.standard_normal((num_users, dim), dtype=np.float32)

    # popularity: heavy-tailed, like real catalogs (most items rarely bought)
    popularity = np.floor(rng.pareto(1.2, num_items) * 3).astype(np.int64)
    items = pd.DataFrame(
        {
            "item_id": [item_id(r) for r in range(num_items)],
            "popularity": popularity,
            "category": [f"c{c % NUM_CATEGORIES:02d}" for c in item_cluster.tolist()],
            "price": np.round(np.exp(rng.normal(3.0, 0.8, num_items)), 2),
        }
    )
    users = pd.DataFrame(
        {
            "user_id": [user_id(r) for r in range(num_users)],
            "age": rng.integers(18, 75, num_users).astype(np.float32),
            "country": np.asarray(COUNTRIES, dtype=object)[rng.integers(0, len(COUNTRIES), num_users)],
            "segment": np.asarray(SEGMENTS, dtype=object)[rng.integers(0, len(SEGMENTS), num_users)],
        }
    )
    counts = np.minimum(rng.poisson(seen_per_user, num_users), num_items)
    flat = rng.integers(0, num_items, int(counts.sum()))
    bounds = np.concatenate([[0], np.cumsum(counts)])
    seen_lists = [np.unique(flat[bounds[u] : bounds[u + 1]]).astype(np.int32).tolist() for u in range(num_users)]
    keep = [bool(s) for s in seen_lists]
    seen = pd.DataFrame({"user_id": users["user_id"], "item_rows": seen_lists})[keep].reset_index(drop=True)
    return GeneratedCatalog(
        items=items,
        users=users,
        seen=seen,
        item_embeddings=np.ascontiguousarray(emb, dtype=np.float32),
        user_vectors=np.ascontiguousarray(users_vec, dtype=np.float32),
        seed=seed,
    )


def add_histories(cat: GeneratedCatalog, history_length: int) -> None:
    """Each user's ``recent_item_ids``: the last ``history_length`` of their seen items, "|"-joined."""
    ids = cat.items["item_id"].to_numpy(dtype=object)
    by_user = dict(zip(cat.seen["user_id"], cat.seen["item_rows"], strict=True))
    cat.users["recent_item_ids"] = [
        "|".join(ids[np.asarray(by_user.get(u, []), dtype=np.int64)[-history_length:]]) for u in cat.users["user_id"]
    ]
