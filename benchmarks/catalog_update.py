"""``recsys update-catalog`` benchmarks (issue 20).

    python -m benchmarks.catalog_update scale [--items 1000000] [--base-root ROOT] [--work-dir DIR] [--swap]
    python -m benchmarks.catalog_update cold [--movielens ../shared/data/ml-100k] [--withhold 0.1] [--seed 0]

``scale``: the base is a generated 64-d catalog version (``benchmarks.catalog``:
``--items`` items, ``--users`` users, towers set from the generated vectors, the
tuned index), built here or copied from ``--base-root``. A real ``recsys
update-catalog`` process publishes the daily update of it (1% of the items
retired, 1% changed, 1% new), timed end to end (start, verify, read, embed,
re-map, index, publish) with its peak RSS (``wait4``). With ``--swap`` a
``recsys serve`` process serves the base under wrk load at concurrency 32 from
before the update starts until 5 s after the service answers with the new
version; failures, latency and versions answered are recorded.

``cold``: MovieLens: a seeded ``--withhold`` share of the items is removed from
the data before training (their interactions too), then ``update-catalog``
adds them from the full item table. Per user, the test interactions are the
ones the pipeline's temporal split puts in test, and, for withheld items, the
user's interactions with them from the start of the user's test period on.
Reported: the share of each kind landing in the user's top 100 (exact scores of
the published query vector against the published item vectors, training items
excluded), beside what uniform placement would give (100 / eligible items).

Results go to ``benchmarks/results/catalog_update_<mode>.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

import recsys  # noqa: F401  (TF_USE_LEGACY_KERAS)

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"


def log(msg: str) -> None:
    print(f"[catalog_update {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def run_update(root: Path, items: Path, log_path: Path, *extra: str) -> dict[str, Any]:
    """One real ``recsys update-catalog`` process: wall seconds, peak RSS, its summary and step seconds."""
    exe = Path(sys.executable).parent / "recsys"
    cmd = [str(exe), "update-catalog", "--model-root", str(root), "--items", str(items), *extra]
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
        "command": " ".join(cmd[1:]),
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
    from benchmarks.catalog import publish_catalog
    from training.publish import read_latest, write_latest

    if read_latest(root):
        return read_latest(root)
    if args.base_root:
        name = read_latest(Path(args.base_root))
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
    from benchmarks.loadgen import RequestSpec
    from benchmarks.serving_load import RssSampler, http_get, start_model_server, wrk_until

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
                    status, body = http_get(server.port, "/readyz", timeout=10)
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


# --------------------------------------------------------------------------- cold items


def _neighbour_vectors(version_dir: Path, cold_ids: set[str], k: int = 5) -> np.ndarray:
    """A variant not in the product, for comparison: each cold item's vector replaced by the mean
    vector of the ``k`` known items whose metadata-only vectors (the candidate tower with every
    id out of vocabulary) are closest by cosine."""
    from towers.spec import ModelSpec
    from towers.tower import tower_inputs
    from training.saved_tower import SavedTower

    manifest = json.loads((version_dir / "manifest.json").read_text())
    items = pd.read_parquet(version_dir / "items.parquet")
    emb = np.load(version_dir / "item_embeddings.npy")
    raw = tower_inputs(ModelSpec.model_validate(manifest["feature_spec"]).candidate, items)
    raw["item_id"] = np.full(len(items), "\x00never-seen", dtype=object)
    tower = SavedTower(version_dir / "candidate_model", manifest["candidate_inputs"])
    meta = tower.embed(tower.columns(items, raw))
    meta /= np.linalg.norm(meta, axis=1, keepdims=True)
    cold = items["item_id"].isin(cold_ids).to_numpy()
    known, new = np.flatnonzero(~cold), np.flatnonzero(cold)
    nearest = np.argsort(-(meta[new] @ meta[known].T), axis=1)[:, :k]
    out = emb.copy()
    out[new] = emb[known][nearest].mean(axis=1)
    return out


def _top100_share(version_dir: Path, pairs: pd.DataFrame, emb: np.ndarray | None = None) -> float:
    """Share of (user_id, item_id) pairs whose item is in the user's top 100, training items excluded."""
    from training.saved_tower import SavedTower

    manifest = json.loads((version_dir / "manifest.json").read_text())
    users = pd.read_parquet(version_dir / "users.parquet")
    items = pd.read_parquet(version_dir / "items.parquet")
    emb = np.load(version_dir / "item_embeddings.npy") if emb is None else emb
    seen = pd.read_parquet(version_dir / "seen.parquet")
    tower = SavedTower(version_dir / "query_model", manifest["query_inputs"])
    queries = tower.embed(tower.columns(users))
    scores = queries @ emb.T
    user_row = {u: r for r, u in enumerate(users["user_id"])}
    for u, rows in zip(seen["user_id"], seen["item_rows"], strict=True):
        scores[user_row[u], np.asarray(rows, dtype=np.int64)] = -np.inf
    top = np.argpartition(-scores, 100, axis=1)[:, :100]
    item_row = {i: r for r, i in enumerate(items["item_id"])}
    hits = [item_row[i] in set(top[user_row[u]]) for u, i in zip(pairs["user_id"], pairs["item_id"], strict=True)]
    return float(np.mean(hits)) if hits else float("nan")


