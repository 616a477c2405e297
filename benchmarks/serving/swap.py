"""Hot swap under load: a new version published into the served root while wrk runs, measured
before, during and after the swap."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from benchmarks.common import http_get, load_average
from benchmarks.loadgen import RequestSpec, run_wrk
from benchmarks.serving.catalogs import request_specs
from benchmarks.serving.constants import NUM_USERS, REPO, log
from benchmarks.serving.servers import RssSampler, Server, start_model_server, wait_all_workers


def swap_run(size: int, work_dir: Path, workers: int, args: argparse.Namespace, logs: Path) -> dict[str, Any]:
    """Load at concurrency 32 while a new version is published into the served root."""
    src = work_dir / f"items-{size}"
    root = work_dir / f"swap-{size}"
    if root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True)
    first = (src / "LATEST").read_text().strip()
    shutil.copytree(src / first, root / first)
    (root / "LATEST").write_text(first + "\n")
    log(f"swap {size:,} items, {workers} worker(s): preparing the new version (load {load_average()})")
    pub_log = open(logs / f"swap-publisher-{size}-w{workers}.log", "ab")  # noqa: SIM115  (the publisher writes to it until the finally block closes it)
    # --publish-ahead: the new version is written into a sibling root before the load, and the
    # publish under load is only its rename into the served root and LATEST (the trainer's own
    # CPU, which normally runs elsewhere, is then not part of the figure)
    ahead = root.parent / f"swap-{size}-next" if args.publish_ahead else None
    if ahead is not None and ahead.exists():
        shutil.rmtree(ahead)
    publisher = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "benchmarks.catalog",
            "--model-root",
            str(ahead or root),
            "--items",
            str(size),
            "--users",
            str(NUM_USERS),
            "--seed",
            "1",
            *([] if ahead else ["--wait-for-go"]),
        ],
        cwd=REPO,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=pub_log,
        text=True,
    )
    server = start_model_server(root, workers, logs)
    try:
        assert publisher.stdout is not None and publisher.stdin is not None
        go_line = publisher.stdin  # the publisher publishes when a line arrives here
        pub: dict[str, Any] = {}
        if ahead is not None:
            written = publisher.communicate(timeout=1800)[0].strip().splitlines()
            pub = json.loads(written[-1])
        else:
            line = publisher.stdout.readline().strip()
            if line != "READY":
                raise RuntimeError(f"publisher did not get ready: {line!r}")
        server.wait_ready("/readyz", args.ready_timeout)
        if workers > 1:
            wait_all_workers(server, workers, args.ready_timeout)
        mem_before = server.memory()
        specs = request_specs()
        result: dict[str, Any] = {}
        t0 = time.time()

        def go(now: bool = False) -> None:
            if not now:
                time.sleep(args.swap_delay)
            result["go_at"] = time.time() - t0
            if ahead is not None:
                from artifact.latest import write_latest

                start = time.perf_counter()
                os.rename(ahead / pub["version"], root / pub["version"])
                write_latest(root, pub["version"])
                pub["publish_seconds"] = time.perf_counter() - start
                return
            go_line.write("go\n")
            go_line.flush()

        trigger = threading.Thread(target=go, daemon=True)
        load = load_average()
        windows: dict[str, Any] | None = None
        with RssSampler(server) as sampler:
            if args.swap_windows == "on":
                windows = swap_windows(server, specs, first, go, args, t0)
                res = None
            else:
                trigger.start()
                res = run_wrk(
                    server.url,
                    specs,
                    concurrency=32,
                    duration_s=args.swap_duration,
                    timeout_s=10.0,
                    threads=args.processes,
                    count_versions=True,
                )
                trigger.join(timeout=5)
        if ahead is None:
            out_line = publisher.communicate(timeout=600)[0].strip().splitlines()
            pub = json.loads(out_line[-1]) if out_line else {}
        new = pub.get("version")
        # when did the new version take over? a short probe after the run tells which version is served now
        served_now = None
        with contextlib.suppress(Exception):
            served_now = json.loads(http_get(server.port, "/readyz")[1]).get("model_version")
        mem_after = server.memory()
    finally:
        server.stop()
        if publisher.poll() is None:
            publisher.kill()
        pub_log.close()
    r = res.to_dict() if res is not None else merge_windows(windows or {})
    if windows:
        d, b = windows["during"], windows["before"]
        log(
            f"swap: during ({d['seconds']:.1f} s) p99 {d['p99_ms']:.1f} ms, max {d['max_ms']:.0f} ms, failures {d['failures']}; "
            f"before p99 {b['p99_ms']:.1f} ms; swap seen after {windows['swap_seen_after_s']} s"
        )
    else:
        log(f"swap: {r['rps']:.0f} req/s p99 {r['latency_ms']['p99']:.1f} ms failures {r['failures']} versions {r['versions']}")
    return {
        "publish_ahead": ahead is not None,
        "windows": windows,
        "server_load": server_load_lines(server.log_path),
        "workers": workers,
        "concurrency": 32,
        "duration_s": args.swap_duration,
        "old_version": first,
        "new_version": new,
        "publish_started_after_s": result.get("go_at"),
        "publish_seconds": pub.get("publish_seconds"),
        "served_after_run": served_now,
        "new_version_answered": bool(new and r["versions"].get(new)),
        "load_average_before": load,
        "load": r,
        "rss_before": mem_before["total_rss"],
        "rss_peak_total": sampler.peak_total,
        "rss_peak_process": sampler.peak_process,
        "rss_after": mem_after["total_rss"],
        "rss_after_workers": mem_after["workers_rss"],
    }


def wrk_until(
    url: str, specs: list[RequestSpec], stop: threading.Event, max_s: float, processes: int, timeout_s: float = 10.0
) -> dict[str, Any]:
    """wrk at concurrency 32 until ``stop`` is set or ``max_s``: one window's figures."""
    res = run_wrk(
        url,
        specs,
        concurrency=32,
        duration_s=max(1.0, max_s),
        timeout_s=timeout_s,
        threads=processes,
        count_versions=True,
        stop=stop,
    )
    return {
        "seconds": round(res.wall_s, 2),
        "completed": res.completed,
        "rps": res.rps,
        "failures": res.failures,
        "errors": res.failure_kinds,
        "versions": res.versions,
        "p50_ms": res.latency_ms["p50"],
        "p99_ms": res.latency_ms["p99"],
        "max_ms": res.latency_ms["max"],
    }


