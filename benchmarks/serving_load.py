"""Serving under load: a real ``recsys serve`` on loopback against its two ceilings.

    python -m benchmarks.serving_load [--sizes 100000,1000000] [--concurrency 1,8,32,64] [--workers 1,2]
        [--duration 8] [--repeats 3] [--swap-duration 120] [--work-dir DIR] [--quick]
        [--former-index]

What it does (../shared/BENCHMARKS.md, "Serving"):

1. Catalogs: a version of each ``--sizes`` items (64-d) published by
   ``benchmarks.catalog`` under ``--work-dir`` (reused when already there; its
   build timings are reported).
2. Compute ceiling, per catalog: in a separate process, ``serving.version.loader.load_version``
   loads the version the server would load, then (a) query tower + ScaNN search
   (``LoadedModel.embed`` + ``LoadedModel.index.search_ranked``: the index search and
   its exact re-scoring, k=10) and (b) the
   service's whole inference step (``serving.retrieval`` ``plan_recommendation`` + ``rank_jobs``:
   tower, over-fetching search, exclusion of seen items, exact re-scoring,
   result dicts) are timed in-process at batch sizes 1, 8, 32, 64. No HTTP.
3. Per catalog and per ``--workers``: the real server (``recsys serve --host
   127.0.0.1 --workers N``) and the HTTP ceiling (``ceiling-server`` below: the
   service's own app, ``create_app``, with the served model and the retriever
   replaced (where the app's dependencies read them) by a fixed 10-item answer, run
   with the service's uvicorn options; :mod:`benchmarks.serving.ceiling`) run side by side; for each repeat and each concurrency, the
   ceiling and the model are loaded one after the other with the same bounded
   load (wrk through ``benchmarks.loadgen``; ``POST /v1/recommendations`` for known users,
   k=10, cycling over 1,000 users). Reported: medians over repeats of p50/p95/p99,
   requests/s, failures, and throughput / HTTP ceiling. Server RSS (all
   processes, psutil) after loading and at the end; mean micro-batch size from
   ``/metrics``.
4. Hot swap, per catalog and per ``--swap-workers``: the same load at concurrency
   32 for ``--swap-duration`` seconds while a prepared new version (another seed)
   is written and published into the served model root by a separate process;
   reports failures (must be 0), the answers per version (X-Model-Version), when
   the new version first answered, and peak server RSS during the swap. The
   load runs as three back-to-back wrk runs: *before* (``--swap-delay``
   seconds), *during* (from the publish until ``--swap-margin`` seconds after
   ``/readyz`` first names the new version, polled every 0.25 s; wrk is then
   stopped with SIGINT, which ends its run and reports it) and *after* (the
   rest), each with its exact percentiles. The run boundaries fall where nothing
   stalls (before the publish, and seconds after the swap and its heap
   collection), so no slow answer is lost at a boundary (wrk drops the requests
   still in flight when a run ends). ``--swap-windows off`` gives one run, as
   before.

5. ``--recent-items N`` (instead of 2-4), per catalog: one worker serving a
   version whose query tower reads the users' recent items
   (``benchmarks.catalog --history-length 50``, built once under ``--work-dir``)
   is loaded at concurrency 32 with the known-user requests each carrying N
   seeded ``recent_item_ids`` (so the query tower runs for every request), then
   with the same requests without them; interleaved with those, a second
   server on today's version of the same catalog (no history feature) gets the
   requests without them. Reported: p50/p95/p99, req/s and failures of each.
   ``python -m benchmarks.serving_load compute-recent --model-root DIR
   [--recent 20]`` times the same inference step in-process (no HTTP): batches
   of 32 known-user requests with and without recent items, ms per batch.

5. With ``--former-index``, per catalog: its copy with the former rule's index by
   size (``benchmarks/former_index.py``) is measured as in 3, right after the tuned
   one, and the change in requests/s and p99 is reported (issue 23).

The parts live in :mod:`benchmarks.serving` (servers, catalogs, the HTTP ceiling,
the compute ceiling, measuring, recent items, the swap, the figure and the
summary); this module is the command line.

Results: ``benchmarks/results/serving_load.json`` and ``.md`` (via
``benchmarks.common.write_results``) and ``benchmarks/results/serving_load.png``
(latency and throughput against concurrency). Catalog folders stay in
``--work-dir`` (default ``$TMPDIR/recsys-serving-bench``), never in the repo.

The machine has 2 cores shared by the server, the load generator and whatever
else runs: every figure here is a closed-loop measurement on that box, the load
average is recorded before every step, and ratios (to ceilings measured in the
same run, interleaved) are what to compare.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks.common import RESULTS_DIR, describe_machine_line, load_average, machine_description, write_results
from benchmarks.loadgen import wrk_path
from benchmarks.serving.catalogs import ensure_catalog, former_index_catalog
from benchmarks.serving.ceiling import serve_ceiling
from benchmarks.serving.compute import compute_ceiling, compute_recent
from benchmarks.serving.constants import DEFAULT_WORK_DIR, REPO, TARGETS, K, log
from benchmarks.serving.measure import former_change, measure_workers
from benchmarks.serving.plot import plot
from benchmarks.serving.recent import measure_recent
from benchmarks.serving.report import check_targets, summary_md
from benchmarks.serving.servers import server_env
from benchmarks.serving.swap import swap_run


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="Serving load benchmark (see the module docstring).")
    sub = p.add_subparsers(dest="cmd")
    cs = sub.add_parser("ceiling-server", help="run the HTTP-ceiling app (used by the benchmark)")
    cs.add_argument("--port", type=int, required=True)
    cs.add_argument("--workers", type=int, default=1)
    rp = sub.add_parser("replot", help="redraw the PNG and summary of a results JSON")
    rp.add_argument("--out", default="serving_load")
    cc = sub.add_parser("compute", help="print the compute ceiling of a model root as JSON")
    cc.add_argument("--model-root", type=Path, required=True)
    cr = sub.add_parser("compute-recent", help="in-process: the inference step on batches of 32 with and without recent items")
    cr.add_argument("--model-root", type=Path, required=True)
    cr.add_argument("--recent", type=int, default=20)
    p.add_argument("--sizes", default="100000,1000000")
    p.add_argument("--concurrency", default="1,8,32,64")
    p.add_argument("--workers", default="1,2")
    p.add_argument("--swap-workers", default=None, help="workers for the swap runs (default: --workers)")
    p.add_argument("--duration", type=float, default=8.0, help="seconds per measured point")
    p.add_argument("--warmup", type=float, default=3.0)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--processes", type=int, default=1, help="wrk threads")
    p.add_argument(
        "--swap-duration", type=float, default=None, help="seconds of load around a publish (default 40 for 100K, 120 for 1M)"
    )
    p.add_argument("--swap-delay", type=float, default=5.0, help="seconds into the swap run before publishing")
    p.add_argument(
        "--swap-windows",
        choices=("on", "off"),
        default="on",
        help="wrk: measure before / during / after the swap as three runs (off: one run over the whole swap run)",
    )
    p.add_argument(
        "--swap-margin", type=float, default=3.0, help="the during run ends this many seconds after /readyz names the new version"
    )
    p.add_argument("--no-swap", action="store_true")
    p.add_argument("--swap-only", action="store_true", help="only the swap runs (no ceiling/model comparison)")
    p.add_argument(
        "--publish-ahead",
        action="store_true",
        help="swap runs: write the new version before the load; under load only move it in and rewrite LATEST",
    )
    p.add_argument("--no-compute", action="store_true")
    p.add_argument(
        "--former-index",
        action="store_true",
        help="also serve each catalog with the former rule's index (benchmarks.former_index), right after the "
        "tuned one, per --workers: the tuned index's throughput change in one run",
    )
    p.add_argument(
        "--recent-items",
        type=int,
        default=0,
        help="N > 0: only the recent-items comparison at concurrency 32 (requests carrying N recent_item_ids on a "
        "version with a history feature, the same without, and today's version without; see measure_recent)",
    )
    p.add_argument("--ready-timeout", type=float, default=900.0)
    p.add_argument("--work-dir", type=Path, default=DEFAULT_WORK_DIR)
    p.add_argument("--out", default="serving_load", help="result name under benchmarks/results/")
    p.add_argument("--quick", action="store_true", help="20K items, concurrency 1,8,32, 1 repeat of 3 s: a smoke run")
    args = p.parse_args(argv)

    if args.cmd == "ceiling-server":
        serve_ceiling("127.0.0.1", args.port, args.workers)
        return 0
    if args.cmd == "replot":
        doc = json.loads((RESULTS_DIR / f"{args.out}.json").read_text())
        plot(doc["results"], RESULTS_DIR / f"{args.out}.png")
        print(summary_md(doc["results"]))
        return 0
    if args.cmd == "compute":
        print(json.dumps(compute_ceiling(args.model_root), default=float))
        return 0
    if args.cmd == "compute-recent":
        print(json.dumps(compute_recent(args.model_root, args.recent), default=float))
        return 0

    if wrk_path() is None:
        print("wrk is not installed (run benchmarks/install_wrk.sh)", file=sys.stderr)
        return 2
    started = time.perf_counter()
    if args.quick:
        args.sizes, args.concurrency, args.repeats, args.duration, args.warmup = "20000", "1,8,32", 1, 3.0, 1.0
        args.swap_duration = args.swap_duration or 25.0
    sizes = [int(s) for s in args.sizes.split(",") if s]
    args.concurrency = [int(c) for c in args.concurrency.split(",") if c]
    workers_list = [int(w) for w in args.workers.split(",") if w]
    swap_workers = [int(w) for w in (args.swap_workers or args.workers).split(",") if w]
    args.work_dir.mkdir(parents=True, exist_ok=True)
    logs = args.work_dir / "logs"
    logs.mkdir(exist_ok=True)
    machine = machine_description()
    loads = [load_average()]
    results: dict[str, Any] = {
        "engine": "wrk",
        "duration_s": args.duration,
        "repeats": args.repeats,
        "concurrency": args.concurrency,
        "k": K,
        "request": "POST /v1/recommendations {user_id: known user (1,000 cycled), k: 10} (exclude_seen default true)",
        "targets": TARGETS,
        "machine_line": describe_machine_line(machine),
        "server_settings": "recsys serve defaults (log level info, micro-batch 2 ms / 64, max_concurrency 256, timeout 5 s) with RECSYS_POLL_INTERVAL_S=1",
        "sizes": {},
    }
    for size in sizes:
        if args.recent_items:
            recent = measure_recent(size, args.work_dir, args, logs)
            results["sizes"][str(size)] = {
                "catalog": recent["catalogs"]["history_version"],
                "workers": [],
                "swap": [],
                "recent": recent,
            }
            loads.append(load_average())
            continue
        per: dict[str, Any] = {"catalog": ensure_catalog(args.work_dir, size, logs), "workers": [], "swap": []}
        root = Path(per["catalog"]["model_root"])
        if not args.no_compute:
            log(f"compute ceiling for {size:,} items (load {load_average()})")
            done = subprocess.run(
                [sys.executable, "-m", "benchmarks.serving_load", "compute", "--model-root", str(root)],
                cwd=REPO,
                capture_output=True,
                text=True,
                timeout=1800,
                check=True,
                env=server_env(),
            )
            per["compute_ceiling"] = json.loads(done.stdout.strip().splitlines()[-1])
        former_root = None
        if args.former_index and not args.swap_only:
            per["former_index"] = {"catalog": former_index_catalog(args.work_dir, size, root, logs), "workers": []}
            former_root = Path(per["former_index"]["catalog"]["model_root"])
        for w in [] if args.swap_only else workers_list:
            per["workers"].append(measure_workers(size, root, w, args, logs))
            loads.append(load_average())
            if former_root is not None:  # the same catalog, the former rule's index: measured next
                per["former_index"]["workers"].append(measure_workers(size, former_root, w, args, logs))
                loads.append(load_average())
        if former_root is not None:
            per["former_index"]["change"] = former_change(per)
        if not args.no_swap:
            for w in swap_workers:
                args_swap = argparse.Namespace(**vars(args))
                args_swap.swap_duration = args.swap_duration or (40.0 if size <= 200_000 else 120.0)
                per["swap"].append(swap_run(size, args.work_dir, w, args_swap, logs))
                loads.append(load_average())
        results["sizes"][str(size)] = per
    results["load_average_seen"] = {
        "min_1m": min(x[0] for x in loads if x),
        "max_1m": max(x[0] for x in loads if x),
        "samples": loads,
    }
    results["targets_check"] = check_targets(results)
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    plot(results, RESULTS_DIR / f"{args.out}.png")
    json_path, md_path = write_results(args.out, results, summary_md(results), machine=machine, started=started)
    log(f"wrote {json_path}, {md_path} and {args.out}.png")
    print(summary_md(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
