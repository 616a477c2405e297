"""The ScaNN index every command builds, against exact search and the former rule.

    python -m benchmarks.index [--trained ROOT,...] [--sizes 100000,1000000] [--no-movielens] [--qps]

Catalogs:

- trained models: ``--trained`` names model roots (or version directories)
  published by ``recsys train``; their ``item_embeddings.npy`` and every known
  user's query vector (the exported query tower on ``users.parquet``, as the
  service computes them);
- the project's trained MovieLens item embeddings (``run_pipeline`` with the
  default config, P2 split), queried with the trained user embeddings;
- generated catalogs of ``--sizes`` items, 64-d clustered Gaussian embeddings
  (``n/100`` cluster centres ~ N(0, I), items = centre + 0.5 N(0, I), each
  item's norm scaled by exp(0.2 N(0, 1))); users drawn from the same mixture.

Per catalog the index is built by ``training.index.build_index``, the path
training takes: tuned at build time on a seeded sample of the users' vectors
(``training.index_tuning``). Reported: the chosen setting, recall@10 against
exact dot-product search on held-out users (outside the tuning sample), the
checking-half recall@10/@100 the manifest records, us per query the way the
service pays it (batches of 12: ``search_batched`` plus the exact re-scoring
of the pool, thread CPU time; brute force: the search alone), build time with
the tuning (wall and CPU), the frontier tried; beside it the former rule by
size (``training.index.index_params``) on the same held-out users. ``--qps``
adds the q/s table of single, batched and parallel search and of exact numpy
search. The chosen tree's frontier is plotted in
benchmarks/results/index_recall_speed.png. Timings are medians of
``--repeats``.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.common import (
    RESULTS_DIR,
    fmt_table,
    machine_description,
    median,
    movielens_dir,
    movielens_missing_message,
    write_results,
)

K = 10
LEAF_FRACTIONS = (0.01, 0.025, 0.05, 0.1, 0.2, 0.4)
REORDERS = (50, 100, 250, 500, 1000)


def one_blas_thread() -> Any:
    """Limit BLAS to one thread (threadpoolctl, installed with implicit/scipy
    stacks); without threadpoolctl, OPENBLAS_NUM_THREADS decides and the
    results say so."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        log("threadpoolctl absent: 'exact 1 thread' figures use the BLAS default thread count")
        return contextlib.nullcontext()
    return threadpool_limits(limits=1, user_api="blas")


