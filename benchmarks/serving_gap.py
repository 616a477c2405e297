"""Where the service's throughput goes, step by step from the HTTP ceiling.

``python -m benchmarks.serving_gap`` starts, side by side, the HTTP ceiling of
``benchmarks.serving_load`` (the service's own app, ``create_app``, with the
served model and the retriever replaced to answer a fixed body), three
variants of it (:mod:`benchmarks.serving.variants`) that each add one part of
the service's request path back, and the service itself, then drives them in
turn with wrk (interleaved rounds, so they share the machine's state) and
reports each one's throughput as a share of the ceiling's in the same round:

- ``await``: the retriever awaits a future the event loop resolves on its next
  pass (one suspension per request, no thread);
- ``handoff``: the retriever hands a do-nothing job to a
  :class:`serving.retrieval.batcher.MicroBatcher` (the inference thread, a batch
  per free thread, one ``call_soon_threadsafe`` per batch) and awaits it;
- ``no-search``: the service's app and retriever on a loaded version (planning,
  the micro-batcher, the answer items), except that the inference thread hands
  back rankings computed once per user instead of searching: what the service
  would do if the search cost nothing;
- ``service``: ``recsys serve``.

Every server runs the service's lifespan (the interpreter switch interval; the
version watcher) and has its heap collected and frozen once started, as the
service does once a version is loaded, so they differ from the service only in
the parts they leave out.

Per server and round it also reads, from ``/proc``, the event loop thread's
CPU per request, the share of the wall time it spent on a core, waiting for
one (run queue) and blocked (interpreter lock, idle), and the other threads'
CPU per request. Linux only; wrk required.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks.common import free_port, load_average, machine_description, write_results
from benchmarks.loadgen import RequestSpec, run_wrk, wrk_path
from benchmarks.serving.catalogs import ensure_catalog, request_specs
from benchmarks.serving.constants import DEFAULT_WORK_DIR, K, log
from benchmarks.serving.servers import Server, server_env, start_ceiling_server, start_model_server
from benchmarks.serving.variants import VARIANTS, serve_variant


# --------------------------------------------------------------------------- measuring
def thread_times(pid: int) -> dict[str, Any]:
    """CPU seconds of the process's main thread (the event loop) and of the others
    (psutil), and the main thread's on-core and run-queue nanoseconds
    (``/proc/<pid>/task/<pid>/schedstat``, which psutil does not read)."""
    import psutil

    main = other = 0.0
    for t in psutil.Process(pid).threads():
        if t.id == pid:
            main = t.user_time + t.system_time
        else:
            other += t.user_time + t.system_time
    on_core_ns, waiting_ns, _ = (int(v) for v in Path(f"/proc/{pid}/task/{pid}/schedstat").read_text().split())
    return {"main_s": main, "other_s": other, "on_core_ns": on_core_ns, "run_queue_ns": waiting_ns}


def measure(server: Server, specs: list[RequestSpec], concurrency: int, duration_s: float) -> dict[str, Any]:
    before = thread_times(server.proc.pid)
    start = time.perf_counter()
    res = run_wrk(server.url, specs, concurrency=concurrency, duration_s=duration_s).to_dict()
    wall = time.perf_counter() - start
    after = thread_times(server.proc.pid)
    n = max(1, res["completed"])
    on_core = (after["on_core_ns"] - before["on_core_ns"]) / 1e9 / wall
    run_queue = (after["run_queue_ns"] - before["run_queue_ns"]) / 1e9 / wall
    return {
        "rps": res["rps"],
        "p99_ms": res["latency_ms"]["p99"],
        "failures": res["failures"],
        "loop_cpu_us_per_request": 1e6 * (after["main_s"] - before["main_s"]) / n,
        "other_threads_cpu_us_per_request": 1e6 * (after["other_s"] - before["other_s"]) / n,
        "loop_on_core": on_core,
        "loop_run_queue": run_queue,
        "loop_blocked": max(0.0, 1.0 - on_core - run_queue),
    }


def summarize(rounds: dict[str, list[dict]]) -> dict[str, dict[str, float]]:
    """Medians per server; ``ratio`` is the median over rounds of rps / the ceiling's rps in that round."""
    ceiling = rounds["ceiling"]
    out = {}
    for name, runs in rounds.items():
        row = {key: statistics.median(r[key] for r in runs) for key in runs[0] if key != "failures"}
        row["failures"] = sum(r["failures"] for r in runs)
        row["ratio"] = statistics.median(r["rps"] / c["rps"] for r, c in zip(runs, ceiling, strict=True) if c["rps"] > 0)
        row["ratio_per_round"] = [round(r["rps"] / c["rps"], 3) for r, c in zip(runs, ceiling, strict=True) if c["rps"] > 0]
        out[name] = row
    return out


