"""Where the service's throughput goes, step by step from the HTTP ceiling.

``python -m benchmarks.serving_gap`` starts, side by side, the HTTP ceiling of
``benchmarks.serving_load`` (the service's stack answering a fixed body), three
variants of it that each add one part of the service's request path, and the
service itself, then drives them in turn with wrk (interleaved rounds, so they
share the machine's state) and reports each one's throughput as a share of the
ceiling's in the same round:

- ``await``: the route awaits a future the event loop resolves on its next
  pass (one suspension per request, no thread);
- ``handoff``: the route hands a do-nothing job to the service's
  :class:`serving.batcher.MicroBatcher` (the inference thread, a batch per free
  thread, one ``call_soon_threadsafe`` per batch) and awaits it;
- ``no-search``: the service's own request path on a loaded version
  (``build_job``, the micro-batcher, ``finish_jobs``, the answer), except that
  the inference thread hands back rankings computed once per user instead of
  searching: what the service would do if the search cost nothing;
- ``service``: ``recsys serve``.

The variants run what the service's lifespan does around its model (the
interpreter switch interval; the heap collected and frozen once loaded), so
they differ from the service only in the parts they leave out.

Per server and round it also reads, from ``/proc``, the event loop thread's
CPU per request, the share of the wall time it spent on a core, waiting for
one (run queue) and blocked (interpreter lock, idle), and the other threads'
CPU per request. Linux only; wrk required.
"""

# no "from __future__ import annotations": FastAPI must see the real request model
import argparse
import asyncio
import contextlib
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks import serving_load as sl

VARIANTS = ("await", "handoff", "no-search")


# --------------------------------------------------------------------------- the variant apps
def _service_lifespan(settings: Any, start: Any = None, stop: Any = None) -> Any:
    """What the service's lifespan does around its model: its interpreter switch
    interval (``serving.runtime.switch_interval``), and the heap settled
    (``settle_heap``: collected, then frozen) once everything is loaded, as the
    service does after each swap. Without the freeze every full collection walks
    the imported libraries' objects: the awaiting variant then stalls a
    twentieth of its requests for 60-100 ms."""
    from serving.runtime import settle_heap, switch_interval

    @contextlib.asynccontextmanager
    async def lifespan(app: Any) -> Any:
        with switch_interval(settings.gil_switch_interval_ms):
            if start is not None:
                await start()
            settle_heap()
            try:
                yield
            finally:
                if stop is not None:
                    await stop()

    return lifespan


class CachedRankings:
    """The inference thread's half of the service with the search replaced by a
    lookup: each (version, user row, k) is computed for real once
    (``engine.compute_jobs``), then handed back as a final ranking."""

    def __init__(self) -> None:
        self._rankings: dict[tuple[int, int | None, int], Any] = {}

    def __call__(self, jobs: list) -> list:
        from serving.engine import Ranked, Searched, compute_jobs, exact_rerun

        def key(job: Any) -> tuple[int, int | None, int]:
            return id(job.model), job.user_row, job.k

        missing = [job for job in jobs if key(job) not in self._rankings]
        failed: dict[tuple[int, int | None, int], BaseException] = {}
        for job, got in zip(missing, compute_jobs(missing), strict=True):
            if isinstance(got, Searched) and got.result.short[got.pos]:  # the service would rerun it exactly
                got = compute_jobs([exact_rerun(job)])[0]
            if isinstance(got, BaseException):
                failed[key(job)] = got  # not kept: the next batch tries again
                continue
            if isinstance(got, Searched):
                r = got.result
                first, last = int(r.offsets[got.pos]), int(r.offsets[got.pos + 1])
                got = Ranked(r.rows[first:last].copy(), r.scores[first:last].copy())
            self._rankings[key(job)] = got
        return [failed[key(job)] if key(job) in failed else self._rankings[key(job)] for job in jobs]


