"""Bounded wrk loads on a server, medians over repeats, and the model against its HTTP ceiling."""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path
from typing import Any

from benchmarks.common import load_average
from benchmarks.loadgen import RequestSpec, run_wrk
from benchmarks.serving.catalogs import request_specs
from benchmarks.serving.constants import log
from benchmarks.serving.servers import Server, scrape_batches, start_ceiling_server, start_model_server, wait_all_workers


def one_load(
    server: Server, specs: list[RequestSpec], conc: int, duration: float, threads: int, workers: int = 1
) -> dict[str, Any]:
    """One bounded wrk load; with one worker also the mean micro-batch size (a scrape reaches one worker only)."""
    before = scrape_batches(server.port) if workers == 1 else None
    load = load_average()
    res = run_wrk(server.url, specs, concurrency=conc, duration_s=duration, timeout_s=10.0, threads=threads)
    after = scrape_batches(server.port) if workers == 1 else None
    out = res.to_dict()
    out["load_average_before"] = load
    if before and after and after[1] > before[1]:
        out["mean_microbatch"] = (after[0] - before[0]) / (after[1] - before[1])
    return out


def med(runs: list[dict], *path: str) -> float:
    vals = []
    for r in runs:
        v: Any = r
        for p in path:
            v = v[p]
        vals.append(float(v))
    return statistics.median(vals) if vals else float("nan")


def summarize(runs: list[dict]) -> dict[str, Any]:
    return {
        "rps": med(runs, "rps"),
        "p50_ms": med(runs, "latency_ms", "p50"),
        "p95_ms": med(runs, "latency_ms", "p95"),
        "p99_ms": med(runs, "latency_ms", "p99"),
        "failures": int(sum(r["failures"] for r in runs)),
        "requests": int(sum(r["completed"] for r in runs)),
        "mean_microbatch": med([r for r in runs if "mean_microbatch" in r], "mean_microbatch")
        if any("mean_microbatch" in r for r in runs)
        else None,
        "client_cpu_s_per_1k": med([{"v": 1000 * (r["client_cpu_s"] or 0) / max(r["completed"], 1)} for r in runs], "v"),
    }


def measure_workers(size: int, root: Path, workers: int, args: argparse.Namespace, logs: Path) -> dict[str, Any]:
    specs = request_specs()
    log(f"{size:,} items, {workers} worker(s): starting the server and the HTTP ceiling (load {load_average()})")
    model = start_model_server(root, workers, logs)
    ceiling = start_ceiling_server(workers, logs)
    try:
        model_ready = model.wait_ready("/readyz", args.ready_timeout)
        if workers > 1:  # every worker loads on its own: wait until each has answered /readyz
            wait_all_workers(model, workers, args.ready_timeout)
        ceiling.wait_ready("/healthz", 120)
        mem_loaded = model.memory()
        log(
            f"ready in {model_ready:.1f}s; RSS {mem_loaded['total_rss'] / 2**30:.2f} GiB in {len(mem_loaded['processes'])} process(es)"
        )
        for s in (ceiling, model):  # warm-up: connections, caches, first batches
            one_load(s, specs, 8, args.warmup, args.processes)
        runs: dict[str, dict[int, list]] = {
            "ceiling": {c: [] for c in args.concurrency},
            "model": {c: [] for c in args.concurrency},
        }
        for rep in range(args.repeats):
            for conc in args.concurrency:
                for kind, s in (("ceiling", ceiling), ("model", model)):
                    r = one_load(s, specs, conc, args.duration, args.processes, workers)
                    runs[kind][conc].append(r)
                    log(
                        f"  rep {rep + 1} c={conc:>2} {kind:>7}: {r['rps']:7.0f} req/s p50 {r['latency_ms']['p50']:6.1f} "
                        f"p99 {r['latency_ms']['p99']:6.1f} ms fail {r['failures']} (load {r['load_average_before']})"
                    )
        mem_end = model.memory()
    finally:
        model.stop()
        ceiling.stop()
    table = {}
    for conc in args.concurrency:
        m, c = summarize(runs["model"][conc]), summarize(runs["ceiling"][conc])
        ratios = [a["rps"] / b["rps"] for a, b in zip(runs["model"][conc], runs["ceiling"][conc], strict=True) if b["rps"]]
        table[str(conc)] = {
            "model": m,
            "http_ceiling": c,
            "ratio_to_http_ceiling": m["rps"] / c["rps"] if c["rps"] else None,
            "ratio_to_http_ceiling_per_repeat": ratios,
        }
    return {
        "workers": workers,
        "ready_seconds": model_ready,
        "memory_after_load": mem_loaded,
        "memory_at_end": mem_end,
        "per_concurrency": table,
        "raw_runs": runs,
    }


def former_change(per: dict[str, Any]) -> dict[str, Any]:
    """Per workers and concurrency: the tuned index's req/s and p99 against the former index's."""
    out: dict[str, Any] = {}
    for tuned, former in zip(per["workers"], per["former_index"]["workers"], strict=False):
        for c, t in tuned["per_concurrency"].items():
            f = former["per_concurrency"].get(c)
            if f:
                out[f"workers={tuned['workers']} c={c}"] = {
                    "tuned_rps": t["model"]["rps"],
                    "former_rps": f["model"]["rps"],
                    "rps_change": t["model"]["rps"] / f["model"]["rps"] - 1 if f["model"]["rps"] else None,
                    "tuned_p99_ms": t["model"]["p99_ms"],
                    "former_p99_ms": f["model"]["p99_ms"],
                    "tuned_ratio": t["ratio_to_http_ceiling"],
                    "former_ratio": f["ratio_to_http_ceiling"],
                }
    return out