def summary_md(summary: dict[str, dict[str, Any]], meta: dict[str, Any]) -> str:
    from benchmarks.common import fmt_table

    rows = [
        [
            name,
            f"{s['rps']:,.0f}",
            f"{s['ratio']:.2f} ({', '.join(f'{v:.2f}' for v in s['ratio_per_round'])})",
            f"{s['p99_ms']:.1f}",
            f"{s['loop_cpu_us_per_request']:.0f}",
            f"{100 * s['loop_on_core']:.0f} / {100 * s['loop_run_queue']:.0f} / {100 * s['loop_blocked']:.0f}",
            f"{s['other_threads_cpu_us_per_request']:.0f}",
            s["failures"],
        ]
        for name, s in summary.items()
    ]
    head = (
        f"# benchmark: serving_gap\n\n{meta['items']:,} items, c = {meta['concurrency']}, k = {K}, "
        f"{meta['rounds']} interleaved rounds of {meta['duration_s']:g} s per server (medians); "
        f"load average {meta['load_before']} before, {meta['load_after']} after.\n\n"
    )
    table = fmt_table(
        [
            "server",
            "req/s",
            "ratio to ceiling (per round)",
            "p99 ms",
            "loop CPU µs/req",
            "loop on core / run queue / blocked %",
            "other threads CPU µs/req",
            "failures",
        ],
        rows,
    )
    return head + table + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.serving_gap", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="cmd")
    sv = sub.add_parser("serve", help="run one variant server (used by the benchmark)")
    sv.add_argument("--variant", choices=VARIANTS, required=True)
    sv.add_argument("--port", type=int, required=True)
    sv.add_argument("--model-root", type=Path, default=None)
    p.add_argument("--size", type=int, default=1_000_000, help="catalog size (generated and published as serving_load does)")
    p.add_argument("--concurrency", type=int, default=32)
    p.add_argument("--rounds", type=int, default=4)
    p.add_argument("--duration", type=float, default=6.0, help="seconds of wrk per server and round")
    p.add_argument("--work-dir", type=Path, default=DEFAULT_WORK_DIR)
    p.add_argument("--ready-timeout", type=float, default=900.0)
    p.add_argument("--out", default="serving_gap", help="result name under benchmarks/results/")
    args = p.parse_args(argv)
    if args.cmd == "serve":
        serve_variant(args.variant, args.port, args.model_root)
        return 0

    if wrk_path() is None:
        print("wrk is not installed (run benchmarks/install_wrk.sh)", file=sys.stderr)
        return 2
    started = time.perf_counter()
    machine = machine_description()
    args.work_dir.mkdir(parents=True, exist_ok=True)
    logs = args.work_dir / "logs"
    logs.mkdir(exist_ok=True)
    root = Path(ensure_catalog(args.work_dir, args.size, logs)["model_root"])
    servers: dict[str, Server] = {"ceiling": start_ceiling_server(1, logs)}
    for variant in VARIANTS:
        port = free_port()
        cmd = [
            sys.executable,
            "-m",
            "benchmarks.serving_gap",
            "serve",
            "--variant",
            variant,
            "--port",
            str(port),
            "--model-root",
            str(root),
        ]
        servers[variant] = Server(f"ceiling + {variant}", cmd, port, server_env(), logs / f"gap-{variant}-{port}.log")
    servers["service"] = start_model_server(root, 1, logs)
    try:
        for name, server in servers.items():
            loads_a_version = name in ("service", "no-search")  # the others answer without a model: never ready
            server.wait_ready("/readyz" if loads_a_version else "/healthz", args.ready_timeout)
        specs = request_specs()
        load_before = load_average()
        for server in servers.values():  # warm-up (the no-search variant computes each user's ranking once here)
            measure(server, specs, args.concurrency, 3.0)
        rounds: dict[str, list[dict]] = {name: [] for name in servers}
        for r in range(args.rounds):
            for name, server in servers.items():
                rounds[name].append(measure(server, specs, args.concurrency, args.duration))
                log(f"round {r} {name}: {rounds[name][-1]['rps']:,.0f} req/s")
        load_after = load_average()
    finally:
        for server in servers.values():
            server.stop()
    summary = summarize(rounds)
    meta = {
        "items": args.size,
        "concurrency": args.concurrency,
        "rounds": args.rounds,
        "duration_s": args.duration,
        "load_before": load_before,
        "load_after": load_after,
    }
    md = summary_md(summary, meta)
    write_results(args.out, {**meta, "summary": summary, "rounds": rounds}, md, machine=machine, started=started)
    print(md)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
