"""``python -m benchmarks.index``: the command line (see the package docstring)."""

from __future__ import annotations

import argparse
import gc
import time
from pathlib import Path
from typing import Any

import benchmarks.index
from benchmarks.common import (
    RESULTS_DIR,
    machine_description,
    movielens_dir,
    movielens_missing_message,
    write_results,
)
from benchmarks.index.measure import measure_catalog
from benchmarks.index.report import summarize
from benchmarks.index.shared import K, log
from benchmarks.index.vectors import clustered_gaussian, held_out_split, movielens_embeddings, trained_vectors


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m benchmarks.index",
        description=benchmarks.index.__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
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
