"""One catalog's index, built the way training builds it, against exact search: recall, µs per
query as the service pays it, build time, memory, and the former rule beside it."""

from __future__ import annotations

import argparse
import gc
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.common import (
    median,
)
from benchmarks.index.exact import exact_single, exact_top_k, qps
from benchmarks.index.shared import K, log, one_blas_thread, rss
from benchmarks.index.verdict import verdict


def dir_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


LOAD_PROBE = """
import json, sys, gc, psutil, scann
p = psutil.Process(); gc.collect(); before = p.memory_info().rss
s = scann.scann_ops_pybind.load_searcher(sys.argv[1])
gc.collect(); after = p.memory_info().rss
print(json.dumps({"rss_before": before, "rss_after": after}))
"""


def load_rss_delta(directory: Path) -> int | None:
    """RSS growth of loading the serialized index in a fresh process (what a server pays)."""
    try:
        done = subprocess.run(
            [sys.executable, "-c", LOAD_PROBE, str(directory)], capture_output=True, text=True, timeout=600, check=True
        )
        line = [x for x in done.stdout.splitlines() if x.startswith("{")][-1]
        probe = json.loads(line)
        return int(probe["rss_after"] - probe["rss_before"])
    except (subprocess.SubprocessError, IndexError, ValueError, KeyError) as exc:
        log(f"load RSS probe failed: {exc}")
        return None


def served_figures(
    searcher: Any, kind: str, params: dict, items: np.ndarray, held_out: np.ndarray, truth: np.ndarray, repeats: int
) -> dict[str, Any]:
    """Recall@10 vs exact on the held-out queries and us per query as the service pays it
    (batches of 12: ``search_batched`` + exact re-scoring of the pool; brute force: the search
    alone), thread CPU time, median of ``repeats`` passes over up to 480 held-out queries."""
    from training.index_space import run_brute, run_searcher
    from training.metrics import recall_vs_exact

    timed = held_out[:480]
    if kind == "brute_force":
        rows = np.asarray(searcher.search_batched(held_out, final_num_neighbors=K)[0])
        us = median([run_brute(searcher, timed, K) for _ in range(repeats)])
    else:
        rows, _ = run_searcher(searcher, items, held_out, params["reorder"], K)
        us = median([run_searcher(searcher, items, timed, params["reorder"], K)[1] for _ in range(repeats)])
    return {"recall_at_10_held_out": recall_vs_exact(rows, truth), "us_per_query": us}