def cold(args: argparse.Namespace) -> dict[str, Any]:
    from training.config import TrainConfig
    from training.data.sources import load_source
    from training.pipeline import run_pipeline
    from training.split import temporal_split

    work = Path(args.work_dir)
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    data = load_source(f"movielens:{args.movielens}", items=0, users=0, interactions=0, seed=args.seed, max_bad_rows=0)
    rng = np.random.default_rng(args.seed)
    ids = data.items["item_id"].to_numpy()
    withheld = set(rng.choice(ids, int(round(args.withhold * len(ids))), replace=False).tolist())
    inter = data.interactions
    is_cold = inter["item_id"].isin(withheld).to_numpy()
    from dataclasses import replace

    trained = replace(
        data,
        interactions=inter[~is_cold].reset_index(drop=True),
        items=data.items[~data.items["item_id"].isin(withheld)].reset_index(drop=True),
        lines={},
    )
    root = work / "models"
    config = TrainConfig(epochs=args.epochs, seed=args.seed)
    result = run_pipeline(trained, root, config, verbose=0)
    split = temporal_split(trained.interactions, config.test_fraction)  # the pipeline's test split (temporal)
    test = trained.interactions.iloc[split.test]
    start = test.groupby("user_id")["timestamp"].min()
    cold_pairs = inter[is_cold]
    cold_pairs = cold_pairs[cold_pairs["timestamp"].to_numpy() >= cold_pairs["user_id"].map(start).fillna(np.inf).to_numpy()]
    table = work / "items.parquet"
    data.items.to_parquet(table)
    update = run_update(root, table, work / "update.log")
    version_dir = root / update["summary"]["version"]
    num_items = len(data.items)
    mean_seen = float(pd.read_parquet(version_dir / "seen.parquet")["item_rows"].map(len).mean())
    uniform = 100 / (num_items - mean_seen)
    out = {
        "source": data.source,
        "withheld_items": len(withheld),
        "items": num_items,
        "seed": args.seed,
        "epochs": args.epochs,
        "trained_version": result.version,
        "update": update,
        "cold_test_interactions": len(cold_pairs),
        "trained_test_interactions": len(test),
        "cold_share_in_top100": _top100_share(version_dir, cold_pairs),
        "trained_share_in_top100": _top100_share(version_dir, test),
        "uniform_share_in_top100": uniform,
        "load_average": load_average(),
    }
    variant = _neighbour_vectors(version_dir, withheld)
    out["variant_metadata_neighbours_k5"] = {
        "cold_share_in_top100": _top100_share(version_dir, cold_pairs, variant),
        "trained_share_in_top100": _top100_share(version_dir, test, variant),
    }
    out["cold_vs_uniform"] = out["cold_share_in_top100"] / uniform
    out["trained_vs_uniform"] = out["trained_share_in_top100"] / uniform
    log(
        f"cold {out['cold_share_in_top100']:.3f} ({out['cold_vs_uniform']:.1f}x uniform {uniform:.3f}); "
        f"trained {out['trained_share_in_top100']:.3f} ({out['trained_vs_uniform']:.1f}x)"
    )
    return out


