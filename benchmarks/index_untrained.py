"""Items that training never moved, and the ScaNN partitioning (issue 23, item 4).

    python -m benchmarks.index_untrained --trained ROOT [--seeds 0,1]

On a version ``recsys train`` published: items with no training interaction
(``items.parquet`` popularity 0) are outside the training vocabulary and share
the OOV embedding (ids-only towers: one identical vector; feature towers:
tight clumps). Per variant, the index is tuned by ``training.index_tuning``
as training does but on its trees without spilling only (ScaNN 1.4.2's
``upsert`` takes the process down on a SOAR tree: free(): invalid pointer),
each run in a fresh process (a crash is reported, not hidden):

- ``all items``: the partitioner and the AH codebooks train on a sample of
  every item (what ships);
- ``left out``: they train on the other items only (each untrained row
  replaced by a copy of a random trained item), and the untrained items are
  then written back into the index with ScaNN's ``upsert`` (assigned to their
  nearest leaf, re-encoded).

Reported per run: the chosen point, recall@10 on the checking half, us per
query. Then, on the former rule's tree without spilling, where the untrained
items sit: how many leaves hold them, the largest leaf, and the share of
(sampled) users whose ``leaves`` best leaves by centroid score include a leaf
that is mostly untrained items.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.common import RESULTS_DIR, fmt_table, machine_description, write_results


def _tune(paths: dict[str, str], variant: str, seed: int, queue: Any) -> None:
    import recsys  # noqa: F401  (sets TF_USE_LEGACY_KERAS before anything imports TensorFlow)
    import training.index_tuning as tuning
    from training.index import build_searcher
    from training.index_queries import sample_queries

    items, users, untrained = (np.load(paths[k]) for k in ("items", "users", "untrained"))
    moved, rows = np.flatnonzero(~untrained), np.flatnonzero(untrained)
    shapes = tuning.tree_shapes
    # ScaNN 1.4.2's upsert takes a SOAR (spilled) tree's process down (free(): invalid pointer):
    # both variants are compared on the trees without spilling
    tuning.tree_shapes = lambda num_items, dim: [(name, p) for name, p in shapes(num_items, dim) if "soar_lambda" not in p]
    if variant == "left out":

        def left_out(item_embeddings: np.ndarray, kind: str, params: dict, k: int = 100) -> Any:
            db = item_embeddings
            if kind == "brute_force":
                return build_searcher(db, kind, params, k)
            sample = db.copy()
            sample[rows] = db[np.random.default_rng(seed).choice(moved, len(rows))]
            searcher = build_searcher(sample, kind, params, k)
            searcher.searcher.upsert([int(i) for i in rows], np.ascontiguousarray(db[rows]), 1024)
            return searcher

        tuning.build_searcher = left_out
    _, info = tuning.tune_index(items, sample_queries(users, items, seed=seed), tuning.TuningTarget())
    queue.put(
        {
            "params": info.params,
            "kind": info.kind,
            "recall_at_10": info.recall_at_10_vs_exact,
            "us_per_query": info.us_per_query,
            "build_seconds": info.build_seconds,
        }
    )


def run_isolated(paths: dict[str, str], variant: str, seed: int) -> dict[str, Any]:
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_tune, args=(paths, variant, seed, queue))
    proc.start()
    proc.join()
    if proc.exitcode != 0:
        return {"crashed": True, "exitcode": proc.exitcode}
    return queue.get(timeout=5)


def where_they_sit(items: np.ndarray, users: np.ndarray, untrained: np.ndarray, leaves: int, seed: int = 0) -> dict[str, Any]:
    """The untrained items on the former rule's tree (no spilling): their leaves, and how often users visit them."""
    from training.index import build_searcher, index_params

    _, rule = index_params(max(len(items), 20_000))
    with tempfile.TemporaryDirectory() as tmp:
        build_searcher(items, "tree_ah", rule).serialize(tmp, relative_path=True)
        leaf = np.load(Path(tmp) / "datapoint_to_token.npy")
    sizes = np.bincount(leaf, minlength=rule["num_leaves"])
    share = np.bincount(leaf, weights=untrained.astype(float), minlength=rule["num_leaves"]) / np.maximum(sizes, 1)
    mostly = share > 0.8
    centroids = np.stack(
        [items[leaf == i].mean(axis=0) if sizes[i] else np.zeros(items.shape[1]) for i in range(rule["num_leaves"])]
    )
    q = users[np.random.default_rng(seed).choice(len(users), min(2_000, len(users)), replace=False)]
    best = np.argsort(-(q @ centroids.T), axis=1)[:, :leaves]
    return {
        "num_leaves": rule["num_leaves"],
        "empty_leaves": int((sizes == 0).sum()),
        "largest_leaf": int(sizes.max()),
        "leaves_holding_untrained": len(np.unique(leaf[untrained])),
        "leaves_mostly_untrained": int(mostly.sum()),
        "items_in_those_leaves": int(sizes[mostly].sum()),
        "visited_by": f"best {leaves} leaves",
        "share_of_users_visiting_one": float(mostly[best].any(axis=1).mean()),
    }