def variant_app(variant: str, model_root: Path | None = None) -> Any:
    """The ceiling's stack (``serving_load.http_stack_app``) with one more part of the service's path."""
    import recsys  # noqa: F401
    from serving.batcher import MicroBatcher
    from serving.errors import JSONBytesResponse
    from serving.settings import ServiceSettings

    settings = ServiceSettings()
    if variant == "await":

        async def answer(body: Any, request: Any) -> Any:
            loop = asyncio.get_running_loop()
            fut = loop.create_future()
            loop.call_soon(fut.set_result, None)
            await fut
            return sl.ceiling_answer(body, request)

        return sl.http_stack_app(answer, _service_lifespan(settings))

    if variant == "handoff":
        batcher: MicroBatcher = MicroBatcher(
            lambda jobs: [None] * len(jobs), max_wait_s=0.0, max_size=settings.microbatch_max_size
        )

        async def answer(body: Any, request: Any) -> Any:
            await batcher.submit(body)
            return sl.ceiling_answer(body, request)

        return sl.http_stack_app(answer, _service_lifespan(settings, batcher.start, batcher.stop))

    if variant == "no-search":
        if model_root is None:
            raise ValueError("the no-search variant needs --model-root")
        from serving.engine import build_job, finish_jobs
        from serving.model import load_version, read_latest

        state: dict[str, Any] = {}
        cached = MicroBatcher(CachedRankings(), finish_batch=finish_jobs, max_wait_s=0.0, max_size=settings.microbatch_max_size)

        async def start() -> None:
            root = Path(model_root)
            state["model"] = await asyncio.to_thread(load_version, root, read_latest(root))
            await cached.start()

        async def answer(body: Any, request: Any) -> Any:
            model = state["model"]
            request.state.model_version = model.version
            job = build_job(model, body)
            items = await cached.submit(job)  # final rankings: finish_jobs never asks for an exact rerun
            return JSONBytesResponse(
                {"model_version": model.version, "user_id": body.user_id, "strategy": job.strategy, "items": items}
            )

        return sl.http_stack_app(answer, _service_lifespan(settings, start, cached.stop))

    raise ValueError(f"unknown variant {variant!r}; one of {VARIANTS}")


def serve_variant(variant: str, port: int, model_root: Path | None) -> None:
    import uvicorn

    from serving.main import uvicorn_options
    from serving.settings import ServiceSettings

    uvicorn.run(variant_app(variant, model_root), **uvicorn_options(ServiceSettings(host="127.0.0.1", port=port)))


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


def measure(server: sl.Server, specs: list, concurrency: int, duration_s: float) -> dict[str, Any]:
    from benchmarks.loadgen import run_wrk

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
        f"# benchmark: serving_gap\n\n{meta['items']:,} items, c = {meta['concurrency']}, k = {sl.K}, "
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
    p.add_argument("--work-dir", type=Path, default=sl.DEFAULT_WORK_DIR)
    p.add_argument("--ready-timeout", type=float, default=900.0)
    p.add_argument("--out", default="serving_gap", help="result name under benchmarks/results/")
    args = p.parse_args(argv)
    if args.cmd == "serve":
        serve_variant(args.variant, args.port, args.model_root)
        return 0

    from benchmarks.common import machine_description, write_results
    from benchmarks.loadgen import wrk_path

    if wrk_path() is None:
        print("wrk is not installed (run benchmarks/install_wrk.sh)", file=sys.stderr)
        return 2
    started = time.perf_counter()
    machine = machine_description()
    args.work_dir.mkdir(parents=True, exist_ok=True)
    logs = args.work_dir / "logs"
    logs.mkdir(exist_ok=True)
    root = Path(sl.ensure_catalog(args.work_dir, args.size, logs)["model_root"])
    servers: dict[str, sl.Server] = {"ceiling": sl.start_ceiling_server(1, logs)}
    for variant in VARIANTS:
        port = sl.free_port()
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
        servers[variant] = sl.Server(f"ceiling + {variant}", cmd, port, sl.server_env(), logs / f"gap-{variant}-{port}.log")
    servers["service"] = sl.start_model_server(root, 1, logs)
    try:
        for name, server in servers.items():
            server.wait_ready("/readyz" if name == "service" else "/healthz", args.ready_timeout)
        specs = sl.request_specs()
        load_before = sl.load_average()
        for server in servers.values():  # warm-up (the no-search variant computes each user's ranking once here)
            measure(server, specs, args.concurrency, 3.0)
        rounds: dict[str, list[dict]] = {name: [] for name in servers}
        for r in range(args.rounds):
            for name, server in servers.items():
                rounds[name].append(measure(server, specs, args.concurrency, args.duration))
                sl.log(f"round {r} {name}: {rounds[name][-1]['rps']:,.0f} req/s")
        load_after = sl.load_average()
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
