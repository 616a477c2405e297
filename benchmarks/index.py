"""The ScaNN index against exact brute-force search.

    python -m benchmarks.index [--data DIR] [--sizes 100000,1000000] [--queries 1000] [--repeats 3]

Catalogs:

- the project's trained MovieLens item embeddings (``run_pipeline`` with the
  default config, P2 split), queried with the trained user embeddings;
- generated catalogs of ``--sizes`` items, 64-d clustered Gaussian embeddings
  (``n/100`` cluster centres ~ N(0, I), items = centre + 0.5 N(0, I), each
  item's norm scaled by exp(0.2 N(0, 1)) so dot-product search sees varied
  norms, as with trained embeddings); queries drawn from the same mixture.

Per catalog, with the parameters ``training.index.index_params`` chooses:
build time, recall@10 against exact dot-product search, queries/s of ScaNN
(single query; batched on one thread; both including the exact re-scoring of
the ``reorder`` pool the service does; batched on all cores, the search alone) and of exact numpy
search (single and batched in chunks of 128 on one BLAS thread; batched with
BLAS on all cores), serialized index size,
RSS growth during the build and RSS growth of loading the serialized index in
a fresh process. Then a sweep of ``leaves_to_search`` x ``reorder`` (query-time
overrides on the same index) for recall@10 vs batched queries/s, plotted in
benchmarks/results/index_recall_speed.png. Timings are medians of
``--repeats``.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.common import RESULTS_DIR, fmt_table, machine_description, median, movielens_dir, movielens_missing_message, write_results

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
        done = subprocess.run([sys.executable, "-c", LOAD_PROBE, str(directory)], capture_output=True, text=True, timeout=600, check=True)
        line = [x for x in done.stdout.splitlines() if x.startswith("{")][-1]
        probe = json.loads(line)
        return int(probe["rss_after"] - probe["rss_before"])
    except (subprocess.SubprocessError, IndexError, ValueError, KeyError) as exc:
        log(f"load RSS probe failed: {exc}")
        return None


def measure_catalog(name: str, items: np.ndarray, queries: np.ndarray, repeats: int, sweep: bool, single_cap: int) -> dict[str, Any]:
    from training.index import build_searcher, index_params, search_rescored
    from training.metrics import recall_vs_exact

    kind, params = index_params(len(items))
    n_q = len(queries)
    log(f"{name}: {len(items):,} x {items.shape[1]} items, {n_q} queries, index {kind} {params}")
    exact_start = time.perf_counter()
    truth = exact_top_k(items, queries)
    log(f"{name}: exact top-{K} of all queries in {time.perf_counter() - exact_start:.1f}s")

    before = rss()
    start = time.perf_counter()
    searcher = build_searcher(items, kind, params)
    build_seconds = time.perf_counter() - start
    build_rss = rss() - before
    log(f"{name}: built in {build_seconds:.1f}s, RSS +{build_rss / 2**20:.0f} MiB")

    pool = params.get("reorder", 0)  # what the service re-scores exactly (tree + AH); 0 for brute force

    def served(qs: np.ndarray) -> Any:
        return search_rescored(searcher, items, qs, K, pool)

    approx, _ = served(queries)
    recall = recall_vs_exact(np.asarray(approx), truth)
    with tempfile.TemporaryDirectory(prefix="bench-index-ser-") as tmp:
        searcher.serialize(tmp, relative_path=True)
        ser_bytes = dir_bytes(Path(tmp))
        load_rss = load_rss_delta(Path(tmp))

    single_q = queries[: min(n_q, single_cap)]
    # exact search over 1M items takes tens of ms a query: time fewer queries there
    exact_single_q = queries[: min(len(single_q), max(50, 30_000_000 // len(items)))]
    exact_batch_q = queries[: min(n_q, max(256, 200_000_000 // len(items)))]
    s_single, _ = qps(lambda: [served(q[None, :]) for q in single_q], len(single_q), repeats)
    s_batched, _ = qps(lambda: served(queries), n_q, repeats)
    # the search alone, without re-scoring: ScaNN's own threads
    s_parallel, _ = qps(lambda: searcher.search_batched_parallel(queries, final_num_neighbors=max(K, pool)), n_q, repeats)
    with one_blas_thread():  # one core, like ScaNN's search / search_batched
        e_single, _ = qps(lambda: [exact_single(items, q) for q in exact_single_q], len(exact_single_q), repeats)
        e_batched, _ = qps(lambda: exact_top_k(items, exact_batch_q), len(exact_batch_q), repeats)
    e_parallel, _ = qps(lambda: exact_top_k(items, exact_batch_q), len(exact_batch_q), repeats)  # BLAS on every core
    log(
        f"{name}: recall@10 {recall:.4f}; q/s ScaNN single {s_single:,.0f} batched {s_batched:,.0f} parallel {s_parallel:,.0f}; "
        f"exact single {e_single:,.0f} batched {e_batched:,.0f} parallel {e_parallel:,.0f}"
    )
    out: dict[str, Any] = {
        "num_items": len(items),
        "dim": int(items.shape[1]),
        "num_queries": n_q,
        "single_query_count": len(single_q),
        "exact_single_query_count": len(exact_single_q),
        "exact_batched_query_count": len(exact_batch_q),
        "index_kind": kind,
        "index_params": params,
        "build_seconds": build_seconds,
        "recall_at_10": recall,
        "scann_qps_single": s_single,
        "scann_qps_batched_1thread": s_batched,
        "scann_qps_batched_parallel": s_parallel,
        "exact_qps_single": e_single,
        "exact_qps_batched": e_batched,
        "exact_qps_batched_parallel": e_parallel,
        "serialized_bytes": ser_bytes,
        "build_rss_delta_bytes": build_rss,
        "load_rss_delta_bytes": load_rss,
        "raw_embeddings_bytes": int(items.nbytes),
    }
    if sweep and kind == "tree_ah":
        out["sweep"] = run_sweep(searcher, items, queries, truth, params, repeats)
        out["sweep_verdict"] = verdict(out["sweep"], params)
    return out


def run_sweep(searcher, items: np.ndarray, queries: np.ndarray, truth: np.ndarray, params: dict, repeats: int) -> list[dict[str, Any]]:
    from training.index import search_rescored
    from training.metrics import recall_vs_exact

    leaves = params["num_leaves"]
    chosen_lts = params["num_leaves_to_search"]
    grid = {max(1, int(round(f * leaves))) for f in LEAF_FRACTIONS}
    grid = {v for v in grid if abs(v - chosen_lts) > max(1, 0.05 * chosen_lts)}  # no near-duplicate of the chosen value
    to_search = sorted(grid | {chosen_lts})
    reorders = sorted(set(REORDERS) | {params["reorder"]})
    configs = [(lts, ro) for lts in to_search for ro in reorders]

    def run(cfg: tuple[int, int]) -> Any:
        # a pool of cfg[1] approximate candidates re-scored exactly, as the service does
        return search_rescored(searcher, items, queries, K, cfg[1], leaves_to_search=cfg[0])

    recalls, loops = {}, {}
    for cfg in configs:  # recall (deterministic) and a loop count lasting ~0.3 s per timing sample
        start = time.perf_counter()
        approx, _ = run(cfg)
        loops[cfg] = max(1, int(np.ceil(0.3 / max(time.perf_counter() - start, 1e-9))))
        recalls[cfg] = recall_vs_exact(np.asarray(approx), truth)
    # Timing passes go round-robin over every configuration, so a burst of load
    # from other processes hits all of them alike instead of a few.
    samples: dict[tuple[int, int], list[float]] = {cfg: [] for cfg in configs}
    for _ in range(repeats):
        for cfg in configs:
            start = time.perf_counter()
            for _ in range(loops[cfg]):
                run(cfg)
            samples[cfg].append((time.perf_counter() - start) / loops[cfg])
    points = []
    for cfg in configs:
        lts, ro = cfg
        speed = len(queries) / median(samples[cfg])
        chosen = lts == chosen_lts and ro == params["reorder"]
        points.append({"leaves_to_search": lts, "reorder": ro, "recall_at_10": recalls[cfg], "qps_batched": speed, "chosen": chosen})
        log(f"  sweep leaves {lts:>4} reorder {ro:>4}: recall {recalls[cfg]:.4f} qps {speed:,.0f}{'  <- chosen' if chosen else ''}")
    return points


def verdict(points: list[dict[str, Any]], params: dict, noise: float = 0.10) -> dict[str, Any]:
    """Is the chosen point on the good side of the curve? Alternatives that are
    faster by more than ``noise`` at no lower recall, or more accurate at no
    lower speed (within ``noise``)."""
    chosen = next(p for p in points if p["chosen"])
    faster = [p for p in points if p["recall_at_10"] >= chosen["recall_at_10"] and p["qps_batched"] > chosen["qps_batched"] * (1 + noise)]
    better = [
        p for p in points if p["recall_at_10"] > chosen["recall_at_10"] + 0.005 and p["qps_batched"] >= chosen["qps_batched"] * (1 - noise)
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


# --------------------------------------------------------------------------- main
def summarize(results: dict[str, Any]) -> str:
    rows = []
    for name, r in results["catalogs"].items():
        rows.append(
            [
                name,
                f"{r['num_items']:,}",
                r["index_kind"],
                r["build_seconds"],
                r["recall_at_10"],
                r["scann_qps_single"],
                r["scann_qps_batched_1thread"],
                r["scann_qps_batched_parallel"],
                r["exact_qps_single"],
                r["exact_qps_batched"],
                r["exact_qps_batched_parallel"],
                f"{r['serialized_bytes'] / 2**20:.1f}",
                f"{r['build_rss_delta_bytes'] / 2**20:.0f}",
                f"{r['load_rss_delta_bytes'] / 2**20:.0f}" if r.get("load_rss_delta_bytes") is not None else "—",
            ]
        )
    lines = [
        "## ScaNN (training.index defaults) vs exact numpy search, k = 10",
        "",
        fmt_table(
            [
                "catalog",
                "items",
                "index",
                "build s",
                "recall@10",
                "ScaNN q/s single",
                "ScaNN q/s batched (1 thread)",
                "ScaNN q/s batched (parallel)",
                "exact q/s single",
                "exact q/s batched (1 thread)",
                "exact q/s batched (BLAS, all cores)",
                "serialized MiB",
                "build RSS +MiB",
                "load RSS +MiB",
            ],
            rows,
        ),
        "",
    ]
    for name, r in results["catalogs"].items():
        if "sweep" not in r:
            continue
        v = r["sweep_verdict"]
        c = v["chosen"]
        lines += [
            f"### Sweep on {name} (num_leaves {r['index_params']['num_leaves']}; batched, 1 thread)",
            "",
            fmt_table(
                ["leaves_to_search", "reorder", "recall@10", "q/s", "chosen"],
                [[p["leaves_to_search"], p["reorder"], p["recall_at_10"], p["qps_batched"], "◀" if p["chosen"] else ""] for p in r["sweep"]],
            ),
            "",
            f"- chosen: leaves_to_search {c['leaves_to_search']}, reorder {c['reorder']}: recall {c['recall_at_10']:.4f} at {c['qps_batched']:,.0f} q/s; "
            f"on the Pareto frontier: {v['on_pareto_frontier']}",
        ]
        if v["faster_at_same_or_better_recall"]:
            p = v["faster_at_same_or_better_recall"][0]
            lines.append(
                f"- faster at no lower recall: leaves_to_search {p['leaves_to_search']}, reorder {p['reorder']}: recall {p['recall_at_10']:.4f} at {p['qps_batched']:,.0f} q/s"
            )
        if v["more_recall_at_same_or_better_speed"]:
            p = v["more_recall_at_same_or_better_speed"][0]
            lines.append(
                f"- more recall at no lower speed (±10%): leaves_to_search {p['leaves_to_search']}, reorder {p['reorder']}: recall {p['recall_at_10']:.4f} at {p['qps_batched']:,.0f} q/s"
            )
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.index", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", help="MovieLens 100K directory (default ../shared/data/ml-100k); skipped when absent")
    ap.add_argument("--out", type=Path, default=RESULTS_DIR)
    ap.add_argument("--sizes", default="100000,1000000", help="generated catalog sizes")
    ap.add_argument("--dim", type=int, default=64)
    ap.add_argument("--queries", type=int, default=1000)
    ap.add_argument("--single-queries", type=int, default=300, help="queries timed one at a time")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--no-sweep", action="store_true")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    started = time.perf_counter()
    machine = machine_description()
    results: dict[str, Any] = {
        "k": K,
        "repeats": args.repeats,
        "generator": "clustered Gaussian: n/100 centres ~ N(0,I); item = centre + 0.5 N(0,I), norm x exp(0.2 N(0,1)); queries = centre + 0.5 N(0,I)",
        "threads": {
            "ScaNN search / search_batched": 1,
            "ScaNN search_batched_parallel": os.cpu_count(),
            "exact numpy single / batched": "1 (threadpoolctl BLAS limit)",
            "exact numpy batched parallel": "BLAS default (all cores)",
        },
        "catalogs": {},
    }
    path = movielens_dir(args.data)
    missing = movielens_missing_message(path)
    if missing:
        log(missing + " — the MovieLens catalog is left out; generated catalogs still run.")
        results["movielens"] = missing
    else:
        items, users, info = movielens_embeddings(path)
        results["movielens_model"] = info
        results["catalogs"]["movielens-100k (trained)"] = measure_catalog(
            "movielens-100k (trained)", items, users, args.repeats, not args.no_sweep, args.single_queries
        )
    for n in [int(s) for s in args.sizes.split(",") if s.strip()]:
        items, queries = clustered_gaussian(n, args.dim, args.queries, seed=args.seed)
        label = f"generated {n // 1000}K" if n < 1_000_000 else f"generated {n / 1e6:g}M"
        results["catalogs"][label] = measure_catalog(label, items, queries, args.repeats, not args.no_sweep, args.single_queries)
        del items, queries
        gc.collect()
    swept = {n: r["sweep"] for n, r in results["catalogs"].items() if "sweep" in r}
    if swept:
        from benchmarks.plots import recall_speed

        png = args.out / "index_recall_speed.png"
        recall_speed(
            swept,
            {n: r["sweep_verdict"]["chosen"] for n, r in results["catalogs"].items() if "sweep" in r},
            {n: r["exact_qps_batched"] for n, r in results["catalogs"].items() if "sweep" in r},
            png,
        )
        results["plot"] = png.name
    summary = summarize(results)
    write_results("index", results, summary, out_dir=args.out, machine=machine, started=started)
    print(summary)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
