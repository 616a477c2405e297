"""``scale``: a real ``recsys update-catalog`` process on a generated catalog, timed end to end; with ``--swap`` under load (see the package's docstring)."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import threading
import time
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

import recsys  # noqa: F401  (TF_USE_LEGACY_KERAS)
from benchmarks import common
from benchmarks.common import load_average
from benchmarks.serving.constants import REPO
from benchmarks.serving.servers import recsys_exe

log = partial(common.log, "catalog_update")


def run_update(root: Path, items: Path, log_path: Path, *extra: str) -> dict[str, Any]:
    """One real ``recsys update-catalog`` process: wall seconds, peak RSS, its summary and step seconds."""
    args = ["update-catalog", "--model-root", str(root), "--items", str(items), *extra]
    cmd = [*recsys_exe(), *args]
    load = load_average()
    start = time.perf_counter()
    with open(log_path, "wb") as err:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err, cwd=REPO)
        _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - start
    out = proc.stdout.read().decode() if proc.stdout else ""
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        raise RuntimeError(f"update-catalog exited {code}; see {log_path}")
    summary = json.loads(out[out.index("{") :])
    manifest = json.loads((root / summary["version"] / "manifest.json").read_text())
    return {
        "command": " ".join(args),
        "seconds": round(seconds, 1),
        "peak_rss_gib": round(usage.ru_maxrss / 2**20, 2),
        "load_average_before": load,
        "load_average_after": load_average(),
        "summary": summary,
        "steps_seconds": manifest["metrics"]["catalog_update"]["seconds"],
        "index": {
            k: manifest["index"].get(k) for k in ("kind", "params", "recall_at_10_vs_exact", "us_per_query", "build_seconds")
        },
    }


# --------------------------------------------------------------------------- scale


def _base_version(root: Path, args: argparse.Namespace) -> str:
    """The version to update: LATEST of ``--base-root`` copied in, else a ``benchmarks.catalog``
    version (generated 64-d catalog, towers set from it, tuned index) built here."""
    from artifact.latest import read_latest, write_latest
    from benchmarks.catalog import publish_catalog

    current = read_latest(root)
    if current:
        return current
    if args.base_root:
        name = read_latest(Path(args.base_root))
        if name is None:
            raise SystemExit(f"--base-root {args.base_root} has no LATEST version")
        shutil.copytree(Path(args.base_root) / name, root / name)
        write_latest(root, name)
        return name
    return publish_catalog(root, args.items, args.users, seed=0)["version"]


def _daily_table(base_dir: Path, path: Path) -> None:
    """1% of the items retired, 1% with a changed title (else price), 1% new (copies of others' metadata)."""
    items = pd.read_parquet(base_dir / "items.parquet").drop(columns=["popularity"])
    rng = np.random.default_rng(1)
    n = len(items)
    picked = rng.permutation(n)
    retired, changed = picked[: n // 100], picked[n // 100 : n // 50]
    if "title" in items:
        items.loc[items.index[changed], "title"] = items["title"].iloc[changed] + " (new edition)"
    elif "price" in items:
        items.loc[items.index[changed], "price"] = items["price"].iloc[changed] * 1.1
    new = items.iloc[rng.choice(n, n // 100, replace=False)].copy()
    new["item_id"] = [f"d{i:07d}" for i in range(len(new))]
    pd.concat([items.drop(index=items.index[retired]), new], ignore_index=True).to_parquet(path)


def _swap_load(root: Path, daily: Path, work: Path) -> dict[str, Any]:
    """Serve LATEST under wrk load at c = 32 while ``daily`` is published by a real update;
    the load stops 5 s after /readyz first names the new version."""
    from benchmarks.common import http_get
    from benchmarks.loadgen import RequestSpec
    from benchmarks.serving.servers import RssSampler, start_model_server
    from benchmarks.serving.swap import wrk_until

    first = (root / "LATEST").read_text().strip()
    users = pd.read_parquet(root / first / "users.parquet", columns=["user_id"])["user_id"].tolist()
    specs = [RequestSpec.post_json("/v1/recommendations", {"user_id": users[i * 37 % len(users)], "k": 10}) for i in range(1000)]
    server = start_model_server(root, 1, work)
    try:
        server.wait_ready("/readyz", 600)
        result: dict[str, Any] = {}
        stop = threading.Event()

        def update() -> None:
            time.sleep(5)
            try:
                result["update"] = run_update(root, daily, work / "daily.log")
                t0 = time.perf_counter()
                while time.perf_counter() - t0 < 300:
                    _status, body = http_get(server.port, "/readyz", timeout=10)
                    if json.loads(body).get("model_version") == result["update"]["summary"]["version"]:
                        result["swap_seen_after_publish_s"] = round(time.perf_counter() - t0, 1)
                        break
                    time.sleep(0.25)
                time.sleep(5)
            finally:
                stop.set()

        thread = threading.Thread(target=update)
        load = load_average()
        with RssSampler(server) as sampler:
            thread.start()
            res = wrk_until(server.url, specs, stop, 900, 1)
            thread.join()
    finally:
        server.stop()
    new = result["update"]["summary"]["version"]
    return {
        "engine": "wrk",
        "concurrency": 32,
        "load_average_before": load,
        "old_version": first,
        "new_version": new,
        "new_version_answered": bool(res["versions"].get(new)),
        "swap_seen_after_publish_s": result.get("swap_seen_after_publish_s"),
        "load": res,
        "server_rss_peak_gib": round(sampler.peak_total / 2**30, 2),
        "update": result["update"],
    }


def scale(args: argparse.Namespace) -> dict[str, Any]:
    work = Path(args.work_dir)
    root = work / "models"
    root.mkdir(parents=True, exist_ok=True)
    base = _base_version(root, args)
    daily = work / "daily.parquet"
    _daily_table(root / base, daily)
    log(f"base version {base}; daily table written (load {load_average()})")
    out: dict[str, Any] = {
        "items": len(pd.read_parquet(root / base / "items.parquet", columns=["item_id"])),
        "base_version": base,
    }
    if args.swap:
        out["swap"] = _swap_load(root, daily, work)
        out["daily"] = out["swap"].pop("update")
        s = out["swap"]["load"]
        log(
            f"swap under load: failures {s['failures']}, p99 {s['p99_ms']:.1f} ms, max {s['max_ms']:.0f} ms, versions {s['versions']}"
        )
    else:
        out["daily"] = run_update(root, daily, work / "daily.log")
    log(f"daily: {out['daily']['seconds']} s, peak RSS {out['daily']['peak_rss_gib']} GiB, steps {out['daily']['steps_seconds']}")
    return out
