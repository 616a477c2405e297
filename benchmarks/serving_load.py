"""Serving under load: a real ``recsys serve`` on loopback against its two ceilings.

    python -m benchmarks.serving_load [--sizes 100000,1000000] [--concurrency 1,8,32,64] [--workers 1,2]
        [--duration 8] [--repeats 3] [--engine wrk|asyncio|httpx] [--swap-duration 120] [--work-dir DIR] [--quick]
        [--former-index]

What it does (../shared/BENCHMARKS.md, "Serving"):

1. Catalogs: a version of each ``--sizes`` items (64-d) published by
   ``benchmarks/catalog.py`` under ``--work-dir`` (reused when already there; its
   build timings are reported).
2. Compute ceiling, per catalog: in a separate process, ``serving.model.load_version``
   loads the version the server would load, then (a) query tower + ScaNN search
   (``LoadedModel.embed`` + ``LoadedModel.index.search_ranked``: the index search and
   its exact re-scoring, k=10) and (b) the
   service's whole inference step (``serving.engine.build_job`` + ``run_jobs``:
   tower, over-fetching search, exclusion of seen items, exact re-scoring,
   result dicts) are timed in-process at batch sizes 1, 8, 32, 64. No HTTP.
3. Per catalog and per ``--workers``: the real server (``recsys serve --host
   127.0.0.1 --workers N``) and the HTTP ceiling (``ceiling-server`` below: the
   same uvicorn settings as ``serving.main.run``, the same ``GuardMiddleware``,
   request schema and orjson response class, answering a fixed 10-item JSON with
   no model work) run side by side; for each repeat and each concurrency, the
   ceiling and the model are loaded one after the other with the same bounded
   load (``benchmarks/loadgen.py``; ``POST /v1/recommendations`` for known users,
   k=10, cycling over 1,000 users). Reported: medians over repeats of p50/p95/p99,
   requests/s, failures, and throughput / HTTP ceiling. Server RSS (all
   processes, psutil) after loading and at the end; mean micro-batch size from
   ``/metrics``.
4. Hot swap, per catalog and per ``--swap-workers``: the same load at concurrency
   32 for ``--swap-duration`` seconds while a prepared new version (another seed)
   is written and published into the served model root by a separate process;
   reports failures (must be 0), the answers per version (X-Model-Version), when
   the new version first answered, and peak server RSS during the swap. With
   wrk the load runs as three back-to-back runs: *before* (``--swap-delay``
   seconds), *during* (from the publish until ``--swap-margin`` seconds after
   ``/readyz`` first names the new version, polled every 0.25 s; wrk is then
   stopped with SIGINT, which ends its run and reports it) and *after* (the
   rest), each with its exact percentiles. The run boundaries fall where nothing
   stalls (before the publish, and seconds after the swap and its heap
   collection), so no slow answer is lost at a boundary (wrk drops the requests
   still in flight when a run ends). ``--swap-windows off`` gives one run, as
   before.

5. ``--recent-items N`` (instead of 2-4), per catalog: one worker serving a
   version whose query tower reads the users' recent items
   (``benchmarks.catalog --history-length 50``, built once under ``--work-dir``)
   is loaded at concurrency 32 with the known-user requests each carrying N
   seeded ``recent_item_ids`` (so the query tower runs for every request), then
   with the same requests without them; interleaved with those, a second
   server on today's version of the same catalog (no history feature) gets the
   requests without them. Reported: p50/p95/p99, req/s and failures of each.
   ``python -m benchmarks.serving_load compute-recent --model-root DIR
   [--recent 20]`` times the same inference step in-process (no HTTP): batches
   of 32 known-user requests with and without recent items, ms per batch.

5. With ``--former-index``, per catalog: its copy with the former rule's index by
   size (``benchmarks/former_index.py``) is measured as in 3, right after the tuned
   one, and the change in requests/s and p99 is reported (issue 23).

Results: ``benchmarks/results/serving_load.json`` and ``.md`` (via
``benchmarks.common.write_results``) and ``benchmarks/results/serving_load.png``
(latency and throughput against concurrency). Catalog folders stay in
``--work-dir`` (default ``$TMPDIR/recsys-serving-bench``), never in the repo.

The machine has 2 cores shared by the server, the load generator and whatever
else runs: every figure here is a closed-loop measurement on that box, the load
average is recorded before every step, and ratios (to ceilings measured in the
same run, interleaved) are what to compare.
"""

# no "from __future__ import annotations": FastAPI must see the real request model of ceiling_app
import argparse
import contextlib
import http.client
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
DEFAULT_WORK_DIR = Path(tempfile.gettempdir()) / "recsys-serving-bench"
K = 10
NUM_USERS = 50_000
REQUEST_USERS = 1_000
TARGETS = {
    "ratio_to_http_ceiling_min": 0.60,
    "p99_ms_max": 25.0,
    "failures": 0,
    "rss_gb_per_worker_max": 1.5,
    "swap_p99_ms_max": 100.0,
    "recent_p99_ms_max": 30.0,
}


