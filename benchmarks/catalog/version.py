"""A contract-conformant version over the generated catalog: built, then published atomically."""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.catalog.data import GENERATOR_VERSION, add_histories, generate_catalog, log
from benchmarks.catalog.towers import build_towers, catalog_spec, check_towers, query_vectors


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