def measure_catalog(
    name: str,
    items: np.ndarray,
    users: np.ndarray,
    held_out: np.ndarray,
    args: argparse.Namespace,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The index every command builds (``training.index.build_index``: tuned on a seeded sample
    of ``users``), beside the former rule by size, both measured on ``held_out`` queries that
    the tuning never saw; optionally the q/s figures of the former table (``--qps``)."""
    from training.index import build_index, build_searcher, index_params

    n_q = len(held_out)
    log(f"{name}: {len(items):,} x {items.shape[1]} items, {len(users):,} users to sample from, {n_q} held-out queries")
    t = time.perf_counter()
    truth = exact_top_k(items, held_out)
    log(f"{name}: exact top-{K} of the held-out queries in {time.perf_counter() - t:.1f}s")
    out: dict[str, Any] = {"num_items": len(items), "dim": int(items.shape[1]), "held_out_queries": n_q, **(extra or {})}

    if not args.no_former:
        kind, params = index_params(len(items))
        start = time.perf_counter()
        former = build_searcher(items, kind, params)
        out["former"] = {
            "kind": kind,
            "params": params,
            "build_seconds": time.perf_counter() - start,
            **served_figures(former, kind, params, items, held_out, truth, args.repeats),
        }
        log(f"{name}: former rule {kind} {params}: {out['former']}")
        del former
        gc.collect()

    before = rss()
    start, cpu = time.perf_counter(), time.process_time()
    searcher, info = build_index(items, users, seed=args.seed)
    build_seconds, build_cpu = time.perf_counter() - start, time.process_time() - cpu
    out["build_rss_delta_bytes"] = rss() - before
    served = served_figures(searcher, info.kind, info.params, items, held_out, truth, args.repeats)
    out.update(
        index_kind=info.kind,
        index_params=info.params,
        build_seconds=build_seconds,
        build_cpu_seconds=build_cpu,
        recall_at_10=served["recall_at_10_held_out"],
        us_per_query=served["us_per_query"],
        index=info.__dict__,
    )
    log(
        f"{name}: tuned {info.kind} {info.params} in {build_seconds:.1f}s ({build_cpu:.1f}s CPU): held-out recall@10 "
        f"{served['recall_at_10_held_out']:.4f} at {served['us_per_query']:.1f} us/query; checking recall@10 {info.recall_at_10_vs_exact} "
        f"@100 {info.recall_at_100_vs_exact}; {info.tuning.get('reason')}"
    )
    with tempfile.TemporaryDirectory(prefix="bench-index-ser-") as tmp:
        searcher.serialize(tmp, relative_path=True)
        out["serialized_bytes"] = dir_bytes(Path(tmp))
        out["load_rss_delta_bytes"] = load_rss_delta(Path(tmp))
    frontier = [p for p in info.tuning.get("frontier", []) if info.kind == "tree_ah" and _same_tree(info, p)]
    if frontier:
        out["frontier_points"] = [
            {
                "leaves_to_search": p["leaves_to_search"],
                "reorder": p["reorder"],
                "recall_at_10": p["recall_at_10"],
                "qps_batched": 1e6 / max(p["us_per_query"], 1e-9),
                "chosen": p["leaves_to_search"] == info.params["num_leaves_to_search"] and p["reorder"] == info.params["reorder"],
            }
            for p in frontier
        ]
        if any(p["chosen"] for p in out["frontier_points"]):
            out["frontier_verdict"] = verdict(out["frontier_points"], info.params)
    if args.qps:
        out.update(qps_figures(searcher, info.kind, info.params, items, held_out, args.repeats, args.single_queries))
    return out


def _same_tree(info: Any, point: dict) -> bool:
    """Is a frontier point on the chosen tree (the frontier spans every tree tried)?"""
    trees = info.tuning.get("trees", [])
    return 0 <= point["tree"] < len(trees) and trees[point["tree"]]["shape"] == info.tuning.get("chosen")


def qps_figures(
    searcher: Any, kind: str, params: dict, items: np.ndarray, queries: np.ndarray, repeats: int, single_cap: int
) -> dict[str, Any]:
    """Queries/s of the chosen index (single; batched on one thread, both with the exact
    re-scoring of the pool; batched on all cores, the search alone) and of exact numpy search."""
    from training.index import search_rescored

    pool = params.get("reorder", 0)
    n_q = len(queries)

    def served(qs: np.ndarray) -> Any:
        return search_rescored(searcher, items, qs, K, pool)

    single_q = queries[: min(n_q, single_cap)]
    exact_single_q = queries[: min(len(single_q), max(50, 30_000_000 // len(items)))]
    exact_batch_q = queries[: min(n_q, max(256, 200_000_000 // len(items)))]
    s_single, _ = qps(lambda: [served(q[None, :]) for q in single_q], len(single_q), repeats)
    s_batched, _ = qps(lambda: served(queries), n_q, repeats)
    s_parallel, _ = qps(lambda: searcher.search_batched_parallel(queries, final_num_neighbors=max(K, pool)), n_q, repeats)
    with one_blas_thread():
        e_single, _ = qps(lambda: [exact_single(items, q) for q in exact_single_q], len(exact_single_q), repeats)
        e_batched, _ = qps(lambda: exact_top_k(items, exact_batch_q), len(exact_batch_q), repeats)
    e_parallel, _ = qps(lambda: exact_top_k(items, exact_batch_q), len(exact_batch_q), repeats)
    return {
        "scann_qps_single": s_single,
        "scann_qps_batched_1thread": s_batched,
        "scann_qps_batched_parallel": s_parallel,
        "exact_qps_single": e_single,
        "exact_qps_batched": e_batched,
        "exact_qps_batched_parallel": e_parallel,
    }