def log(msg: str) -> None:
    print(f"[serving_load {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def load_average() -> list[float]:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:  # pragma: no cover
        return []


# --------------------------------------------------------------------------- HTTP ceiling app
CEILING_ITEMS = [
    {
        "item_id": f"i{row:07d}",
        "score": 100.0 - rank * 1.37,
        "rank": rank,
        "popularity": 3 * rank,
        "category": f"c{rank:02d}",
        "price": 12.5 + rank,
    }
    for rank, row in enumerate((4711, 815, 90210, 1234, 777, 31337, 4242, 1001, 65535, 2718), start=1)
]


def ceiling_answer(body: Any, request: Any) -> Any:
    """The ceiling's fixed answer (version "0") for a validated request."""
    from serving.errors import JSONBytesResponse

    request.state.model_version = "0"
    return JSONBytesResponse({"model_version": "0", "user_id": body.user_id, "strategy": "personal", "items": CEILING_ITEMS})


def ceiling_app() -> Any:
    """The HTTP ceiling: the service's stack minus the model.

    Same FastAPI app settings, the same ``GuardMiddleware`` (concurrency cap,
    body limit, deadline, X-Model-Version, latency histogram; the demo page's
    files are routes of their own, not a layer, so they cost a request nothing), the same request
    schema (``make_schemas``), the same orjson ``JSONBytesResponse``; the route
    answers a fixed 10-item body shaped like a real answer. Settings come from the
    ``RECSYS_*`` environment like the service's workers.
    """
    return http_stack_app()


def http_stack_app(answer: Any = None, lifespan: Any = None) -> Any:
    """The ceiling's stack. Without ``answer`` the route returns the fixed body at
    once; with ``answer`` (``async (body, request) -> Response``, used by
    ``benchmarks.serving_gap``) the route awaits it instead."""
    from fastapi import FastAPI, Request
    from starlette.responses import Response

    import recsys  # noqa: F401
    from serving.errors import JSONBytesResponse, install_error_handlers
    from serving.metrics import ServiceMetrics
    from serving.middleware import GuardMiddleware
    from serving.runtime import ModelHolder
    from serving.schemas import make_schemas
    from serving.settings import ServiceSettings

    settings = ServiceSettings()
    metrics = ServiceMetrics()
    holder = ModelHolder()
    RecommendationRequest = make_schemas(settings).RecommendationRequest  # noqa: N806
    app = FastAPI(
        title="HTTP ceiling",
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
        default_response_class=JSONBytesResponse,
        lifespan=lifespan,
    )
    install_error_handlers(app)
    app.add_middleware(GuardMiddleware, settings=settings, metrics=metrics, holder=holder)

    if answer is None:

        @app.post("/v1/recommendations")
        async def recommend(body: RecommendationRequest, request: Request) -> Response:  # type: ignore[valid-type]
            return ceiling_answer(body, request)

    else:

        @app.post("/v1/recommendations")
        async def recommend_with(body: RecommendationRequest, request: Request) -> Response:  # type: ignore[valid-type]
            return await answer(body, request)

    @app.get("/healthz")
    async def healthz() -> Response:
        return JSONBytesResponse({"status": "alive"})

    return app


def serve_ceiling(host: str, port: int, workers: int) -> None:
    import uvicorn

    import recsys  # noqa: F401
    from serving.main import uvicorn_options
    from serving.settings import ServiceSettings

    kw = uvicorn_options(ServiceSettings(host=host, port=port))  # exactly what `recsys serve` runs with
    if workers == 1:
        uvicorn.run(ceiling_app(), **kw)
    else:
        uvicorn.run("benchmarks.serving_load:ceiling_app", factory=True, workers=workers, **kw)


# --------------------------------------------------------------------------- compute ceiling
def compute_ceiling(
    model_root: Path, batch_sizes: tuple[int, ...] = (1, 8, 32, 64), min_seconds: float = 3.0, repeats: int = 5
) -> dict[str, Any]:
    """Query tower + ScaNN (and the whole inference step) in-process, queries/s per batch size."""
    import numpy as np

    import recsys  # noqa: F401
    from benchmarks.common import median
    from serving.engine import build_job, run_jobs
    from serving.model import load_version, read_latest

    name = read_latest(model_root)
    if name is None:
        raise FileNotFoundError(f"no LATEST under {model_root}")
    t = time.perf_counter()
    model = load_version(model_root, name)
    load_s = time.perf_counter() - t
    users = model.users.first(REQUEST_USERS)

    class Req:  # what the app hands build_job for POST {"user_id": u, "k": 10}
        def __init__(self, uid: str) -> None:
            self.user_id, self.features, self.k, self.exclude_seen, self.exclude_item_ids, self.filters = (
                uid,
                None,
                K,
                True,
                [],
                None,
            )

    reqs = [Req(u) for u in users]

    def columns(batch: list[str]) -> dict[str, np.ndarray]:
        cols = {}
        for qi in model.query_inputs:
            rows = [model.users.get(u) for u in batch]
            vals = model.user_features[qi.name][rows]
            cols[qi.name] = np.asarray(vals, dtype=np.float32 if qi.dtype == "float32" else object)
        return cols

    def rate(fn: Any, n: int) -> float:
        fn(0)
        loops = 0
        per: list[float] = []
        for _ in range(repeats):
            start = time.perf_counter()
            done = 0
            while time.perf_counter() - start < min_seconds / repeats:
                fn(loops)
                loops += 1
                done += 1
            per.append((time.perf_counter() - start) / done)
        return n / median(per)

    out: dict[str, Any] = {"version": name, "load_seconds": load_s, "num_items": model.num_items, "per_batch": {}}
    for b in batch_sizes:
        batches = [users[(i * b) % len(users) : (i * b) % len(users) + b] for i in range(64)]
        batches = [x if len(x) == b else users[:b] for x in batches]
        cols = [columns(x) for x in batches]

        def tower_search(i: int, cols: list = cols) -> None:
            q = model.embed(cols[i % len(cols)])
            model.index.search_ranked(q, K, np.full(len(q), K))  # the service's index step (re-scoring included)

        def tower_only(i: int, cols: list = cols) -> None:
            model.embed(cols[i % len(cols)])

        def engine(i: int, b: int = b) -> None:
            start = (i * b) % len(reqs)
            chunk = reqs[start : start + b] if start + b <= len(reqs) else reqs[:b]
            run_jobs([build_job(model, r) for r in chunk])

        out["per_batch"][str(b)] = {
            "tower_plus_scann_qps": rate(tower_search, b),
            "tower_only_qps": rate(tower_only, b),
            "engine_qps": rate(engine, b),
        }
        log(f"compute ceiling {model.num_items:,} items, batch {b}: {out['per_batch'][str(b)]}")
    return out


def compute_recent(model_root: Path, recent: int, batch: int = 32, rounds: int = 40) -> dict[str, Any]:
    """The service's inference step in-process (``build_job`` + ``run_jobs``, no HTTP) on
    batches of ``batch`` known-user requests, each carrying ``recent`` recent items (the
    query tower runs for each) or none (precomputed vectors): milliseconds per batch,
    median and 95th percentile over ``rounds`` batches of each, interleaved."""
    import numpy as np

    import recsys  # noqa: F401
    from benchmarks.catalog import item_id
    from serving.engine import build_job, run_jobs
    from serving.model import load_version, read_latest

    name = read_latest(model_root)
    if name is None:
        raise FileNotFoundError(f"no LATEST under {model_root}")
    model = load_version(model_root, name)
    users = model.users.first(REQUEST_USERS)
    rng = np.random.default_rng(19)

    def req(uid: str, items: list[str]) -> Any:
        return argparse.Namespace(
            user_id=uid, features=None, k=K, exclude_seen=True, exclude_item_ids=[], filters=None, recent_item_ids=items
        )

    times: dict[str, list[float]] = {"recent_items": [], "no_recent_items": []}
    for r in range(rounds + 2):  # the first two warm up
        chunk = [users[(r * batch + j) % len(users)] for j in range(batch)]
        visits = [[item_id(int(x)) for x in rng.integers(0, model.num_items, recent)] for _ in chunk]
        for kind in times:
            t = time.perf_counter()
            run_jobs([build_job(model, req(u, v if kind == "recent_items" else [])) for u, v in zip(chunk, visits, strict=True)])
            if r >= 2:
                times[kind].append(1000 * (time.perf_counter() - t))
    out: dict[str, Any] = {
        "version": name,
        "num_items": model.num_items,
        "batch": batch,
        "recent_items": recent,
        "load_average": load_average(),
    }
    for kind, ms in times.items():
        out[kind] = {"ms_per_batch_p50": float(np.median(ms)), "ms_per_batch_p95": float(np.percentile(ms, 95))}
    return out


# --------------------------------------------------------------------------- processes
def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def http_get(port: int, path: str, timeout: float = 5.0) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


class Server:
    """A server process we started (own session), its log, readiness and memory."""

    def __init__(self, name: str, cmd: list[str], port: int, env: dict[str, str], log_path: Path) -> None:
        self.name, self.cmd, self.port, self.log_path = name, cmd, port, log_path
        self._log = open(log_path, "ab")
        self.proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True)
        self.started = time.perf_counter()
        self.ready_seconds: float | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def wait_ready(self, path: str, timeout_s: float) -> float:
        deadline = time.perf_counter() + timeout_s
        while time.perf_counter() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode}; see {self.log_path}")
            with contextlib.suppress(OSError, http.client.HTTPException):
                status, _ = http_get(self.port, path, timeout=2.0)
                if status == 200:
                    self.ready_seconds = time.perf_counter() - self.started
                    return self.ready_seconds
            time.sleep(0.5)
        raise TimeoutError(f"{self.name} not ready on {path} within {timeout_s:.0f}s; see {self.log_path}")

    def processes(self) -> list[Any]:
        import psutil

        try:
            root = psutil.Process(self.proc.pid)
            return [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            return []

    def memory(self, full: bool = True) -> dict[str, Any]:
        """RSS of every process of the server (the uvicorn supervisor and its workers);
        ``full`` adds USS (reads smaps: slower, not for frequent sampling)."""
        import psutil

        procs = []
        for p in self.processes():
            with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
                mem = p.memory_full_info() if full else p.memory_info()
                cmd = " ".join(p.cmdline())
                if "spawn_main" in cmd:
                    role = "worker"  # a uvicorn worker process (several workers)
                elif p.pid == self.proc.pid:
                    role = "main"  # the only process with one worker; the supervisor with several
                else:
                    role = "other"  # e.g. multiprocessing's resource tracker
                procs.append({"pid": p.pid, "rss": mem.rss, "uss": getattr(mem, "uss", None), "role": role, "cmd": cmd[:120]})
        workers = [p for p in procs if p["role"] == "worker"] or [p for p in procs if p["role"] == "main"]
        return {
            "total_rss": sum(p["rss"] for p in procs),
            "max_process_rss": max((p["rss"] for p in procs), default=0),
            "workers_rss": [p["rss"] for p in workers],
            "processes": procs,
        }

    def stop(self, timeout_s: float = 30.0) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
        self._log.close()


def recsys_exe() -> list[str]:
    exe = Path(sys.executable).parent / "recsys"
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "recsys.cli"]


