"""``python -m benchmarks.catalog``: the command line (see the package docstring)."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import benchmarks.catalog
from benchmarks.catalog.data import log
from benchmarks.catalog.version import prepare_version, publish_catalog, publish_prepared


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.catalog", description=(benchmarks.catalog.__doc__ or "").split("\n\n")[0]
    )
    p.add_argument("--model-root", type=Path, required=True)
    p.add_argument("--items", type=int, default=100_000)
    p.add_argument("--users", type=int, default=50_000)
    p.add_argument("--dim", type=int, default=64)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--retain", type=int, default=2)
    p.add_argument(
        "--history-length",
        type=int,
        default=0,
        help="also a history feature (recent_item_ids, this many kept; 0: none, the default)",
    )
    p.add_argument("--wait-for-go", action="store_true", help="build, print READY, publish when a line arrives on stdin")
    args = p.parse_args(argv)
    if args.wait_for_go:
        prepared = prepare_version(args.items, args.users, args.dim, args.seed)
        print("READY", flush=True)
        if not sys.stdin.readline():
            log("stdin closed before go: not publishing")
            return 1
        started = time.time()
        version, publish_s = publish_prepared(args.model_root, prepared, args.retain)
        out = {"version": version, "publish_started_at": started, "publish_seconds": publish_s, **prepared.summary}
    else:
        out = publish_catalog(args.model_root, args.items, args.users, args.dim, args.seed, args.retain, args.history_length)
    print(json.dumps(out, default=float), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
