"""Bounded, loopback-only HTTP load with wrk (closed loop, fixed concurrency).

    python -m benchmarks.loadgen --url http://127.0.0.1:8000 --path /v1/recommendations \\
        --body '{"user_id": "u0000001", "k": 10}' --concurrency 32 --duration 30 [--threads 1] [--timeout 10]

The load generators of this project are wrk (the C load generator, Debian
package ``wrk``, installed by ``benchmarks/install_wrk.sh``) for throughput and
latency figures, driven here by a generated Lua script, and locust
(``benchmarks/locustfile.py``) for a storefront's mix of requests with checked
answers. There is no HTTP client of our own: wrk is far cheaper per request than
any Python client, which matters on a 2-core machine shared with the server.

``concurrency`` connections each send a request, wait for the answer, and send
the next (a closed loop: a slow server gets fewer requests, it is not flooded).
Every run is bounded: it stops after ``duration`` seconds (at most
:data:`HARD_MAX_DURATION_S`), or earlier when a ``stop`` event is set. Only
loopback targets are accepted (127.0.0.0/8, ::1, ``localhost``); anything else
is refused before wrk starts.

Counted per run (:class:`LoadResult`): requests answered, failures by kind
(``status_NNN`` for any non-2xx answer, ``timeout``, ``connect``, ``read``,
``write``), latency percentiles (p50/p95/p99/max, ms, wrk's histogram),
requests per second, the answers per ``X-Model-Version`` header and the status
codes, and wrk's own CPU time (``client_cpu_s``).

- :mod:`benchmarks.loadgen.target`: loopback checks and run bounds;
- :mod:`benchmarks.loadgen.result`: the request spec and the result record;
- :mod:`benchmarks.loadgen.wrk`: the Lua script and the wrk runs.
"""

from benchmarks.loadgen.result import LoadResult, RequestSpec
from benchmarks.loadgen.target import HARD_MAX_DURATION_S, NotLoopbackError, loopback_target
from benchmarks.loadgen.wrk import run_wrk, wrk_path, wrk_script

__all__ = [
    "HARD_MAX_DURATION_S",
    "LoadResult",
    "NotLoopbackError",
    "RequestSpec",
    "loopback_target",
    "run_wrk",
    "wrk_path",
    "wrk_script",
]