def swap_windows(server: Server, specs: list, old: str, go: Any, args: argparse.Namespace, t0: float) -> dict[str, Any]:
    """The swap run as three wrk runs: before the publish, during it (until ``--swap-margin`` s
    after /readyz first names another version than ``old``) and after, each with exact figures."""
    out: dict[str, Any] = {"margin_s": args.swap_margin}
    never = threading.Event()
    out["before"] = wrk_until(server.url, specs, never, args.swap_delay, args.processes)
    swapped = threading.Event()
    done = threading.Event()

    def watch() -> None:  # one /readyz every 0.25 s on its own connection
        while not done.is_set():
            with contextlib.suppress(Exception):
                version = json.loads(http_get(server.port, "/readyz", timeout=10)[1]).get("model_version")
                if version and version != old and "swap_seen_after_s" not in out:
                    out["swap_seen_after_s"] = round(time.time() - t0 - out["go_at"], 2)
                    time.sleep(args.swap_margin)
                    swapped.set()
                    return
            done.wait(0.25)

    out["go_at"] = round(time.time() - t0, 2)
    go(now=True)
    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    budget = max(5.0, args.swap_duration - (time.time() - t0))
    out["during"] = wrk_until(server.url, specs, swapped, budget, args.processes)
    done.set()
    watcher.join(timeout=15)
    out["swap_complete_in_window"] = swapped.is_set()
    rest = args.swap_duration - (time.time() - t0)
    out["after"] = wrk_until(server.url, specs, never, max(5.0, rest), args.processes)
    return out


def merge_windows(windows: dict[str, Any]) -> dict[str, Any]:
    """Totals over the three runs (their percentiles stay per run)."""
    parts = [windows[k] for k in ("before", "during", "after") if windows.get(k)]
    versions: dict[str, int] = {}
    for part in parts:
        for v, n in part["versions"].items():
            versions[v] = versions.get(v, 0) + n
    completed = sum(x["completed"] for x in parts)
    seconds = sum(x["seconds"] for x in parts)
    return {
        "completed": completed,
        "rps": completed / seconds if seconds else 0.0,
        "failures": sum(x["failures"] for x in parts),
        "versions": versions,
        "latency_ms": {"max": max((x["max_ms"] for x in parts), default=float("nan"))},
    }


def server_load_lines(log_path: Path) -> list[str]:
    """The server's own lines about loading and swapping (how long the load took)."""
    with contextlib.suppress(OSError):
        text = log_path.read_text(errors="replace")
        return [ln.strip()[-220:] for ln in text.splitlines() if "model version" in ln or "frozen" in ln][-6:]
    return []