def server_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RECSYS_")}
    env.update({"RECSYS_POLL_INTERVAL_S": "1", "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONUNBUFFERED": "1"})
    env.update(extra or {})
    return env


def start_model_server(root: Path, workers: int, logs: Path, extra_env: dict[str, str] | None = None) -> Server:
    port = free_port()
    cmd = [
        *recsys_exe(),
        "serve",
        "--model-root",
        str(root),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        str(workers),
    ]
    return Server(
        f"recsys serve ({root.name}, {workers} worker(s))",
        cmd,
        port,
        server_env(extra_env),
        logs / f"server-{root.name}-w{workers}-{port}.log",
    )


def start_ceiling_server(workers: int, logs: Path, extra_env: dict[str, str] | None = None) -> Server:
    port = free_port()
    cmd = [sys.executable, "-m", "benchmarks.serving_load", "ceiling-server", "--port", str(port), "--workers", str(workers)]
    return Server(
        f"HTTP ceiling ({workers} worker(s))", cmd, port, server_env(extra_env), logs / f"ceiling-w{workers}-{port}.log"
    )


def scrape_batches(port: int) -> tuple[float, float] | None:
    """(sum, count) of the micro-batch size histogram of the worker that answers."""
    with contextlib.suppress(OSError, http.client.HTTPException):
        status, body = http_get(port, "/metrics")
        if status != 200:
            return None
        vals = {}
        for line in body.decode().splitlines():
            if line.startswith("recsys_microbatch_size_sum") or line.startswith("recsys_microbatch_size_count"):
                name, value = line.split()
                vals[name] = float(value)
        return vals.get("recsys_microbatch_size_sum", 0.0), vals.get("recsys_microbatch_size_count", 0.0)
    return None


# --------------------------------------------------------------------------- catalogs
def ensure_catalog(work_dir: Path, size: int, logs: Path, history_length: int = 0) -> dict[str, Any]:
    from benchmarks.catalog import GENERATOR_VERSION

    root = work_dir / (f"items-{size}-history{history_length}" if history_length else f"items-{size}")
    latest = root / "LATEST"
    if latest.is_file():
        name = latest.read_text().strip()
        manifest = json.loads((root / name / "manifest.json").read_text())
        cat = manifest.get("metrics", {}).get("catalog", {})
        current = "tuning" in manifest.get("index", {})  # built by the tuned index path (issue 23), not the old size rule
        same_history = cat.get("history_length", 0) == history_length
        if manifest.get("num_items") == size and cat.get("generator") == GENERATOR_VERSION and current and same_history:
            log(f"reusing {root} (version {name})")
            return {
                "model_root": str(root),
                "version": name,
                "reused": True,
                "build_timings": cat.get("build_timings"),
                "index": manifest.get("index"),
            }
        if "generated-catalog" not in str(manifest.get("dataset", {}).get("source")):
            raise RuntimeError(f"{root} holds a version that is not a generated catalog: not touching it")
        log(f"{root} holds a catalog of an older generator or index settings: rebuilding it")
        shutil.rmtree(root)
    log(f"building a {size:,}-item catalog in {root}")
    cmd = [
        sys.executable,
        "-m",
        "benchmarks.catalog",
        "--model-root",
        str(root),
        "--items",
        str(size),
        "--users",
        str(NUM_USERS),
        "--history-length",
        str(history_length),
    ]
    with open(logs / f"catalog-{size}.log", "ab") as fh:
        done = subprocess.run(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=fh, timeout=3600, check=True)
    info = json.loads(done.stdout.decode().strip().splitlines()[-1])
    return {
        "model_root": str(root),
        "version": info["version"],
        "reused": False,
        "build_timings": info["timings"],
        "index": info["index"],
    }


def former_index_catalog(work_dir: Path, size: int, root: Path, logs: Path) -> dict[str, Any]:
    """The catalog's copy with the former rule's index (``benchmarks.former_index``), under ``work_dir``:
    its model root, version and index record."""
    dest = work_dir / f"items-{size}-former-index"
    log(f"the former rule's index for the {size:,}-item catalog in {dest}")
    cmd = [sys.executable, "-m", "benchmarks.former_index", "--source", str(root), "--dest", str(dest)]
    with open(logs / f"former-index-{size}.log", "ab") as fh:
        done = subprocess.run(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=fh, timeout=3600, check=True, env=server_env())
    return json.loads(done.stdout.decode().strip().splitlines()[-1])


