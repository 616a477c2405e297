"""One worker against two workers on loopback, on the same data: quality, the shards
each worker read, and wall time.

    python -m benchmarks.train_workers [--data synthetic] [--items 2000 --users 5000
        --interactions 200000] [--epochs 5] [--seeds 42,43] [--out NAME]

Each (workers, seed) is ``recsys train`` as the product runs it: one process, or two
processes with ``TF_CONFIG`` naming two loopback workers (MultiWorkerMirroredStrategy;
the chief prepares the shards, each worker reads its own, only the chief publishes).
Quality: the chief's evaluation summary (the test split of the run's own preparation:
the same split for one and two workers). The two workers share this machine's cores,
so their wall time says nothing about a cluster; it is reported, not compared.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.common import fmt_table, free_port, load_average, machine_description, write_results
from benchmarks.common import log as _log

METRICS = ("recall_at_10", "ndcg_at_10", "recall_at_100", "top_100_accuracy")


def log(msg: str) -> None:
    _log("train_workers", msg)


def _summary(output: str) -> dict[str, Any]:
    """The JSON summary ``recsys train`` prints last (TensorFlow may log after it)."""
    return json.JSONDecoder().raw_decode(output[output.rindex('{\n  "version"') :])[0]


def run(workers: int, seed: int, args: argparse.Namespace, root: Path) -> dict[str, Any]:
    command = [
        sys.executable, "-m", "recsys.cli", "train", "--data", args.data, "--items", str(args.items), "--users", str(args.users),
        "--interactions", str(args.interactions), "--epochs", str(args.epochs), "--seed", str(seed),
        "--model-root", str(root / f"w{workers}-s{seed}"),
    ]  # fmt: skip
    addresses = [f"127.0.0.1:{free_port()}" for _ in range(workers)]
    start = time.perf_counter()
    procs = []
    for index in range(workers):
        env = dict(os.environ)
        if workers > 1:
            env["TF_CONFIG"] = json.dumps({"cluster": {"worker": addresses}, "task": {"type": "worker", "index": index}})
        procs.append(subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env))
    outputs = [p.communicate(timeout=args.timeout)[0] for p in procs]
    seconds = time.perf_counter() - start
    for p, out in zip(procs, outputs, strict=True):
        if p.returncode != 0:
            raise RuntimeError(f"recsys train exited {p.returncode}:\n{out[-3000:]}")
    shares = [
        re.search(r"worker (\d+) of (\d+) reads (\d+) of (\d+) shards \(([\d,]+) examples\)", " ".join(o.split()))
        for o in outputs
    ]
    chief = _summary(outputs[0])
    return {
        "workers": workers,
        "seed": seed,
        "wall_seconds": round(seconds, 1),
        "published": [_summary(o)["version"] for o in outputs],
        "shares": [
            {
                "worker": int(m.group(1)),
                "shards": int(m.group(3)),
                "of": int(m.group(4)),
                "fit_rows": int(m.group(5).replace(",", "")),
            }
            for m in shares
            if m
        ],
        **{k: chief["evaluation"][k] for k in METRICS},
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default="synthetic")
    ap.add_argument("--items", type=int, default=2_000)
    ap.add_argument("--users", type=int, default=5_000)
    ap.add_argument("--interactions", type=int, default=200_000)
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--seeds", default="42,43")
    ap.add_argument("--timeout", type=float, default=3_600)
    ap.add_argument("--out", default="train_workers")
    args = ap.parse_args(argv)
    started = time.perf_counter()
    machine = machine_description()  # with the load average at the start
    load_start = load_average()
    rows = []
    with tempfile.TemporaryDirectory(prefix="train-workers-") as tmp:
        for seed in [int(s) for s in args.seeds.split(",")]:
            for workers in (1, 2):
                log(f"seed {seed}, {workers} worker(s)")
                rows.append(run(workers, seed, args, Path(tmp)))
                log(json.dumps(rows[-1]))
    table = fmt_table(
        ["workers", "seed", *METRICS, "shards read (fit rows)", "published", "wall s"],
        [
            [
                r["workers"],
                r["seed"],
                *[f"{r[k]:.4f}" for k in METRICS],
                "; ".join(f"w{s['worker']}: {s['shards']}/{s['of']} ({s['fit_rows']:,})" for s in r["shares"]),
                sum(v is not None for v in r["published"]),
                r["wall_seconds"],
            ]
            for r in rows
        ],
    )
    write_results(
        args.out,
        {"runs": rows, "load_average_at_start": load_start, "settings": vars(args)},
        f"One against two workers on loopback, same data (`{args.data}`, {args.items:,} items, {args.users:,} users, "
        f"{args.interactions:,} interactions, {args.epochs} epochs max):\n\n{table}\n",
        started=started,
        machine=machine,
    )
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
