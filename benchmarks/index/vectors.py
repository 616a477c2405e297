"""The catalogs' vectors: generated clustered Gaussians, trained MovieLens embeddings, versions
``recsys train`` published; and the held-out users the recall is measured on."""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path
from typing import Any

import numpy as np


# --------------------------------------------------------------------------- data
def clustered_gaussian(n: int, dim: int, num_queries: int, seed: int = 0, noise: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """(items [n, dim], queries [num_queries, dim]) float32 from one Gaussian mixture."""
    rng = np.random.default_rng(seed)
    clusters = max(100, n // 100)
    centres = rng.standard_normal((clusters, dim), dtype=np.float32)
    items = centres[rng.integers(0, clusters, n)]
    items += noise * rng.standard_normal((n, dim), dtype=np.float32)
    items *= np.exp(0.2 * rng.standard_normal(n)).astype(np.float32)[:, None]
    queries = centres[rng.integers(0, clusters, num_queries)] + noise * rng.standard_normal((num_queries, dim), dtype=np.float32)
    return np.ascontiguousarray(items), np.ascontiguousarray(queries.astype(np.float32))


def movielens_embeddings(path: Path) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """Item and user embeddings of the project's default model trained on MovieLens 100K (P2)."""
    from training.config import TrainConfig
    from training.data.sources import load_source
    from training.model import embed
    from training.pipeline import run_pipeline
    from training.prepared import prepare

    data = load_source(f"movielens:{path}", progress=False)
    with tempfile.TemporaryDirectory(prefix="bench-index-") as tmp:
        result = run_pipeline(data, Path(tmp), TrainConfig(), publish_version=False, verbose=0)
    prep = prepare(data, result.spec)
    items = embed(result.train.model.candidate_tower, prep.item_inputs)
    users = embed(result.train.model.query_tower, prep.query_inputs(np.arange(len(prep.user_rows))))
    return items, users, {"source": data.source, "split": "temporal (P2)", "pipeline_index": result.metrics["index"]}


# --------------------------------------------------------------------------- search


def trained_vectors(root: Path) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """Item embeddings and every known user's query vector (the exported query tower on
    ``users.parquet``, as the service computes them at load) of the version ``root``
    names: a model root (its LATEST) or a version directory."""
    import pandas as pd
    import tensorflow as tf

    root = Path(root)
    vdir = root / (root / "LATEST").read_text().strip() if (root / "LATEST").is_file() else root
    manifest = json.loads((vdir / "manifest.json").read_text())
    items = np.load(vdir / "item_embeddings.npy")
    users = pd.read_parquet(vdir / "users.parquet")
    query = tf.saved_model.load(str(vdir / "query_model")).signatures["serving_default"]
    out = []
    for start in range(0, len(users), 8192):
        part = users.iloc[start : start + 8192]
        tensors = {}
        for qi in manifest["query_inputs"]:
            col = part[qi["name"]] if qi["name"] in part else pd.Series([qi["default"]] * len(part))
            if qi["dtype"] == "float32":
                tensors[qi["name"]] = tf.constant(col.to_numpy(dtype=np.float32))
            else:
                sep = qi.get("separator") or "|"
                text = [sep.join(map(str, v)) if isinstance(v, (list, tuple, np.ndarray)) else str(v) for v in col.tolist()]
                tensors[qi["name"]] = tf.constant(text, dtype=tf.string)
        out.append(query(**tensors)["embedding"].numpy())
    info = {
        "version_dir": str(vdir),
        "source": manifest.get("dataset", {}).get("source"),
        "num_users": len(users),
        "num_interactions": manifest.get("dataset", {}).get("num_interactions"),
        "published_index": manifest.get("index", {}),
    }
    info["published_index"] = {k: v for k, v in info["published_index"].items() if k != "tuning"}
    return np.ascontiguousarray(items, dtype=np.float32), np.concatenate(out).astype(np.float32), info


def held_out_split(users: np.ndarray, items: np.ndarray, args: argparse.Namespace) -> tuple[np.ndarray, np.ndarray]:
    """(users to tune on, held-out queries): the held-out users are outside the seeded sample
    ``build_index`` takes (``training.index_queries.sample_queries``, same seed)."""
    from training.index_queries import sample_queries

    taken = sample_queries(users, items, seed=args.seed).user_rows
    rest = np.setdiff1d(np.arange(len(users)), taken)
    rng = np.random.default_rng(args.seed + 1)
    held = rest[np.sort(rng.choice(len(rest), min(args.held_out, len(rest)), replace=False))] if len(rest) else rest
    return users, users[held]


# --------------------------------------------------------------------------- main