def former_change(per: dict[str, Any]) -> dict[str, Any]:
    """Per workers and concurrency: the tuned index's req/s and p99 against the former index's."""
    out: dict[str, Any] = {}
    for tuned, former in zip(per["workers"], per["former_index"]["workers"], strict=False):
        for c, t in tuned["per_concurrency"].items():
            f = former["per_concurrency"].get(c)
            if f:
                out[f"workers={tuned['workers']} c={c}"] = {
                    "tuned_rps": t["model"]["rps"],
                    "former_rps": f["model"]["rps"],
                    "rps_change": t["model"]["rps"] / f["model"]["rps"] - 1 if f["model"]["rps"] else None,
                    "tuned_p99_ms": t["model"]["p99_ms"],
                    "former_p99_ms": f["model"]["p99_ms"],
                    "tuned_ratio": t["ratio_to_http_ceiling"],
                    "former_ratio": f["ratio_to_http_ceiling"],
                }
    return out


def request_specs(num_users: int = REQUEST_USERS) -> list[Any]:
    from benchmarks.catalog import user_id
    from benchmarks.loadgen import RequestSpec

    return [
        RequestSpec.post_json("/v1/recommendations", {"user_id": user_id(i * 37 % NUM_USERS), "k": K}) for i in range(num_users)
    ]


def recent_request_specs(num_items: int, recent: int, num_users: int = REQUEST_USERS) -> list[Any]:
    """The known users of :func:`request_specs`, each request carrying ``recent`` recent item ids
    (seeded draws from the catalog): the service runs the query tower for every one."""
    import numpy as np

    from benchmarks.catalog import item_id, user_id
    from benchmarks.loadgen import RequestSpec

    rng = np.random.default_rng(19)
    return [
        RequestSpec.post_json(
            "/v1/recommendations",
            {
                "user_id": user_id(i * 37 % NUM_USERS),
                "k": K,
                "recent_item_ids": [item_id(int(r)) for r in rng.integers(0, num_items, recent)],
            },
        )
        for i in range(num_users)
    ]


def measure_recent(size: int, work_dir: Path, args: argparse.Namespace, logs: Path) -> dict[str, Any]:
    """``--recent-items N``: one worker on a version whose query tower reads the history
    (``benchmarks.catalog --history-length 50``) loaded with requests carrying N recent
    items, and with the same requests without them; beside it, in the same run and
    interleaved, today's version (no history feature) with the requests without them."""
    hist_cat = ensure_catalog(work_dir, size, logs, history_length=50)
    today_cat = ensure_catalog(work_dir, size, logs)
    plain, recent = request_specs(), recent_request_specs(size, args.recent_items)
    log(f"{size:,} items, recent items {args.recent_items}: starting two servers (load {load_average()})")
    hist = start_model_server(Path(hist_cat["model_root"]), 1, logs)
    today = start_model_server(Path(today_cat["model_root"]), 1, logs)
    loads = [
        ("recent_items", hist, recent),  # every request runs the query tower
        ("no_recent_items", hist, plain),  # the same version, requests without recent items: the fast path
        ("today_no_recent_items", today, plain),  # today's version (no history feature), the same requests
    ]
    try:
        ready = {
            "history_version": hist.wait_ready("/readyz", args.ready_timeout),
            "today_version": today.wait_ready("/readyz", args.ready_timeout),
        }
        memory = {"history_version": hist.memory(), "today_version": today.memory()}
        for _, server, specs in loads:  # warm-up
            one_load(server, specs, args.engine, 8, args.warmup, args.processes)
        runs: dict[str, list] = {name: [] for name, _, _ in loads}
        for rep in range(args.repeats):
            for name, server, specs in loads:
                r = one_load(server, specs, args.engine, 32, args.duration, args.processes)
                runs[name].append(r)
                log(
                    f"  rep {rep + 1} c=32 {name:>22}: {r['rps']:7.0f} req/s p50 {r['latency_ms']['p50']:6.1f} "
                    f"p99 {r['latency_ms']['p99']:6.1f} ms fail {r['failures']} (load {r['load_average_before']})"
                )
    finally:
        hist.stop()
        today.stop()
    return {
        "recent_items": args.recent_items,
        "concurrency": 32,
        "catalogs": {"history_version": hist_cat, "today_version": today_cat},
        "ready_seconds": ready,
        "memory_after_load": memory,
        "summary": {name: summarize(r) for name, r in runs.items()},
        "raw_runs": runs,
    }


def recent_md(r: dict[str, Any]) -> str:
    from benchmarks.common import fmt_table

    rows = [
        [name, s["rps"], s["p50_ms"], s["p95_ms"], s["p99_ms"], s["failures"], s["mean_microbatch"]]
        for name, s in r["summary"].items()
    ]
    return "\n".join(
        [
            f"### recent items: {r['recent_items']} per request, c = 32, 1 worker (interleaved, medians)",
            "",
            fmt_table(["load", "req/s", "p50 ms", "p95 ms", "p99 ms", "fail", "batch"], rows),
            "",
        ]
    )


# --------------------------------------------------------------------------- measuring
def one_load(
    server: Server, specs: list, engine: str, conc: int, duration: float, processes: int, workers: int = 1
) -> dict[str, Any]:
    """One bounded load; with one worker also the mean micro-batch size (a scrape reaches one worker only)."""
    from benchmarks.loadgen import run_load

    before = scrape_batches(server.port) if workers == 1 else None
    load = load_average()
    res = run_load(
        server.url,
        specs,
        engine=engine,
        concurrency=conc,
        duration_s=duration,
        timeout_s=10.0,
        processes=processes,
        count_versions=False,
    )
    after = scrape_batches(server.port) if workers == 1 else None
    out = res.to_dict()
    out["load_average_before"] = load
    if before and after and after[1] > before[1]:
        out["mean_microbatch"] = (after[0] - before[0]) / (after[1] - before[1])
    return out


def med(runs: list[dict], *path: str) -> float:
    vals = []
    for r in runs:
        v: Any = r
        for p in path:
            v = v[p]
        vals.append(float(v))
    return statistics.median(vals) if vals else float("nan")


def summarize(runs: list[dict]) -> dict[str, Any]:
    return {
        "rps": med(runs, "rps"),
        "p50_ms": med(runs, "latency_ms", "p50"),
        "p95_ms": med(runs, "latency_ms", "p95"),
        "p99_ms": med(runs, "latency_ms", "p99"),
        "failures": int(sum(r["failures"] for r in runs)),
        "requests": int(sum(r["completed"] for r in runs)),
        "mean_microbatch": med([r for r in runs if "mean_microbatch" in r], "mean_microbatch")
        if any("mean_microbatch" in r for r in runs)
        else None,
        "client_cpu_s_per_1k": med([{"v": 1000 * (r["client_cpu_s"] or 0) / max(r["completed"], 1)} for r in runs], "v"),
    }


