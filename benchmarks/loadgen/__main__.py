"""``python -m benchmarks.loadgen``: one bounded wrk run on a loopback URL, printed as JSON."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from benchmarks.loadgen.result import RequestSpec
from benchmarks.loadgen.target import NotLoopbackError, loopback_target
from benchmarks.loadgen.wrk import run_wrk


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.loadgen",
        description="Bounded closed-loop HTTP load (wrk) on a loopback URL; prints a JSON result.",
    )
    p.add_argument("--url", default="http://127.0.0.1:8000", help="loopback base URL")
    p.add_argument("--path", default="/healthz")
    p.add_argument("--method", default=None, help="default: POST with --body/--bodies, else GET")
    p.add_argument("--body", default=None, help="JSON body sent with every request")
    p.add_argument("--bodies", type=Path, default=None, help="file with one JSON body per line (cycled)")
    p.add_argument("--concurrency", type=int, default=8)
    p.add_argument("--duration", type=float, default=10.0, help="seconds of load")
    p.add_argument("--timeout", type=float, default=10.0, help="per-request timeout (s); a timeout is a failure")
    p.add_argument("--threads", type=int, default=1, help="wrk threads")
    args = p.parse_args(argv)
    try:
        loopback_target(args.url)
    except NotLoopbackError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.bodies:
        bodies = [ln.strip().encode() for ln in args.bodies.read_text().splitlines() if ln.strip()]
    elif args.body:
        bodies = [args.body.encode()]
    else:
        bodies = []
    method = args.method or ("POST" if bodies else "GET")
    specs = [RequestSpec(method, args.path, b) for b in bodies] or [RequestSpec(method, args.path)]
    result = run_wrk(
        args.url,
        specs,
        concurrency=args.concurrency,
        duration_s=args.duration,
        timeout_s=args.timeout,
        threads=args.threads,
        count_versions=True,
    )
    print(json.dumps(result.to_dict(), indent=2, default=float))
    return 0 if result.failures == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
