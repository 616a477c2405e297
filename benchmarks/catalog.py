"""Publish a model version over a generated catalog (no training).

    python -m benchmarks.catalog --model-root DIR --items 1000000 [--users 50000] [--dim 64] [--seed 0]

The serving benchmark needs versions of 100K and 1M items; training a model on
enough interactions to fill such a catalog would take hours on the machines we
have, and the service's cost does not depend on how good the embeddings are.
So this module builds a real, contract-conformant version (docs/CONTRACTS.md
section 3) from generated data, through the same code the trainer uses:

- embeddings from one 64-d Gaussian mixture (``n/100`` cluster centres ~ N(0, I);
  items = centre + 0.5 N(0, I), norm scaled by exp(0.2 N(0, 1)), the recipe of
  ``benchmarks/index.py``; each known user = a centre + 0.5 N(0, I));
- the towers are ``towers.tower.build_tower`` over a storefront-like query spec
  (``user_id`` id, ``age`` numeric, ``country`` and ``segment`` categorical) and
  an ids-only candidate spec, with their encoders fitted on the generated
  tables; the weights are then *set* rather than trained: the query tower's
  user-id embedding rows hold the users' vectors and its projection passes them
  through unchanged (so a known user's query vector is exactly its generated
  vector), while country, segment and age add a small offset (so a new visitor
  described by features gets a sensible vector); the candidate tower's item-id
  embedding rows hold the item vectors (``candidate_tower(item_id) ==
  item_embeddings[row]``);
- the ScaNN index is ``training.index.build_index`` (``index_params`` picks
  tree + AH above 20K items) with its recall@10 measured on the query tower's
  output for 2,000 known users (the queries the service will run);
- ``items.parquet`` (item_id, popularity, category, price), ``users.parquet``
  (user_id and the raw query features) and ``seen.parquet`` (a few items per
  user) are generated alongside;
- the version is written by ``training.export.write_version`` inside
  ``training.publish.publish`` (staging folder, fsync, rename, LATEST).

Build times per step are recorded in the version's ``metrics.json`` (under
``catalog``) and printed as JSON on the last line of stdout.

``--history-length N`` adds the users' recent items to the query tower (a
history feature over the candidate tower's item table, mean pooled, and a
``recent_item_ids`` column of each user's seen items in users.parquet), so that
requests carrying ``recent_item_ids`` run the query tower; without it (the
default) the version is as before.

``--wait-for-go`` builds everything, prints ``READY``, and publishes only when a
line arrives on stdin: the serving benchmark uses it to publish a prepared
1M-item version while the server is under load.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

import recsys  # noqa: F401  (TF_USE_LEGACY_KERAS before TensorFlow)

COUNTRIES = ("de", "fr", "gb", "us", "es", "it", "nl", "pl", "se", "jp", "br", "in")
SEGMENTS = ("new", "casual", "regular", "vip")
NUM_CATEGORIES = 50
GENERATOR_VERSION = 3  # 3: tree + AH index without its own float vectors; bump when the generated versions change (the serving benchmark rebuilds older ones)


def log(msg: str) -> None:
    print(f"[catalog {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


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


def catalog_spec(dim: int = 64, history_length: int = 0) -> Any:
    """Storefront-like query features, ids-only candidate tower; with ``history_length``
    also the users' recent items (``recent_item_ids``, mean of the candidate tower's
    item vectors: the shared table), so that requests carrying recent items run the
    query tower (the serving benchmark's ``--recent-items``)."""
    from towers.spec import FeatureKind, FeatureSpec, HistoryPooling, ModelSpec, TowerSpec, history_feature

    history = (
        [history_feature(dim, history_length=history_length, shared_embedding=True, pooling=HistoryPooling.MEAN)]
        if history_length
        else []
    )
    return ModelSpec(
        embedding_dim=dim,
        query=TowerSpec(
            features=[
                FeatureSpec(name="user_id", kind=FeatureKind.ID, embedding_dim=dim),
                FeatureSpec(name="age", kind=FeatureKind.NUMERIC, embedding_dim=8, buckets=6),
                FeatureSpec(name="country", kind=FeatureKind.CATEGORICAL, embedding_dim=8),
                FeatureSpec(name="segment", kind=FeatureKind.CATEGORICAL, embedding_dim=8),
                *history,
            ]
        ),
        candidate=TowerSpec(features=[FeatureSpec(name="item_id", kind=FeatureKind.ID, embedding_dim=dim)]),
    )


def _set_lookup_rows(layer: Any, ids: np.ndarray, vectors: np.ndarray, oov: np.ndarray) -> None:
    """Put ``vectors[i]`` in the embedding row the layer's StringLookup gives ``ids[i]``."""
    import tensorflow as tf

    rows = layer.lookup(tf.constant(ids)).numpy()
    table = np.zeros((int(layer.embed.input_dim), vectors.shape[1]), dtype=np.float32)
    table[0] = oov
    table[rows] = vectors
    if (rows == 0).any():
        raise AssertionError(f"{int((rows == 0).sum())} ids fell into the OOV bucket of {layer.name}")
    layer.embed.set_weights([table])


@contextlib.contextmanager
def array_vocabularies() -> Iterator[None]:
    """Build lookup layers with numpy vocabularies instead of Python lists, for the duration.

    ``towers.features`` hands ``StringLookup`` its vocabulary as a Python list;
    tf_keras tracks a list attribute as a ``ListWrapper`` and SavedModel export
    then walks it element by element (about 0.75 ms per entry on the benchmark
    machine: 79 s for a 100K-item tower, over 10 minutes for 1M). The same
    values as a numpy array export in seconds and give identical outputs, so the
    generated versions use that (and the serving benchmark is not held up by an
    export problem it does not measure). See the serving benchmark's report.
    """
    import towers.features as features

    original = features._vocabulary

    def as_array(values: np.ndarray, max_tokens: int | None) -> np.ndarray:
        return np.asarray(original(values, max_tokens), dtype=object)

    features._vocabulary = as_array  # type: ignore[assignment]
    try:
        yield
    finally:
        features._vocabulary = original  # type: ignore[assignment]


def build_towers(cat: GeneratedCatalog, spec: Any) -> tuple[Any, Any, dict, dict]:
    """Query and candidate towers whose weights reproduce the generated vectors."""
    from towers.tower import build_tower, input_defaults, tower_inputs

    dim = spec.embedding_dim
    user_inputs = tower_inputs(spec.query, cat.users)
    item_inputs = tower_inputs(spec.candidate, cat.items)
    history = "recent_item_ids" in user_inputs
    with array_vocabularies():
        candidate = build_tower(spec.candidate, item_inputs, dim, "candidate")
        shared = candidate.get_layer("item_id_id") if history else None
        query = build_tower(spec.query, user_inputs, dim, "query", shared_item_ids=shared)
    rng = np.random.default_rng(cat.seed + 1)

    # query: user-id block passes through the projection; the other features add a small offset
    _set_lookup_rows(query.get_layer("user_id_id"), user_inputs["user_id"], cat.user_vectors, np.zeros(dim, np.float32))
    for name in ("country_categorical", "segment_categorical"):
        layer = query.get_layer(name)
        w = layer.embed.get_weights()[0]
        layer.embed.set_weights([rng.standard_normal(w.shape).astype(np.float32)])
    proj = query.get_layer("query_projection")
    kernel, bias = proj.get_weights()
    # the other feature blocks add an offset of about 0.3 per dimension (below the 0.5 spread of a cluster),
    # so a known user's query stays near its generated vector and the index sees in-distribution queries
    others = kernel.shape[0] - dim
    new_kernel = (0.3 / np.sqrt(max(others, 1)) * rng.standard_normal(kernel.shape)).astype(np.float32)
    new_kernel[:dim] = np.eye(dim, dtype=np.float32)  # the user_id block comes first in the concatenation
    if history:  # the last block: half the mean of the recent items' vectors, so a click pulls the query its way
        new_kernel[-dim:] = 0.5 * np.eye(dim, dtype=np.float32)
    proj.set_weights([new_kernel, np.zeros_like(bias)])

    # candidate: plain embedding table (ids only, width == dim) holding the item vectors (shared by the history)
    _set_lookup_rows(candidate.get_layer("item_id_id"), item_inputs["item_id"], cat.item_embeddings, np.zeros(dim, np.float32))
    return query, candidate, input_defaults(spec.query, user_inputs), input_defaults(spec.candidate, item_inputs)


def check_towers(cat: GeneratedCatalog, query: Any, candidate: Any, sample: int = 64) -> None:
    """The towers reproduce the generated vectors for known users and items (a few rows)."""
    import tensorflow as tf

    u = cat.users.iloc[:sample]
    # country/segment/age offsets ride on top of the user vector: compare against the tower's own output
    # with the user block alone, i.e. check the user block of the projection is the identity
    inputs = _query_inputs(u)
    with_user = query(inputs).numpy()
    inputs["user_id"] = tf.constant(np.asarray([""] * len(u), dtype=object))
    without_user = query(inputs).numpy()
    if not np.allclose(with_user - without_user, cat.user_vectors[:sample], atol=1e-4):
        raise AssertionError("the query tower does not reproduce the generated user vectors")
    items = tf.constant(cat.items["item_id"].iloc[:sample].to_numpy(dtype=object))
    if not np.allclose(candidate({"item_id": items}).numpy(), cat.item_embeddings[:sample], atol=1e-6):
        raise AssertionError("the candidate tower does not reproduce the item embeddings")


def query_vectors(query: Any, users: pd.DataFrame) -> np.ndarray:
    """The query tower's output for known users (their stored features), as the service computes it."""
    return np.asarray(query(_query_inputs(users)).numpy(), dtype=np.float32)


def _query_inputs(users: pd.DataFrame) -> dict[str, Any]:
    import tensorflow as tf

    inputs = {
        "user_id": tf.constant(users["user_id"].to_numpy(dtype=object)),
        "age": tf.constant(users["age"].to_numpy(dtype=np.float32)),
        "country": tf.constant(users["country"].to_numpy(dtype=object)),
        "segment": tf.constant(users["segment"].to_numpy(dtype=object)),
    }
    if "recent_item_ids" in users.columns:
        inputs["recent_item_ids"] = tf.constant(users["recent_item_ids"].to_numpy(dtype=object))
    return inputs


def add_histories(cat: GeneratedCatalog, history_length: int) -> None:
    """Each user's ``recent_item_ids``: the last ``history_length`` of their seen items, "|"-joined."""
    ids = cat.items["item_id"].to_numpy(dtype=object)
    by_user = dict(zip(cat.seen["user_id"], cat.seen["item_rows"], strict=True))
    cat.users["recent_item_ids"] = [
        "|".join(ids[np.asarray(by_user.get(u, []), dtype=np.int64)[-history_length:]]) for u in cat.users["user_id"]
    ]


@dataclass
class PreparedVersion:
    artifact: Any
    timings: dict[str, float]
    summary: dict[str, Any]


def prepare_version(
    num_items: int, num_users: int, dim: int = 64, seed: int = 0, recall_queries: int = 2_000, history_length: int = 0
) -> PreparedVersion:
    """Generate the catalog, build towers and index: a ``VersionArtifact`` ready to publish."""
    from training.export import VersionArtifact
    from training.index import build_index

    timings: dict[str, float] = {}
    t = time.perf_counter()
    cat = generate_catalog(num_items, num_users, dim, seed)
    if history_length:
        add_histories(cat, history_length)
    timings["generate_seconds"] = time.perf_counter() - t
    log(f"generated {num_items:,} items, {num_users:,} users in {timings['generate_seconds']:.1f}s")

    t = time.perf_counter()
    spec = catalog_spec(dim, history_length)
    query, candidate, qdef, cdef = build_towers(cat, spec)
    check_towers(cat, query, candidate)
    timings["towers_seconds"] = time.perf_counter() - t
    log(f"built towers in {timings['towers_seconds']:.1f}s")

    t = time.perf_counter()
    sample = np.sort(np.random.default_rng(seed + 2).choice(num_users, min(recall_queries, num_users), replace=False))
    queries = query_vectors(query, cat.users.iloc[sample])  # what the service will search with
    searcher, info = build_index(cat.item_embeddings, queries)
    timings["index_seconds"] = time.perf_counter() - t
    log(f"built {info.kind} index in {info.build_seconds:.1f}s; recall@10 vs exact {info.recall_at_10_vs_exact:.3f}")

    source = f"generated-catalog(items={num_items}, users={num_users}, dim={dim}, seed={seed})"
    fingerprint = hashlib.sha256(source.encode()).hexdigest()
    summary = {
        "generator": GENERATOR_VERSION,
        "source": source,
        "num_items": num_items,
        "num_users": num_users,
        "embedding_dim": dim,
        "seed": seed,
        "history_length": history_length,
        "index": info.__dict__,
        "trained": False,
        "note": "weights set from a generated Gaussian mixture, not trained (benchmarks/catalog.py)",
    }
    artifact = VersionArtifact(
        spec=spec,
        query_tower=query,
        candidate_tower=candidate,
        query_defaults=qdef,
        candidate_defaults=cdef,
        item_embeddings=cat.item_embeddings,
        items=cat.items,
        users=cat.users,
        seen=cat.seen,
        searcher=searcher,
        metrics={"catalog": summary},
        manifest_extra={
            "dataset": {
                "source": source,
                "fingerprint": fingerprint,
                "num_interactions": int(cat.seen["item_rows"].map(len).sum()),
            },
            "training": {"generated": True},
            "index": info.__dict__,
        },
    )
    return PreparedVersion(artifact=artifact, timings=timings, summary=summary)


def publish_prepared(model_root: Path, prepared: PreparedVersion, retain: int = 2) -> tuple[str, float]:
    """Write and atomically publish; returns (version, seconds)."""
    from training.export import write_version
    from training.publish import publish

    t = time.perf_counter()
    prepared.artifact.metrics["catalog"]["build_timings"] = {k: round(v, 3) for k, v in prepared.timings.items()}
    version = publish(Path(model_root), lambda dest, v: write_version(dest, prepared.artifact, v), retain=retain)
    seconds = time.perf_counter() - t
    log(f"published version {version} into {model_root} in {seconds:.1f}s")
    return version, seconds


def publish_catalog(
    model_root: Path, num_items: int, num_users: int, dim: int = 64, seed: int = 0, retain: int = 2, history_length: int = 0
) -> dict[str, Any]:
    """Generate, build and publish one version; returns its name and the build timings."""
    prepared = prepare_version(num_items, num_users, dim, seed, history_length=history_length)
    version, publish_s = publish_prepared(model_root, prepared, retain)
    timings = {**prepared.timings, "publish_seconds": publish_s}
    timings["total_seconds"] = sum(timings.values())
    return {"version": version, "model_root": str(model_root), "timings": timings, **prepared.summary}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model-root", type=Path, required=True)
    p.add_argument("--items", type=int, default=100_000)
    p.add_argument("--users", type=int, default=50_000)
    p.add_argument("--dim", type=int, default=64)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--retain", type=int, default=2)
    p.add_argument(
        "--history-length",
        type=int,
        default=0,
        help="also a history feature (recent_item_ids, this many kept; 0: none, the default)",
    )
    p.add_argument("--wait-for-go", action="store_true", help="build, print READY, publish when a line arrives on stdin")
    args = p.parse_args(argv)
    if args.wait_for_go:
        prepared = prepare_version(args.items, args.users, args.dim, args.seed)
        print("READY", flush=True)
        if not sys.stdin.readline():
            log("stdin closed before go: not publishing")
            return 1
        started = time.time()
        version, publish_s = publish_prepared(args.model_root, prepared, args.retain)
        out = {"version": version, "publish_started_at": started, "publish_seconds": publish_s, **prepared.summary}
    else:
        out = publish_catalog(args.model_root, args.items, args.users, args.dim, args.seed, args.retain, args.history_length)
    print(json.dumps(out, default=float), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