def measure_workers(size: int, root: Path, workers: int, args: argparse.Namespace, logs: Path) -> dict[str, Any]:
    specs = request_specs()
    log(f"{size:,} items, {workers} worker(s): starting the server and the HTTP ceiling (load {load_average()})")
    model = start_model_server(root, workers, logs)
    ceiling = start_ceiling_server(workers, logs)
    try:
        model_ready = model.wait_ready("/readyz", args.ready_timeout)
        if workers > 1:  # every worker loads on its own: wait until each has answered /readyz
            _wait_all_workers(model, workers, args.ready_timeout)
        ceiling.wait_ready("/healthz", 120)
        mem_loaded = model.memory()
        log(
            f"ready in {model_ready:.1f}s; RSS {mem_loaded['total_rss'] / 2**30:.2f} GiB in {len(mem_loaded['processes'])} process(es)"
        )
        for s in (ceiling, model):  # warm-up: connections, caches, first batches
            one_load(s, specs, args.engine, 8, args.warmup, args.processes)
        runs: dict[str, dict[int, list]] = {
            "ceiling": {c: [] for c in args.concurrency},
            "model": {c: [] for c in args.concurrency},
        }
        for rep in range(args.repeats):
            for conc in args.concurrency:
                for kind, s in (("ceiling", ceiling), ("model", model)):
                    r = one_load(s, specs, args.engine, conc, args.duration, args.processes, workers)
                    runs[kind][conc].append(r)
                    log(
                        f"  rep {rep + 1} c={conc:>2} {kind:>7}: {r['rps']:7.0f} req/s p50 {r['latency_ms']['p50']:6.1f} "
                        f"p99 {r['latency_ms']['p99']:6.1f} ms fail {r['failures']} (load {r['load_average_before']})"
                    )
        mem_end = model.memory()
    finally:
        model.stop()
        ceiling.stop()
    table = {}
    for conc in args.concurrency:
        m, c = summarize(runs["model"][conc]), summarize(runs["ceiling"][conc])
        ratios = [a["rps"] / b["rps"] for a, b in zip(runs["model"][conc], runs["ceiling"][conc], strict=True) if b["rps"]]
        table[str(conc)] = {
            "model": m,
            "http_ceiling": c,
            "ratio_to_http_ceiling": m["rps"] / c["rps"] if c["rps"] else None,
            "ratio_to_http_ceiling_per_repeat": ratios,
        }
    return {
        "workers": workers,
        "ready_seconds": model_ready,
        "memory_after_load": mem_loaded,
        "memory_at_end": mem_end,
        "per_concurrency": table,
        "raw_runs": runs,
    }


def _wait_all_workers(server: Server, workers: int, timeout_s: float) -> None:
    """With several workers a /readyz answer comes from one of them; wait until RSS says all loaded."""
    deadline = time.perf_counter() + timeout_s
    while time.perf_counter() < deadline:
        mem = server.memory(full=False)
        # a worker that has loaded a version holds TensorFlow and the model: well above 400 MiB
        if len(mem["workers_rss"]) >= workers and all(r > 400 * 2**20 for r in mem["workers_rss"]):
            ok = 0
            for _ in range(4 * workers):
                with contextlib.suppress(OSError, http.client.HTTPException):
                    if http_get(server.port, "/readyz")[0] == 200:
                        ok += 1
            if ok == 4 * workers:
                time.sleep(2.0)
                return
        time.sleep(1.0)
    raise TimeoutError("not every worker became ready")


def compare_engines(args: argparse.Namespace, logs: Path) -> dict[str, Any]:
    """The HTTP ceiling (1 worker) measured by each load generator: how much each one can drive
    on this machine, and what it costs in client CPU (which the server then lacks: 2 cores)."""
    from benchmarks.loadgen import wrk_path

    engines = [e for e in ("wrk", "asyncio", "httpx") if e != "wrk" or wrk_path()]
    specs = request_specs()
    server = start_ceiling_server(1, logs)
    out: dict[str, Any] = {}
    try:
        server.wait_ready("/healthz", 120)
        for e in engines:
            one_load(server, specs, e, 8, 1.0, 1)
        for conc in (8, 32):
            for e in engines:
                runs = [one_load(server, specs, e, conc, args.duration, 1) for _ in range(args.repeats)]
                out[f"{e} c={conc}"] = summarize(runs)
                log(
                    f"engines: ceiling via {e:>7} c={conc}: {out[f'{e} c={conc}']['rps']:.0f} req/s, "
                    f"client CPU {out[f'{e} c={conc}']['client_cpu_s_per_1k']:.3f} s per 1k requests"
                )
    finally:
        server.stop()
    return out


class RssSampler:
    """Peak total and per-process RSS of a server, sampled in a thread."""

    def __init__(self, server: Server, every_s: float = 0.5) -> None:
        self.server, self.every_s = server, every_s
        self.peak_total = 0
        self.peak_process = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            with contextlib.suppress(Exception):
                mem = self.server.memory(full=False)
                self.peak_total = max(self.peak_total, mem["total_rss"])
                self.peak_process = max(self.peak_process, mem["max_process_rss"])
            self._stop.wait(self.every_s)

    def __enter__(self) -> "RssSampler":
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


