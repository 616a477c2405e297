"""Peak memory of ``recsys train`` against the size of the log (issue 21's memory target).

    python -m benchmarks.train_memory [--sizes 1000000x200000x2000000,1000000x200000x20000000]
        [--epochs 1] [--out DIR]

Each size (USERSxITEMSxINTERACTIONS of the generated storefront) runs the product's own
command, ``recsys train --data synthetic --users U --items I --interactions N --epochs E
--allow-low-recall`` (published into a temporary model root, removed after), in a
process of its own; its peak RSS is the kernel's maximum resident set of that process
(``getrusage(RUSAGE_CHILDREN)`` in a wrapper process per size, so sizes do not mix).
Reported per size: peak RSS, wall seconds, the log's examples/s and the model's tables
(the id embedding tables' variables and their two Adam slots, rows x dim x 4 bytes x 3, rows:
the known users and items of the published version), and the growth of the peak without the
tables from the first size to the last (target: under 25%, and under 4 GiB at 20M interactions).
Where the peak falls: the wrapper samples the child's RSS every quarter second and reports the
time of the sampled maximum and the run's log up to then (its log is kept beside the results,
``train_memory_<size>.log``).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil

from artifact.latest import read_latest
from benchmarks.common import RESULTS_DIR, child_json, fmt_table, load_average, machine_description, write_results
from benchmarks.common import log as _log

DEFAULT_SIZES = "1000000x200000x2000000,1000000x200000x20000000"
TARGET_GROWTH = 0.25
TARGET_PEAK_GIB = 4.0


def log(msg: str) -> None:
    _log("train_memory", msg)


def train_command(users: int, items: int, interactions: int, epochs: int, model_root: Path) -> list[str]:
    return [
        str(Path(sys.executable).with_name("recsys")),  # the console script installed beside this interpreter
        "train",
        "--data",
        "synthetic",
        "--users",
        str(users),
        "--items",
        str(items),
        "--interactions",
        str(interactions),
        "--epochs",
        str(epochs),
        "--allow-low-recall",
        "--model-root",
        str(model_root),
    ]


def _table_bytes(version: Path) -> int:
    """The id tables' memory: (known users + known items + their two out-of-vocabulary rows) x dim
    x 4 bytes x 3 (the variable and Adam's two slots). Known: the users with training items
    (``seen.parquet``'s rows) and the items with a training popularity (``items.parquet``), what
    the published towers' id vocabularies hold (the refit trains on the whole training split)."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    manifest = json.loads((version / "manifest.json").read_text())
    users = pq.read_metadata(version / "seen.parquet").num_rows
    items = int(pc.sum(pc.greater(pq.read_table(version / "items.parquet", columns=["popularity"])["popularity"], 0)).as_py())
    return (users + items + 2) * int(manifest["embedding_dim"]) * 4 * 3


SAMPLE_EVERY_S = 0.25


def _run_sampled(cmd: list[str], log_file: Path, env: dict[str, str]) -> tuple[int, int, str]:
    """Run ``cmd`` with its output in ``log_file``; its exit code, the size the log had when the
    child's sampled RSS was highest, and the wall-clock time (UTC, HH:MM:SS) of that sample."""
    peak, at, when = 0, 0, ""
    with log_file.open("w") as out:
        child = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env)
        watched = psutil.Process(child.pid)
        while child.poll() is None:
            try:
                rss = watched.memory_info().rss
            except psutil.Error:  # it has just exited
                break
            if rss > peak:
                peak, at, when = rss, log_file.stat().st_size, time.strftime("%H:%M:%S", time.gmtime())
            time.sleep(SAMPLE_EVERY_S)
        return child.wait(), at, when


def _line_before(text: str, offset: int) -> str:
    """The last non-empty line written whole in ``text[:offset]`` (a log line: its timestamp and
    message; the line being written at ``offset`` is left out)."""
    lines = [line.strip() for line in text[:offset].split("\n")[:-1] if line.strip()]
    return lines[-1] if lines else ""


def measure_one(users: int, items: int, interactions: int, epochs: int, keep_log: Path | None = None) -> dict[str, Any]:
    """One size, in this (wrapper) process: ``recsys train`` as its only child (its log copied
    to ``keep_log`` when given)."""
    with tempfile.TemporaryDirectory(prefix="recsys-train-memory-") as tmp:
        root = Path(tmp) / "models"
        log_file = Path(tmp) / "train.log"
        start = time.perf_counter()
        env = {**os.environ, "COLUMNS": "200"}
        code, peak_offset, peak_time = _run_sampled(train_command(users, items, interactions, epochs, root), log_file, env)
        seconds = time.perf_counter() - start
        text = log_file.read_text()
        if keep_log is not None:
            keep_log.parent.mkdir(parents=True, exist_ok=True)
            keep_log.write_text(text)
        if code != 0:
            sys.stderr.write(text[-4000:])
            raise SystemExit(f"recsys train failed with exit code {code}")
        rates = [float(x.replace(",", "")) for x in re.findall(r"([\d,]+) examples/s", text)]
        latest = read_latest(root)
        if latest is None:
            raise SystemExit("recsys train published no version")
        tables = _table_bytes(root / latest)
    return {
        "users": users,
        "items": items,
        "interactions": interactions,
        "epochs": epochs,
        "peak_rss_bytes": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024,
        "wall_seconds": seconds,
        "examples_per_second": rates[0] if rates else None,
        "table_bytes": tables,
        "peak_time_utc": peak_time,
        "peak_during": _line_before(text, peak_offset),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m benchmarks.train_memory", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--sizes", default=DEFAULT_SIZES, help="comma-separated USERSxITEMSxINTERACTIONS")
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--out", type=Path, default=RESULTS_DIR)
    ap.add_argument("--one", help=argparse.SUPPRESS)  # USERSxITEMSxINTERACTIONS, in a wrapper process
    args = ap.parse_args(argv)
    if args.one:
        users, items, n = (int(x) for x in args.one.split("x"))
        print(json.dumps(measure_one(users, items, n, args.epochs, args.out / f"train_memory_{args.one}.log")))
        return 0
    started = time.perf_counter()
    machine = machine_description()
    sizes = [s for s in args.sizes.split(",") if s]
    runs: list[dict[str, Any]] = []
    for size in sizes:
        run = child_json("benchmarks.train_memory", ["--one", size, "--epochs", str(args.epochs), "--out", str(args.out)], size)
        run["load_average_after"] = load_average()
        runs.append(run)
        gib = run["peak_rss_bytes"] / 2**30
        log(f"{size}: peak RSS {gib:.2f} GiB in {run['wall_seconds']:.0f} s, load {run['load_average_after']}")
        log(f"{size}: the peak came at {run['peak_time_utc']} UTC, after the log line: {run['peak_during']}")

    def without_tables(run: dict[str, Any]) -> int:
        return int(run["peak_rss_bytes"] - run["table_bytes"])

    first, last = runs[0], runs[-1]
    growth = without_tables(last) / without_tables(first) - 1
    growth_with_tables = last["peak_rss_bytes"] / first["peak_rss_bytes"] - 1
    rows = [
        [
            f"{r['users']:,} / {r['items']:,}",
            f"{r['interactions']:,}",
            r["peak_rss_bytes"] / 2**30,
            r["table_bytes"] / 2**30,
            without_tables(r) / 2**30,
            r["wall_seconds"],
            "" if r["examples_per_second"] is None else f"{r['examples_per_second']:,.0f}",
            " ".join(str(x) for x in r["load_average_after"]),
        ]
        for r in runs
    ]
    headers = [
        "users / items",
        "interactions",
        "peak RSS GiB",
        "tables GiB",
        "without tables GiB",
        "wall s",
        "examples/s",
        "load after",
    ]
    summary = "\n".join(
        [
            f"## Peak memory of recsys train ({args.epochs} epoch(s), generated storefront)",
            "",
            fmt_table(headers, rows),
            "",
            *[
                f"- {r['interactions']:,}: the peak came at {r['peak_time_utc']} UTC, after the log line `{r['peak_during']}`"
                for r in runs
            ],
            "",
            f"Growth of the peak without the tables from the first size to the last: {growth:+.1%} "
            f"(with them {growth_with_tables:+.1%}; target < {TARGET_GROWTH:.0%}). Largest peak "
            f"{last['peak_rss_bytes'] / 2**30:.2f} GiB, {without_tables(last) / 2**30:.2f} GiB without the tables "
            f"(target < {TARGET_PEAK_GIB} GiB).",
        ]
    )
    write_results(
        "train_memory",
        {
            "runs": runs,
            "growth_without_tables": growth,
            "growth_with_tables": growth_with_tables,
            "target_growth": TARGET_GROWTH,
            "target_peak_gib": TARGET_PEAK_GIB,
            "sizes": sizes,
        },
        summary,
        out_dir=args.out,
        machine=machine,
        started=started,
    )
    print(summary)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
