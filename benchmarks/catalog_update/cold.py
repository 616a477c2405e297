"""``cold``: MovieLens items withheld from training and added by ``update-catalog``; where their test interactions land (see the package's docstring)."""

from __future__ import annotations

import argparse
import json
import shutil
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

import recsys  # noqa: F401  (TF_USE_LEGACY_KERAS)
from benchmarks import common
from benchmarks.catalog_update.scale import run_update
from benchmarks.common import load_average

log = partial(common.log, "catalog_update")


def _neighbour_vectors(version_dir: Path, cold_ids: set[str], k: int = 5) -> np.ndarray:
    """A variant not in the product, for comparison: each cold item's vector replaced by the mean
    vector of the ``k`` known items whose metadata-only vectors (the candidate tower with every
    id out of vocabulary) are closest by cosine."""
    from towers.spec import ModelSpec
    from towers.tower import tower_inputs
    from training.saved_tower import SavedTower

    manifest = json.loads((version_dir / "manifest.json").read_text())
    items = pd.read_parquet(version_dir / "items.parquet")
    emb = np.load(version_dir / "item_embeddings.npy")
    raw = tower_inputs(ModelSpec.model_validate(manifest["feature_spec"]).candidate, items)
    raw["item_id"] = np.full(len(items), "\x00never-seen", dtype=object)
    tower = SavedTower(version_dir / "candidate_model", manifest["candidate_inputs"])
    meta = tower.embed(tower.columns(items, raw))
    meta /= np.linalg.norm(meta, axis=1, keepdims=True)
    cold = items["item_id"].isin(cold_ids).to_numpy()
    known, new = np.flatnonzero(~cold), np.flatnonzero(cold)
    nearest = np.argsort(-(meta[new] @ meta[known].T), axis=1)[:, :k]
    out = emb.copy()
    out[new] = emb[known][nearest].mean(axis=1)
    return out


def _top100_share(version_dir: Path, pairs: pd.DataFrame, emb: np.ndarray | None = None) -> float:
    """Share of (user_id, item_id) pairs whose item is in the user's top 100, training items excluded."""
    from training.saved_tower import SavedTower

    manifest = json.loads((version_dir / "manifest.json").read_text())
    users = pd.read_parquet(version_dir / "users.parquet")
    items = pd.read_parquet(version_dir / "items.parquet")
    emb = np.load(version_dir / "item_embeddings.npy") if emb is None else emb
    seen = pd.read_parquet(version_dir / "seen.parquet")
    tower = SavedTower(version_dir / "query_model", manifest["query_inputs"])
    queries = tower.embed(tower.columns(users))
    scores = queries @ emb.T
    user_row = {u: r for r, u in enumerate(users["user_id"])}
    for u, rows in zip(seen["user_id"], seen["item_rows"], strict=True):
        scores[user_row[u], np.asarray(rows, dtype=np.int64)] = -np.inf
    top = np.argpartition(-scores, 100, axis=1)[:, :100]
    item_row = {i: r for r, i in enumerate(items["item_id"])}
    hits = [item_row[i] in set(top[user_row[u]]) for u, i in zip(pairs["user_id"], pairs["item_id"], strict=True)]
    return float(np.mean(hits)) if hits else float("nan")


def cold(args: argparse.Namespace) -> dict[str, Any]:
    from training.config import TrainConfig
    from training.data.sources import load_source
    from training.pipeline import default_spec, run_pipeline
    from training.split import temporal_split

    work = Path(args.work_dir)
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    data = load_source(f"movielens:{args.movielens}", items=0, users=0, interactions=0, seed=args.seed, max_bad_rows=0)
    rng = np.random.default_rng(args.seed)
    ids = data.items["item_id"].to_numpy()
    withheld = set(rng.choice(ids, round(args.withhold * len(ids)), replace=False).tolist())
    inter = data.interactions
    is_cold = inter["item_id"].isin(withheld).to_numpy()
    from dataclasses import replace

    trained = replace(
        data,
        interactions=inter[~is_cold].reset_index(drop=True),
        items=data.items[~data.items["item_id"].isin(withheld)].reset_index(drop=True),
        lines={},
    )
    root = work / "models"
    config = TrainConfig(
        epochs=args.epochs,
        seed=args.seed,
        **({} if args.item_id_dropout is None else {"item_id_dropout": args.item_id_dropout}),
    )
    spec = default_spec(trained.source, trained)
    if args.cold_path is not None:
        spec = spec.model_copy(update={"candidate": spec.candidate.model_copy(update={"cold_path": args.cold_path == "on"})})
    result = run_pipeline(trained, root, config, spec=spec, verbose=0)
    split = temporal_split(trained.interactions, config.test_fraction)  # the pipeline's test split (temporal)
    test = trained.interactions.iloc[split.test]
    start = test.groupby("user_id")["timestamp"].min()
    cold_pairs = inter[is_cold]
    cold_pairs = cold_pairs[cold_pairs["timestamp"].to_numpy() >= cold_pairs["user_id"].map(start).fillna(np.inf).to_numpy()]
    table = work / "items.parquet"
    data.items.to_parquet(table)
    update = run_update(root, table, work / "update.log")
    version_dir = root / update["summary"]["version"]
    num_items = len(data.items)
    mean_seen = float(pd.read_parquet(version_dir / "seen.parquet")["item_rows"].map(len).mean())
    uniform = 100 / (num_items - mean_seen)
    out = {
        "source": data.source,
        "withheld_items": len(withheld),
        "items": num_items,
        "seed": args.seed,
        "epochs": args.epochs,
        "item_id_dropout": config.item_id_dropout,
        "cold_path": spec.candidate.cold_path,
        "trained_version": result.version,
        "update": update,
        "cold_test_interactions": len(cold_pairs),
        "trained_test_interactions": len(test),
        "cold_share_in_top100": _top100_share(version_dir, cold_pairs),
        "trained_share_in_top100": _top100_share(version_dir, test),
        "uniform_share_in_top100": uniform,
        "load_average": load_average(),
    }
    variant = _neighbour_vectors(version_dir, withheld)
    out["variant_metadata_neighbours_k5"] = {
        "cold_share_in_top100": _top100_share(version_dir, cold_pairs, variant),
        "trained_share_in_top100": _top100_share(version_dir, test, variant),
    }
    out["cold_vs_uniform"] = out["cold_share_in_top100"] / uniform
    out["trained_vs_uniform"] = out["trained_share_in_top100"] / uniform
    log(
        f"cold {out['cold_share_in_top100']:.3f} ({out['cold_vs_uniform']:.1f}x uniform {uniform:.3f}); "
        f"trained {out['trained_share_in_top100']:.3f} ({out['trained_vs_uniform']:.1f}x)"
    )
    return out