def swap_run(size: int, work_dir: Path, workers: int, args: argparse.Namespace, logs: Path) -> dict[str, Any]:
    """Load at concurrency 32 while a new version is published into the served root."""
    from benchmarks.loadgen import run_load

    src = work_dir / f"items-{size}"
    root = work_dir / f"swap-{size}"
    if root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True)
    first = (src / "LATEST").read_text().strip()
    shutil.copytree(src / first, root / first)
    (root / "LATEST").write_text(first + "\n")
    log(f"swap {size:,} items, {workers} worker(s): preparing the new version (load {load_average()})")
    pub_log = open(logs / f"swap-publisher-{size}-w{workers}.log", "ab")
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
            _wait_all_workers(server, workers, args.ready_timeout)
        mem_before = server.memory()
        specs = request_specs()
        result: dict[str, Any] = {}
        t0 = time.time()

        def go(now: bool = False) -> None:
            if not now:
                time.sleep(args.swap_delay)
            result["go_at"] = time.time() - t0
            if ahead is not None:
                from training.publish import write_latest

                start = time.perf_counter()
                os.rename(ahead / pub["version"], root / pub["version"])
                write_latest(root, pub["version"])
                pub["publish_seconds"] = time.perf_counter() - start
                return
            publisher.stdin.write("go\n")  # type: ignore[union-attr]
            publisher.stdin.flush()  # type: ignore[union-attr]

        trigger = threading.Thread(target=go, daemon=True)
        load = load_average()
        engine = "asyncio" if args.engine == "asyncio" else args.engine
        windows: dict[str, Any] | None = None
        with RssSampler(server) as sampler:
            if args.swap_windows == "on" and engine == "wrk":
                windows = swap_windows(server, specs, first, go, args, t0)
                res = None
            else:
                trigger.start()
                res = run_load(
                    server.url,
                    specs,
                    engine=engine,
                    concurrency=32,
                    duration_s=args.swap_duration,
                    timeout_s=10.0,
                    processes=args.processes,
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
    url: str, specs: list, stop: threading.Event, max_s: float, processes: int, timeout_s: float = 10.0
) -> dict[str, Any]:
    """wrk at concurrency 32 until ``stop`` is set (then SIGINT: wrk ends the run and reports it) or ``max_s``."""
    from benchmarks.loadgen import loopback_target, wrk_path, wrk_script

    host, port, base = loopback_target(url)
    with tempfile.TemporaryDirectory(prefix="swap-wrk-") as tmp:
        script = Path(tmp) / "load.lua"
        script.write_text(wrk_script(list(specs), base, True), encoding="utf-8")
        cmd = [
            str(wrk_path()),
            "-t",
            str(max(1, processes)),
            "-c",
            "32",
            "-d",
            f"{max(1, int(max_s))}s",
            "--timeout",
            f"{int(timeout_s)}s",
            "-s",
            str(script),
            f"http://{host}:{port}",
        ]
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        while proc.poll() is None and not stop.wait(0.05):
            pass
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=timeout_s + 60)
        seconds = time.perf_counter() - start
    line = next((ln for ln in out.splitlines() if ln.startswith("WRKJSON ")), None)
    if line is None:
        raise RuntimeError(f"wrk failed (exit {proc.returncode}): {err.strip()[:300]}")
    data = json.loads(line[len("WRKJSON ") :])
    errors, lat = data["errors"], data["latency_us"]
    completed = int(data["requests"])
    return {
        "seconds": round(seconds, 2),
        "completed": completed,
        "rps": completed / (data["duration_us"] / 1e6) if data["duration_us"] else 0.0,
        "failures": sum(int(errors[k]) for k in ("status", "connect", "read", "write", "timeout")),
        "errors": errors,
        "versions": {k: int(v) for k, v in data.get("versions", {}).items()},
        "p50_ms": lat["p50"] / 1000,
        "p99_ms": lat["p99"] / 1000,
        "max_ms": lat["max"] / 1000,
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


# --------------------------------------------------------------------------- report
def plot(results: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sizes = results["sizes"]
    fig, axes = plt.subplots(1, 3, figsize=(17, 4.8))
    for size_key, per_size in sizes.items():
        for w in per_size["workers"]:
            table = w["per_concurrency"]
            conc = sorted(int(c) for c in table)
            label = f"{int(size_key):,} items, {w['workers']}w"
            axes[0].plot(conc, [table[str(c)]["model"]["p99_ms"] for c in conc], marker="o", label=f"{label} p99")
            axes[0].plot(conc, [table[str(c)]["model"]["p50_ms"] for c in conc], marker=".", linestyle=":", label=f"{label} p50")
            axes[1].plot(conc, [table[str(c)]["model"]["rps"] for c in conc], marker="o", label=label)
            axes[1].plot(
                conc,
                [table[str(c)]["http_ceiling"]["rps"] for c in conc],
                linestyle="--",
                alpha=0.6,
                label=f"HTTP ceiling ({label})",
            )
            axes[2].plot(conc, [table[str(c)]["ratio_to_http_ceiling"] or 0 for c in conc], marker="o", label=label)
    axes[0].axhline(TARGETS["p99_ms_max"], color="red", linewidth=0.8, linestyle="--", label="p99 target")
    axes[0].set(xlabel="concurrency", ylabel="latency (ms)", title="latency vs concurrency (k=10)", xscale="log", yscale="log")
    axes[1].set(xlabel="concurrency", ylabel="requests/s", title="throughput vs concurrency", xscale="log")
    axes[2].axhline(TARGETS["ratio_to_http_ceiling_min"], color="red", linewidth=0.8, linestyle="--", label="target")
    axes[2].set(
        xlabel="concurrency",
        ylabel="model req/s / HTTP-ceiling req/s",
        title="share of the HTTP ceiling",
        xscale="log",
        ylim=(0, 1),
    )
    for ax in axes:
        ax.set_xticks(results["concurrency"], [str(c) for c in results["concurrency"]])
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=6)
    fig.suptitle(
        f"recsys serve on loopback, medians of {results['repeats']} runs ({results['engine']}); {results['machine_line']}",
        fontsize=8,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _fmt(v: Any, digits: int = 1) -> str:
    if v is None:
        return "—"
    if isinstance(v, float):
        return f"{v:,.{digits}f}"
    return str(v)


def summary_md(results: dict[str, Any]) -> str:
    from benchmarks.common import fmt_table

    measured = any(per.get("workers") for per in results["sizes"].values())
    how = (
        f"{results['duration_s']} s per point, medians of {results['repeats']} interleaved repeats (model and HTTP ceiling alternate)"
        if measured
        else "swap runs only (--swap-only), concurrency 32"
    )
    if any(per.get("recent") for per in results["sizes"].values()):
        how = (
            f"--recent-items only: {results['duration_s']} s per point, medians of {results['repeats']} interleaved repeats "
            "(with recent items, without, today's version without)"
        )
    lines = [
        f"Closed-loop load ({results['engine']}), POST /v1/recommendations for known users, k={K}; {how}. "
        f"Load average during the run: {results['load_average_seen']}.",
        "",
    ]
    for size_key, per_size in results["sizes"].items():
        cat = per_size["catalog"]
        lines.append(f"## {int(size_key):,} items")
        lines.append(
            f"catalog build: {cat.get('build_timings')}; index {cat.get('index', {}).get('kind')} recall@10 {cat.get('index', {}).get('recall_at_10_vs_exact')}"
        )
        comp = per_size.get("compute_ceiling")
        if comp:
            rows = [[b, v["tower_plus_scann_qps"], v["tower_only_qps"], v["engine_qps"]] for b, v in comp["per_batch"].items()]
            lines += [
                "",
                "compute ceiling (in-process, queries/s):",
                "",
                fmt_table(["batch", "tower+ScaNN", "tower only", "engine (run_jobs)"], rows),
                "",
            ]
        for w in per_size["workers"]:
            mem = w["memory_after_load"]
            lines.append(
                f"### {w['workers']} worker(s): ready in {w['ready_seconds']:.1f} s, RSS after load {mem['total_rss'] / 2**30:.2f} GiB "
                f"(workers {[round(r / 2**30, 2) for r in mem['workers_rss']]} GiB), at end {w['memory_at_end']['total_rss'] / 2**30:.2f} GiB"
            )
            rows = []
            for c, t in w["per_concurrency"].items():
                m, h = t["model"], t["http_ceiling"]
                rows.append(
                    [
                        c,
                        m["rps"],
                        m["p50_ms"],
                        m["p95_ms"],
                        m["p99_ms"],
                        m["failures"],
                        m["mean_microbatch"],
                        h["rps"],
                        h["p99_ms"],
                        t["ratio_to_http_ceiling"],
                    ]
                )
            lines += [
                "",
                fmt_table(
                    ["conc", "req/s", "p50 ms", "p95 ms", "p99 ms", "fail", "batch", "ceiling req/s", "ceiling p99", "ratio"],
                    rows,
                ),
                "",
            ]
        former = per_size.get("former_index")
        if former:
            idx = former["catalog"]["index"]
            lines.append(
                f"### the same catalog with the former rule's index ({idx.get('kind')} {idx.get('params')}, "
                f"recall@10 {idx.get('recall_at_10_vs_exact')}), measured right after the tuned one"
            )
            for w in former["workers"]:
                rows = [
                    [
                        c,
                        t["model"]["rps"],
                        t["model"]["p50_ms"],
                        t["model"]["p99_ms"],
                        t["model"]["failures"],
                        t["http_ceiling"]["rps"],
                        t["ratio_to_http_ceiling"],
                    ]
                    for c, t in w["per_concurrency"].items()
                ]
                lines += [
                    "",
                    f"{w['workers']} worker(s):",
                    "",
                    fmt_table(["conc", "req/s", "p50 ms", "p99 ms", "fail", "ceiling req/s", "ratio"], rows),
                    "",
                ]
            rows = [
                [k, v["tuned_rps"], v["former_rps"], v["rps_change"], v["tuned_p99_ms"], v["former_p99_ms"]]
                for k, v in former["change"].items()
            ]
            lines += [
                "tuned against former:",
                "",
                fmt_table(["point", "tuned req/s", "former req/s", "change", "tuned p99", "former p99"], rows),
                "",
            ]
        for s in per_size.get("swap", []):
            ld = s["load"]
            if s.get("windows"):
                lines.append(swap_window_md(s))
                continue
            lines.append(
                f"swap ({s['workers']} worker(s), c=32, {s['duration_s']} s): {ld['rps']:.0f} req/s, p50 {ld['latency_ms']['p50']:.1f} "
                f"p99 {ld['latency_ms']['p99']:.1f} max {ld['latency_ms']['max']:.0f} ms, failures {ld['failures']}, versions {ld['versions']}, "
                f"publish {_fmt(s['publish_seconds'])} s from t={_fmt(s['publish_started_after_s'])} s, "
                f"peak RSS {s['rss_peak_total'] / 2**30:.2f} GiB (largest process {s['rss_peak_process'] / 2**30:.2f} GiB)"
            )
        if per_size.get("recent"):
            lines.append(recent_md(per_size["recent"]))
        lines.append("")
    if results.get("engine_comparison"):
        from benchmarks.common import fmt_table as _ft

        rows = [
            [k, v["rps"], v["p50_ms"], v["p99_ms"], v["client_cpu_s_per_1k"]] for k, v in results["engine_comparison"].items()
        ]
        lines += [
            "## load generators on the HTTP ceiling (1 worker)",
            "",
            _ft(["engine", "req/s", "p50 ms", "p99 ms", "client CPU s / 1k req"], rows),
            "",
        ]
    lines.append("## targets (1M items, concurrency 32)")
    for k, v in results.get("targets_check", {}).items():
        lines.append(f"- {k}: {v}")
    return "\n".join(lines)


def swap_window_md(s: dict[str, Any]) -> str:
    w, ld = s["windows"], s["load"]

    def part(name: str) -> str:
        x = w[name]
        return (
            f"{name} ({x['seconds']:.1f} s, {x['completed']:,} answers): p50 {x['p50_ms']:.1f} p99 {x['p99_ms']:.1f} "
            f"max {x['max_ms']:.0f} ms, failures {x['failures']}"
        )

    how = "written ahead, moved in" if s.get("publish_ahead") else "published"
    return (
        f"swap ({s['workers']} worker(s), c=32, {how} at t={w['go_at']:.1f} s, publish {_fmt(s['publish_seconds'])} s, new version on /readyz "
        f"{w.get('swap_seen_after_s')} s after; the during run ends {w['margin_s']} s after that"
        f"{'' if w['swap_complete_in_window'] else ' (NOT within the run: figure invalid)'}): {part('during')}; {part('before')}; "
        f"{part('after')}; all: {ld['rps']:.0f} req/s, failures {ld['failures']}, versions {ld['versions']}; "
        f"peak RSS {s['rss_peak_total'] / 2**30:.2f} GiB"
    )


def check_targets(results: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    big = results["sizes"].get("1000000")
    if not big:
        return out
    if big.get("recent"):
        s = big["recent"]["summary"]
        out["recent_items"] = {
            "p99_ms": round(s["recent_items"]["p99_ms"], 2),
            "p99_ok": s["recent_items"]["p99_ms"] < TARGETS["recent_p99_ms_max"],
            "failures": s["recent_items"]["failures"],
            "failures_ok": s["recent_items"]["failures"] == 0,
            "no_recent_p99_ms_vs_today": [
                round(s["no_recent_items"]["p99_ms"], 2),
                round(s["today_no_recent_items"]["p99_ms"], 2),
            ],
        }
    for w in big["workers"]:
        t = w["per_concurrency"].get("32")
        if not t:
            continue
        m = t["model"]
        workers_rss = w["memory_at_end"]["workers_rss"] or [w["memory_at_end"]["max_process_rss"]]
        out[f"workers={w['workers']}"] = {
            "ratio_to_http_ceiling": round(t["ratio_to_http_ceiling"] or 0, 3),
            "ratio_ok": (t["ratio_to_http_ceiling"] or 0) >= TARGETS["ratio_to_http_ceiling_min"],
            "p99_ms": round(m["p99_ms"], 2),
            "p99_ok": m["p99_ms"] < TARGETS["p99_ms_max"],
            "failures": m["failures"],
            "failures_ok": m["failures"] == 0,
            "max_worker_rss_gib": round(max(workers_rss) / 2**30, 3),
            "rss_ok": max(workers_rss) < TARGETS["rss_gb_per_worker_max"] * 1e9,
        }
    for s in big.get("swap", []):
        entry = {"failures": s["load"]["failures"], "ok": s["load"]["failures"] == 0 and s["new_version_answered"]}
        windows = s.get("windows")
        if windows:
            entry["p99_ms_during_swap"] = round(windows["during"]["p99_ms"], 2)
            entry["ok"] = (
                entry["ok"] and windows["swap_complete_in_window"] and windows["during"]["p99_ms"] < TARGETS["swap_p99_ms_max"]
            )
        out[f"swap workers={s['workers']}"] = entry
    return out


# --------------------------------------------------------------------------- main
def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="Serving load benchmark (see the module docstring).")
    sub = p.add_subparsers(dest="cmd")
    cs = sub.add_parser("ceiling-server", help="run the HTTP-ceiling app (used by the benchmark)")
    cs.add_argument("--port", type=int, required=True)
    cs.add_argument("--workers", type=int, default=1)
    rp = sub.add_parser("replot", help="redraw the PNG and summary of a results JSON")
    rp.add_argument("--out", default="serving_load")
    cc = sub.add_parser("compute", help="print the compute ceiling of a model root as JSON")
    cc.add_argument("--model-root", type=Path, required=True)
    cr = sub.add_parser("compute-recent", help="in-process: the inference step on batches of 32 with and without recent items")
    cr.add_argument("--model-root", type=Path, required=True)
    cr.add_argument("--recent", type=int, default=20)
    p.add_argument("--sizes", default="100000,1000000")
    p.add_argument("--concurrency", default="1,8,32,64")
    p.add_argument("--workers", default="1,2")
    p.add_argument("--swap-workers", default=None, help="workers for the swap runs (default: --workers)")
    p.add_argument("--duration", type=float, default=8.0, help="seconds per measured point")
    p.add_argument("--warmup", type=float, default=3.0)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument(
        "--engine", choices=("wrk", "asyncio", "httpx"), default=None, help="default: wrk when installed, else asyncio"
    )
    p.add_argument("--processes", type=int, default=1, help="generator processes (python engines) or wrk threads")
    p.add_argument(
        "--swap-duration", type=float, default=None, help="seconds of load around a publish (default 40 for 100K, 120 for 1M)"
    )
    p.add_argument("--swap-delay", type=float, default=5.0, help="seconds into the swap run before publishing")
    p.add_argument(
        "--swap-windows",
        choices=("on", "off"),
        default="on",
        help="wrk: measure before / during / after the swap as three runs (off: one run over the whole swap run)",
    )
    p.add_argument(
        "--swap-margin", type=float, default=3.0, help="the during run ends this many seconds after /readyz names the new version"
    )
    p.add_argument("--no-swap", action="store_true")
    p.add_argument("--swap-only", action="store_true", help="only the swap runs (no ceiling/model comparison)")
    p.add_argument(
        "--publish-ahead",
        action="store_true",
        help="swap runs: write the new version before the load; under load only move it in and rewrite LATEST",
    )
    p.add_argument("--no-compute", action="store_true")
    p.add_argument(
        "--former-index",
        action="store_true",
        help="also serve each catalog with the former rule's index (benchmarks.former_index), right after the "
        "tuned one, per --workers: the tuned index's throughput change in one run",
    )
    p.add_argument(
        "--recent-items",
        type=int,
        default=0,
        help="N > 0: only the recent-items comparison at concurrency 32 (requests carrying N recent_item_ids on a "
        "version with a history feature, the same without, and today's version without; see measure_recent)",
    )
    p.add_argument("--compare-engines", action="store_true", help="also drive the HTTP ceiling with each load generator")
    p.add_argument("--ready-timeout", type=float, default=900.0)
    p.add_argument("--work-dir", type=Path, default=DEFAULT_WORK_DIR)
    p.add_argument("--out", default="serving_load", help="result name under benchmarks/results/")
    p.add_argument("--quick", action="store_true", help="20K items, concurrency 1,8,32, 1 repeat of 3 s: a smoke run")
    args = p.parse_args(argv)

    if args.cmd == "ceiling-server":
        serve_ceiling("127.0.0.1", args.port, args.workers)
        return 0
    if args.cmd == "replot":
        from benchmarks.common import RESULTS_DIR

        doc = json.loads((RESULTS_DIR / f"{args.out}.json").read_text())
        plot(doc["results"], RESULTS_DIR / f"{args.out}.png")
        print(summary_md(doc["results"]))
        return 0
    if args.cmd == "compute":
        print(json.dumps(compute_ceiling(args.model_root), default=float))
        return 0
    if args.cmd == "compute-recent":
        print(json.dumps(compute_recent(args.model_root, args.recent), default=float))
        return 0

    from benchmarks.common import RESULTS_DIR, describe_machine_line, machine_description, write_results
    from benchmarks.loadgen import wrk_path

    started = time.perf_counter()
    if args.quick:
        args.sizes, args.concurrency, args.repeats, args.duration, args.warmup = "20000", "1,8,32", 1, 3.0, 1.0
        args.swap_duration = args.swap_duration or 25.0
    args.engine = args.engine or ("wrk" if wrk_path() else "asyncio")
    sizes = [int(s) for s in args.sizes.split(",") if s]
    args.concurrency = [int(c) for c in args.concurrency.split(",") if c]
    workers_list = [int(w) for w in args.workers.split(",") if w]
    swap_workers = [int(w) for w in (args.swap_workers or args.workers).split(",") if w]
    args.work_dir.mkdir(parents=True, exist_ok=True)
    logs = args.work_dir / "logs"
    logs.mkdir(exist_ok=True)
    machine = machine_description()
    loads = [load_average()]
    results: dict[str, Any] = {
        "engine": args.engine,
        "duration_s": args.duration,
        "repeats": args.repeats,
        "concurrency": args.concurrency,
        "k": K,
        "request": "POST /v1/recommendations {user_id: known user (1,000 cycled), k: 10} (exclude_seen default true)",
        "targets": TARGETS,
        "machine_line": describe_machine_line(machine),
        "server_settings": "recsys serve defaults (log level info, micro-batch 2 ms / 64, max_concurrency 256, timeout 5 s) with RECSYS_POLL_INTERVAL_S=1",
        "sizes": {},
    }
    if args.compare_engines:
        results["engine_comparison"] = compare_engines(args, logs)
    for size in sizes:
        if args.recent_items:
            recent = measure_recent(size, args.work_dir, args, logs)
            results["sizes"][str(size)] = {
                "catalog": recent["catalogs"]["history_version"],
                "workers": [],
                "swap": [],
                "recent": recent,
            }
            loads.append(load_average())
            continue
        per: dict[str, Any] = {"catalog": ensure_catalog(args.work_dir, size, logs), "workers": [], "swap": []}
        root = Path(per["catalog"]["model_root"])
        if not args.no_compute:
            log(f"compute ceiling for {size:,} items (load {load_average()})")
            done = subprocess.run(
                [sys.executable, "-m", "benchmarks.serving_load", "compute", "--model-root", str(root)],
                cwd=REPO,
                capture_output=True,
                text=True,
                timeout=1800,
                check=True,
                env=server_env(),
            )
            per["compute_ceiling"] = json.loads(done.stdout.strip().splitlines()[-1])
        former_root = None
        if args.former_index and not args.swap_only:
            per["former_index"] = {"catalog": former_index_catalog(args.work_dir, size, root, logs), "workers": []}
            former_root = Path(per["former_index"]["catalog"]["model_root"])
        for w in [] if args.swap_only else workers_list:
            per["workers"].append(measure_workers(size, root, w, args, logs))
            loads.append(load_average())
            if former_root is not None:  # the same catalog, the former rule's index: measured next
                per["former_index"]["workers"].append(measure_workers(size, former_root, w, args, logs))
                loads.append(load_average())
        if former_root is not None:
            per["former_index"]["change"] = former_change(per)
        if not args.no_swap:
            for w in swap_workers:
                args_swap = argparse.Namespace(**vars(args))
                args_swap.swap_duration = args.swap_duration or (40.0 if size <= 200_000 else 120.0)
                per["swap"].append(swap_run(size, args.work_dir, w, args_swap, logs))
                loads.append(load_average())
        results["sizes"][str(size)] = per
    results["load_average_seen"] = {
        "min_1m": min(x[0] for x in loads if x),
        "max_1m": max(x[0] for x in loads if x),
        "samples": loads,
    }
    results["targets_check"] = check_targets(results)
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    plot(results, RESULTS_DIR / f"{args.out}.png")
    json_path, md_path = write_results(args.out, results, summary_md(results), machine=machine, started=started)
    log(f"wrote {json_path}, {md_path} and {args.out}.png")
    print(summary_md(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
