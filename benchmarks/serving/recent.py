"""``--recent-items N``: requests carrying recent items against the same without, and today's version."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from benchmarks.common import fmt_table, load_average
from benchmarks.serving.catalogs import ensure_catalog, recent_request_specs, request_specs
from benchmarks.serving.constants import log
from benchmarks.serving.measure import one_load, summarize
from benchmarks.serving.servers import start_model_server


def measure_recent(size: int, work_dir: Path, args: argparse.Namespace, logs: Path) -> dict[str, Any]:
    """``--recent-items N``: one worker on a version whose query tower reads the history
    (``benchmarks.catalog --history-length 50``) loaded with requests carrying N recent
    items, and with the same requests without them; beside it, in the same run and
    interleaved, today's version (no history feature) with the requests without them."""
    hist_cat = ensure_catalog(work_dir, size, logs, history_length=50)
    today_cat = ensure_catalog(work_dir, size, logs)
    plain, recent = request_specs(), recent_request_specs(size, args.recent_items)
    log(f"{size:,} items, recent items {args.recent_items}: starting two servers (load {load_average()})")
    hist = start_model_server(Path(hist_cat["model_root"]), 1, logs)
    today = start_model_server(Path(today_cat["model_root"]), 1, logs)
    loads = [
        ("recent_items", hist, recent),  # every request runs the query tower
        ("no_recent_items", hist, plain),  # the same version, requests without recent items: the fast path
        ("today_no_recent_items", today, plain),  # today's version (no history feature), the same requests
    ]
    try:
        ready = {
            "history_version": hist.wait_ready("/readyz", args.ready_timeout),
            "today_version": today.wait_ready("/readyz", args.ready_timeout),
        }
        memory = {"history_version": hist.memory(), "today_version": today.memory()}
        for _, server, specs in loads:  # warm-up
            one_load(server, specs, 8, args.warmup, args.processes)
        runs: dict[str, list] = {name: [] for name, _, _ in loads}
        for rep in range(args.repeats):
            for name, server, specs in loads:
                r = one_load(server, specs, 32, args.duration, args.processes)
                runs[name].append(r)
                log(
                    f"  rep {rep + 1} c=32 {name:>22}: {r['rps']:7.0f} req/s p50 {r['latency_ms']['p50']:6.1f} "
                    f"p99 {r['latency_ms']['p99']:6.1f} ms fail {r['failures']} (load {r['load_average_before']})"
                )
    finally:
        hist.stop()
        today.stop()
    return {
        "recent_items": args.recent_items,
        "concurrency": 32,
        "catalogs": {"history_version": hist_cat, "today_version": today_cat},
        "ready_seconds": ready,
        "memory_after_load": memory,
        "summary": {name: summarize(r) for name, r in runs.items()},
        "raw_runs": runs,
    }


def recent_md(r: dict[str, Any]) -> str:

    rows = [
        [name, s["rps"], s["p50_ms"], s["p95_ms"], s["p99_ms"], s["failures"], s["mean_microbatch"]]
        for name, s in r["summary"].items()
    ]
    return "\n".join(
        [
            f"### recent items: {r['recent_items']} per request, c = 32, 1 worker (interleaved, medians)",
            "",
            fmt_table(["load", "req/s", "p50 ms", "p95 ms", "p99 ms", "fail", "batch"], rows),
            "",
        ]
    )