def main(argv: list[str] | None = None) -> int:
    import pandas as pd

    from benchmarks.index.vectors import trained_vectors

    ap = argparse.ArgumentParser(
        prog="python -m benchmarks.index_untrained", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--trained", required=True, help="model root (or version dir) of a version recsys train published")
    ap.add_argument("--seeds", default="0,1")
    ap.add_argument("--leaves", type=int, default=24, help="leaves a query visits in the visit statistics")
    ap.add_argument("--out", type=Path, default=RESULTS_DIR)
    ap.add_argument("--name", default="index_untrained")
    args = ap.parse_args(argv)
    machine = machine_description()
    items, users, info = trained_vectors(Path(args.trained))
    vdir = Path(info["version_dir"])
    untrained = pd.read_parquet(vdir / "items.parquet", columns=["popularity"])["popularity"].to_numpy() == 0
    distinct = len(np.unique(items[untrained], axis=0)) if untrained.any() else 0
    results: dict[str, Any] = {
        "model": info,
        "untrained_items": int(untrained.sum()),
        "distinct_untrained_vectors": distinct,
        "runs": [],
    }
    results["placement"] = where_they_sit(items, users, untrained, args.leaves)
    with tempfile.TemporaryDirectory() as tmp:
        paths = {k: str(Path(tmp) / f"{k}.npy") for k in ("items", "users", "untrained")}
        for k, v in (("items", items), ("users", users), ("untrained", untrained)):
            np.save(paths[k], v)
        for seed in [int(s) for s in args.seeds.split(",")]:
            for variant in ("all items", "left out"):
                run = {"variant": variant, "seed": seed, **run_isolated(paths, variant, seed)}
                print(json.dumps(run), file=sys.stderr, flush=True)
                results["runs"].append(run)
    rows = [
        [
            r["variant"],
            r["seed"],
            f"crashed (exit {r['exitcode']})"
            if r.get("crashed")
            else f"{r['kind']} leaves {r['params'].get('num_leaves_to_search')} pool {r['params'].get('reorder')}{' SOAR' if r['params'].get('soar_lambda') else ''}",
            r.get("recall_at_10"),
            r.get("us_per_query"),
        ]
        for r in results["runs"]
    ]
    p = results["placement"]
    summary = "\n".join(
        [
            f"## Untrained items on {info['source']} ({len(items):,} items): {results['untrained_items']:,} untrained, {distinct:,} distinct vectors among them",
            "",
            fmt_table(["partitioner sample", "seed", "chosen", "recall@10 checking", "us/query"], rows),
            "",
            f"Former rule's tree ({p['num_leaves']} leaves, no spilling): {p['empty_leaves']} empty leaves, largest leaf {p['largest_leaf']:,} items; "
            f"untrained items in {p['leaves_holding_untrained']} leaves; {p['leaves_mostly_untrained']} leaves (>80% untrained) hold {p['items_in_those_leaves']:,} items; "
            f"share of users whose {p['visited_by']} include one of those: {p['share_of_users_visiting_one']:.4f}.",
        ]
    )
    write_results(args.name, results, summary, out_dir=args.out, machine=machine)
    print(summary)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