def log(msg: str) -> None:
    print(f"[index {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def rss() -> int:
    import psutil

    gc.collect()
    return int(psutil.Process().memory_info().rss)


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
    users = embed(result.train.model.query_tower, prep.user_inputs)
    return items, users, {"source": data.source, "split": "temporal (P2)", "pipeline_index": result.metrics["index"]}


# --------------------------------------------------------------------------- search
def exact_top_k(items: np.ndarray, queries: np.ndarray, k: int = K, chunk: int = 128) -> np.ndarray:
    """Exact dot-product top-k, best first: one BLAS matmul per chunk of queries,
    then a partial sort (argpartition) of each row."""
    out = []
    for s in range(0, len(queries), chunk):
        scores = queries[s : s + chunk] @ items.T
        part = np.argpartition(scores, -k, axis=1)[:, -k:]
        top = np.take_along_axis(scores, part, axis=1)
        out.append(np.take_along_axis(part, np.argsort(-top, axis=1, kind="stable"), axis=1))
    return np.concatenate(out, axis=0)


def exact_single(items: np.ndarray, q: np.ndarray, k: int = K) -> np.ndarray:
    """Exact top-k of one query (matrix-vector product + argpartition), best first."""
    scores = items @ q
    part = np.argpartition(scores, -k)[-k:]
    return part[np.argsort(-scores[part], kind="stable")]


def qps(fn: Callable[[], Any], n_queries: int, repeats: int, min_seconds: float = 0.3) -> tuple[float, list[float]]:
    """Median queries/s over ``repeats`` samples; each sample loops ``fn`` (which
    answers ``n_queries``) enough times to last about ``min_seconds``, so that
    fast configurations are not timed on a few milliseconds of a noisy machine."""
    start = time.perf_counter()
    fn()  # warm-up, also calibrates the loop count
    loops = max(1, int(np.ceil(min_seconds / max(time.perf_counter() - start, 1e-9))))
    per_call = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(loops):
            fn()
        per_call.append((time.perf_counter() - start) / loops)
    return n_queries / median(per_call), per_call


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
    from training.index_tuning import run_brute, run_searcher
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


def verdict(points: list[dict[str, Any]], params: dict, noise: float = 0.10) -> dict[str, Any]:
    """Is the chosen point on the good side of the curve? Alternatives that are
    faster by more than ``noise`` at no lower recall, or more accurate at no
    lower speed (within ``noise``)."""
    chosen = next(p for p in points if p["chosen"])
    faster = [
        p
        for p in points
        if p["recall_at_10"] >= chosen["recall_at_10"] and p["qps_batched"] > chosen["qps_batched"] * (1 + noise)
    ]
    better = [
        p
        for p in points
        if p["recall_at_10"] > chosen["recall_at_10"] + 0.005 and p["qps_batched"] >= chosen["qps_batched"] * (1 - noise)
    ]
    frontier = [
        p
        for p in points
        if not any(q["recall_at_10"] >= p["recall_at_10"] and q["qps_batched"] > p["qps_batched"] and q is not p for q in points)
    ]
    return {
        "chosen": chosen,
        "on_pareto_frontier": chosen in frontier,
        "faster_at_same_or_better_recall": sorted(faster, key=lambda p: -p["qps_batched"]),
        "more_recall_at_same_or_better_speed": sorted(better, key=lambda p: -p["recall_at_10"]),
        "pareto_frontier": sorted(frontier, key=lambda p: p["recall_at_10"]),
    }


# --------------------------------------------------------------------------- trained models
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
def _params_text(kind: str, params: dict) -> str:
    if kind != "tree_ah":
        return kind.replace("_", " ")
    spill = ", SOAR" if params.get("soar_lambda") else ""
    return f"tree_ah {params['num_leaves']:,} leaves{spill}, search {params['num_leaves_to_search']}, pool {params['reorder']}"


def summarize(results: dict[str, Any]) -> str:
    rows, formers = [], []
    for name, r in results["catalogs"].items():
        idx = r["index"]
        rows.append(
            [
                name,
                f"{r['num_items']:,}",
                idx["tuning"].get("queries", {}).get("source", "—"),
                r["held_out_queries"],
                _params_text(r["index_kind"], r["index_params"]),
                r["recall_at_10"],
                idx.get("recall_at_10_vs_exact"),
                idx.get("recall_at_100_vs_exact"),
                r["us_per_query"],
                idx["tuning"].get("brute_force_us_per_query"),
                r["build_seconds"],
                r["build_cpu_seconds"],
                f"{r['serialized_bytes'] / 2**20:.1f}",
                idx.get("meets_target"),
            ]
        )
        if "former" in r:
            f = r["former"]
            formers.append(
                [name, _params_text(f["kind"], f["params"]), f["recall_at_10_held_out"], f["us_per_query"], f["build_seconds"]]
            )
    lines = [
        f"## The tuned index (training.index.build_index) on held-out queries, k = {K}",
        "",
        "Recall@10 vs exact on held-out queries the tuning never saw; checking recall@10/@100 as the manifest records them;"
        " us/query: batches of 12, search + exact re-scoring of the pool, thread CPU time, median of passes; build: tuning included.",
        "",
        fmt_table(
            [
                "catalog",
                "items",
                "tuning queries",
                "held-out queries",
                "chosen",
                "recall@10 held-out",
                "recall@10 checking",
                "recall@100 checking",
                "us/query",
                "brute force us/query",
                "build s",
                "build CPU s",
                "serialized MiB",
                "meets target",
            ],
            rows,
        ),
        "",
    ]
    if formers:
        lines += [
            "### The former rule by size (training.index.index_params) on the same held-out queries",
            "",
            fmt_table(["catalog", "former setting", "recall@10 held-out", "us/query", "build s"], formers),
            "",
        ]
    for name, r in results["catalogs"].items():
        idx = r["index"]
        trees = idx["tuning"].get("trees", [])
        lines += [f"### Frontier tried on {name} ({idx['tuning'].get('reason')})", ""]
        if trees:
            lines += [
                fmt_table(
                    ["tree", "shape", "leaves", "SOAR", "sample", "build s"],
                    [
                        [
                            i,
                            t["shape"],
                            t["num_leaves"],
                            "yes" if t.get("soar_lambda") else "no",
                            t["training_sample_size"],
                            t["build_seconds"],
                        ]
                        for i, t in enumerate(trees)
                    ],
                ),
                "",
            ]
        pts = sorted(idx["tuning"].get("frontier", []), key=lambda p: (p["tree"], p["reorder"], p["leaves_to_search"]))
        lines += [
            fmt_table(
                [
                    "tree",
                    "leaves searched",
                    "pool",
                    "recall@10 tuning",
                    "us/query",
                    "us/query retimed",
                    "recall@10 checking",
                    "pareto",
                ],
                [
                    [
                        p["tree"],
                        p["leaves_to_search"],
                        p["reorder"],
                        p["recall_at_10"],
                        p["us_per_query"],
                        p.get("us_per_query_retimed"),
                        p.get("checking_recall_at_10"),
                        "◀" if p["pareto"] else "",
                    ]
                    for p in pts
                ],
            ),
            "",
        ]
    qps_rows = [
        [
            n,
            r["scann_qps_single"],
            r["scann_qps_batched_1thread"],
            r["scann_qps_batched_parallel"],
            r["exact_qps_single"],
            r["exact_qps_batched"],
            r["exact_qps_batched_parallel"],
        ]
        for n, r in results["catalogs"].items()
        if "scann_qps_single" in r
    ]
    if qps_rows:
        lines += [
            "### Queries/s of the chosen index vs exact numpy search",
            "",
            fmt_table(
                [
                    "catalog",
                    "ScaNN q/s single",
                    "ScaNN q/s batched (1 thread)",
                    "ScaNN q/s batched (parallel)",
                    "exact q/s single",
                    "exact q/s batched (1 thread)",
                    "exact q/s batched (BLAS, all cores)",
                ],
                qps_rows,
            ),
            "",
        ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m benchmarks.index", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--data", help="MovieLens 100K directory (default ../shared/data/ml-100k); skipped when absent")
    ap.add_argument("--no-movielens", action="store_true", help="leave the MovieLens catalog out (it trains a model first)")
    ap.add_argument("--out", type=Path, default=RESULTS_DIR)
    ap.add_argument("--name", default="index", help="results name: <out>/<name>.json, .md and <name>_recall_speed.png")
    ap.add_argument("--sizes", default="100000,1000000", help="generated catalog sizes ('' for none)")
    ap.add_argument(
        "--trained", default="", help="comma-separated model roots (or version dirs) of versions `recsys train` published"
    )
    ap.add_argument("--dim", type=int, default=64)
    ap.add_argument("--users", type=int, default=20_000, help="generated catalogs: query vectors drawn as known users")
    ap.add_argument("--held-out", type=int, default=1000, help="held-out queries per catalog (users outside the tuning sample)")
    ap.add_argument("--single-queries", type=int, default=300, help="queries timed one at a time (--qps)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument(
        "--qps", action="store_true", help="also the q/s figures of single, batched and parallel search and of exact numpy"
    )
    ap.add_argument("--no-former", action="store_true", help="skip building the former rule's index for comparison")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    started = time.perf_counter()
    machine = machine_description()
    results: dict[str, Any] = {
        "k": K,
        "repeats": args.repeats,
        "generator": "clustered Gaussian: n/100 centres ~ N(0,I); item = centre + 0.5 N(0,I), norm x exp(0.2 N(0,1)); queries = centre + 0.5 N(0,I)",
        "timing": "us per query: batches of 12 queries, search_batched + exact re-scoring of the pool (numpy), thread CPU time",
        "catalogs": {},
    }
    path = movielens_dir(args.data)
    missing = movielens_missing_message(path)
    if args.no_movielens:
        results["movielens"] = "left out (--no-movielens)"
    elif missing:
        log(missing + " — the MovieLens catalog is left out; the other catalogs still run.")
        results["movielens"] = missing
    else:
        items, users, info = movielens_embeddings(path)
        users, held = held_out_split(users, items, args)
        held = held if len(held) else users  # 943 users all in the sample: measured on them (brute force is exact anyway)
        results["catalogs"]["movielens-100k (trained)"] = measure_catalog(
            "movielens-100k (trained)", items, users, held, args, {"model": info}
        )
    for root in [r for r in args.trained.split(",") if r.strip()]:
        items, users, info = trained_vectors(Path(root))
        users, held = held_out_split(users, items, args)
        label = f"trained {len(items) // 1000}K items, {info['num_users'] // 1000}K users"
        results["catalogs"][label] = measure_catalog(label, items, users, held, args, {"model": info})
        del items, users, held
        gc.collect()
    for n in [int(x) for x in args.sizes.split(",") if x.strip()]:
        items, queries = clustered_gaussian(n, args.dim, args.users + args.held_out, seed=args.seed)
        label = f"generated {n // 1000}K" if n < 1_000_000 else f"generated {n / 1e6:g}M"
        results["catalogs"][label] = measure_catalog(label, items, queries[: args.users], queries[args.users :], args)
        del items, queries
        gc.collect()
    swept = {n: r for n, r in results["catalogs"].items() if r.get("frontier_verdict")}
    if swept:
        from benchmarks.plots import recall_speed

        png = args.out / f"{args.name}_recall_speed.png"
        recall_speed(
            {n: r["frontier_points"] for n, r in swept.items()},
            {n: r["frontier_verdict"]["chosen"] for n, r in swept.items()},
            {},
            png,
        )
        results["plot"] = png.name
    summary = summarize(results)
    write_results(args.name, results, summary, out_dir=args.out, machine=machine, started=started)
    print(summary)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