def summary_md(mode: str, r: dict[str, Any]) -> str:
    """The figures of one result for a person."""
    if mode == "cold":
        u = r["update"]
        return (
            f"MovieLens ({r['source']}): {r['withheld_items']} of {r['items']} items withheld from training (seed {r['seed']}), "
            f"added by update-catalog ({u['seconds']} s, load {u['load_average_before']}).\n\n"
            "| test interactions | count | share in the user's top 100 | vs uniform placement |\n| --- | --- | --- | --- |\n"
            f"| with withheld (cold) items | {r['cold_test_interactions']} | {r['cold_share_in_top100']:.4f} | {r['cold_vs_uniform']:.1f}x |\n"
            f"| with trained items | {r['trained_test_interactions']} | {r['trained_share_in_top100']:.4f} | {r['trained_vs_uniform']:.1f}x |\n"
            f"| uniform placement | | {r['uniform_share_in_top100']:.4f} | 1x |\n"
            + (
                f"\nNot in the product, for comparison: cold vectors replaced by the mean of their 5 nearest known items "
                f"by metadata-only vector: cold {r['variant_metadata_neighbours_k5']['cold_share_in_top100']:.4f} "
                f"({r['variant_metadata_neighbours_k5']['cold_share_in_top100'] / r['uniform_share_in_top100']:.1f}x), trained "
                f"{r['variant_metadata_neighbours_k5']['trained_share_in_top100']:.4f}.\n"
                if "variant_metadata_neighbours_k5" in r
                else ""
            )
        )
    rows = []
    for name in ("daily",):
        u = r[name]
        s = u["summary"]
        rows.append(
            f"| {name} | {s['items']:,} | {s['new']:,} | {s['retired']:,} | {s['changed']:,} | {u['seconds']} | {u['peak_rss_gib']} | "
            f"{u['steps_seconds']} | {u['index']['kind']} {u['index']['recall_at_10_vs_exact']} | {u['load_average_before']} |"
        )
    text = (
        "| run | items | new | retired | changed | seconds end to end | peak RSS GiB | steps (s) | index, recall@10 | load before |\n"
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |\n" + "\n".join(rows) + "\n"
    )
    if "swap" in r:
        w = r["swap"]
        text += (
            f"\nSwap under load (c = 32, wrk) while the daily update published: {w['load']['completed']:,} requests, "
            f"{w['load']['failures']} failed, p50 {w['load']['p50_ms']:.1f} ms, p99 {w['load']['p99_ms']:.1f} ms, max {w['load']['max_ms']:.0f} ms; "
            f"versions answered {w['load']['versions']}; new version answered: {w['new_version_answered']}; "
            f"server peak RSS {w['server_rss_peak_gib']} GiB; load before {w['load_average_before']}.\n"
        )
    return text


def main(argv: list[str] | None = None) -> int:
    from benchmarks.common import machine_description, write_results

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default=None, help="results name (default catalog_update_<mode>)")
    sub = p.add_subparsers(dest="mode", required=True)
    s = sub.add_parser("scale")
    s.add_argument("--items", type=int, default=1_000_000)
    s.add_argument("--users", type=int, default=50_000)
    s.add_argument(
        "--base-root", default=None, help="copy LATEST of this model root as the base (else build a benchmarks.catalog version)"
    )
    s.add_argument(
        "--swap", action="store_true", help="serve the first update under load at c = 32 while the daily one publishes"
    )
    s.add_argument("--work-dir", default="/tmp/catalog_update_bench")
    c = sub.add_parser("cold")
    c.add_argument("--movielens", default=str(REPO.parent / "shared" / "data" / "ml-100k"))
    c.add_argument("--withhold", type=float, default=0.1)
    c.add_argument("--seed", type=int, default=0)
    c.add_argument("--epochs", type=int, default=30)
    c.add_argument("--work-dir", default="/tmp/catalog_update_cold")
    args = p.parse_args(argv)
    started = time.perf_counter()
    machine = {**machine_description(), "load_average_at_start": load_average()}
    result = scale(args) if args.mode == "scale" else cold(args)
    name = args.out or f"catalog_update_{args.mode}"
    write_results(name, result, summary_md(args.mode, result), machine=machine, started=started)
    print(json.dumps({k: v for k, v in result.items() if k not in ("grow", "daily", "swap", "update")}, default=float))
    return 0


if __name__ == "__main__":
    sys.exit(main())
