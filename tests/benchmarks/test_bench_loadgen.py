"""The load generator: percentiles, loopback-only targets, and exact failure counting
against a tiny local stub server (some answers 500, some too slow)."""

import json
import math
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))  # the repo root: `benchmarks` is not installed

from benchmarks import loadgen  # noqa: E402
from benchmarks.loadgen import NotLoopbackError, RequestSpec, loopback_target, percentile, run_python, run_wrk  # noqa: E402


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, like uvicorn

    def log_message(self, *args):  # quiet
        pass

    def _answer(self, status: int, body: bytes, version: str = "7") -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("X-Model-Version", version)
        self.end_headers()
        self.wfile.write(body)

    def _route(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        if self.path.startswith("/ok"):
            self._answer(200, b'{"items": []}', "8" if self.path == "/ok2" else "7")
        elif self.path.startswith("/fail"):
            self._answer(500, b'{"error": {"code": "internal_error"}}')
        elif self.path.startswith("/slow"):
            time.sleep(self.server.slow_s)  # type: ignore[attr-defined]
            try:
                self._answer(200, b"{}")
            except OSError:
                pass
        else:
            self._answer(404, b"{}")

    do_GET = _route
    do_POST = _route


@contextmanager
def stub_server(slow_s: float = 2.0):
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.daemon_threads = True
    server.slow_s = slow_s  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


# --------------------------------------------------------------------------- percentiles
@pytest.mark.parametrize("n", [1, 2, 5, 100, 1001])
def test_percentile_matches_numpy(n):
    rng = np.random.default_rng(n)
    values = sorted(rng.exponential(5.0, n).tolist())
    for q in (0, 1, 50, 90, 95, 99, 99.9, 100):
        assert percentile(values, q) == pytest.approx(float(np.percentile(values, q)), rel=1e-12, abs=1e-12)


def test_percentile_edges():
    assert math.isnan(percentile([], 50))
    assert percentile([3.0], 99) == 3.0
    assert percentile([1.0, 2.0], 50) == 1.5
    with pytest.raises(ValueError):
        percentile([1.0], 101)
    s = loadgen.summarize_latencies([0.001, 0.002, 0.003, 0.004])  # seconds in, ms out
    assert s["p50"] == pytest.approx(2.5) and s["max"] == pytest.approx(4.0) and s["mean"] == pytest.approx(2.5)


# --------------------------------------------------------------------------- loopback only
@pytest.mark.parametrize(
    "url",
    [
        "http://10.0.0.1:8000",
        "http://192.168.1.5",
        "http://example.com:8000",
        "http://8.8.8.8",
        "https://127.0.0.1:8443",  # only plain http on loopback
        "ftp://127.0.0.1",
        "http://[2001:db8::1]:80",
        "http://0.0.0.0:8000",
        "http://user:pw@127.0.0.1:8000",
        "127.0.0.1:8000",  # no scheme
    ],
)
def test_refuses_non_loopback(url):
    with pytest.raises(NotLoopbackError):
        loopback_target(url)


@pytest.mark.parametrize(
    "url,host,port",
    [
        ("http://127.0.0.1:8000", "127.0.0.1", 8000),
        ("http://localhost:9", "127.0.0.1", 9),
        ("http://[::1]:81", "::1", 81),
        ("http://127.8.9.10", "127.8.9.10", 80),
    ],
)
def test_accepts_loopback(url, host, port):
    assert loopback_target(url)[:2] == (host, port)


def test_run_refuses_before_any_connection(monkeypatch):
    import asyncio

    def boom(*a, **k):  # pragma: no cover - must not be reached
        raise AssertionError("a connection was attempted")

    monkeypatch.setattr(asyncio, "open_connection", boom)
    with pytest.raises(NotLoopbackError):
        run_python("http://10.1.2.3:80", [RequestSpec()], concurrency=1, requests=1)
    with pytest.raises(NotLoopbackError):
        run_wrk("http://10.1.2.3:80", [RequestSpec()], concurrency=1, duration_s=1)


def test_cli_refuses_non_loopback():
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.loadgen", "--url", "http://203.0.113.7:80", "--requests", "1"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "non-loopback" in done.stderr


def test_bounds_are_required_and_capped():
    with pytest.raises(ValueError):
        loadgen._bounds(None, None)
    with pytest.raises(ValueError):
        loadgen._bounds(0, None)
    total, dur = loadgen._bounds(None, 10_000.0)
    assert dur == loadgen.HARD_MAX_DURATION_S and total == loadgen.HARD_MAX_REQUESTS


# --------------------------------------------------------------------------- counting
@pytest.mark.parametrize("engine", ["asyncio", "httpx"])
def test_counts_failures_exactly(engine):
    specs = [
        RequestSpec("GET", "/ok"),
        RequestSpec("POST", "/fail", b"{}"),
        RequestSpec("GET", "/slow"),
        RequestSpec("GET", "/ok2"),
    ]
    with stub_server(slow_s=1.5) as url:
        res = run_python(url, specs, concurrency=2, requests=12, duration_s=30, timeout_s=0.3, engine=engine)
    assert res.sent == 12 and res.stop_reason == "requests"
    assert res.ok == 6  # 3 x /ok + 3 x /ok2
    assert res.failure_kinds == {"status_500": 3, "timeout": 3}
    assert res.failures == 6 and res.failure_ratio == pytest.approx(0.5)
    assert res.completed == 9  # answered: ok and 500; timeouts have no latency
    assert res.status_counts == {"200": 6, "500": 3}
    assert res.versions == {"7": 6, "8": 3}  # from X-Model-Version (the 500s carry "7")
    assert res.latency_ms["p99"] < 300 and res.rps > 0
    json.dumps(res.to_dict())


def test_connection_errors_are_counted():
    with stub_server() as url:
        pass  # closed: nothing listens on that port any more
    res = run_python(url, [RequestSpec()], concurrency=2, requests=6, duration_s=10, timeout_s=1.0)
    assert res.sent == 6 and res.ok == 0 and res.completed == 0
    assert res.failure_kinds == {"connect": 6}


def test_duration_bound_stops_the_run():
    with stub_server() as url:
        start = time.perf_counter()
        res = run_python(url, [RequestSpec("GET", "/ok")], concurrency=2, requests=10_000_000, duration_s=0.5, timeout_s=1.0)
        elapsed = time.perf_counter() - start
    assert res.stop_reason == "duration" and res.failures == 0 and res.ok > 0
    assert elapsed < 5


def test_two_processes_merge_their_counts():
    specs = [RequestSpec("GET", "/ok"), RequestSpec("GET", "/fail")]
    with stub_server() as url:
        res = run_python(url, specs, concurrency=2, requests=20, duration_s=30, timeout_s=2.0, processes=2)
    assert res.processes == 2 and res.sent == 20
    assert res.ok + res.failure_kinds.get("status_500", 0) == 20 and res.failure_kinds.get("status_500", 0) >= 1


def test_wrk_script_escapes_bodies():
    script = loadgen.wrk_script([RequestSpec.post_json("/v1/x", {"q": 'a"b\\c', "n": "é"})], "", True)
    assert '\\"' in script and "\\\\" in script
    assert "__SPECS__" not in script and "count_versions = true" in script


def test_wrk_counts_status_failures_and_timeouts():
    assert loadgen.wrk_path() is not None, "wrk is missing: the test command installs it with benchmarks/install_wrk.sh"
    specs = [RequestSpec("GET", "/ok"), RequestSpec("POST", "/fail", b"{}")]
    with stub_server() as url:
        res = run_wrk(url, specs, concurrency=2, duration_s=1, timeout_s=1, count_versions=True)
    assert res.engine == "wrk" and res.completed > 10
    assert res.failure_kinds.get("status_500", 0) >= 1 and res.ok >= 1
    assert abs(res.ok - res.failure_kinds["status_500"]) <= 2  # the two alternate on each connection
    assert res.versions.get("7", 0) == res.completed
    with stub_server(slow_s=1.3) as url:  # answers after wrk's 1 s timeout: counted as timeouts, never ok
        res = run_wrk(url, [RequestSpec("GET", "/slow")], concurrency=1, duration_s=2, timeout_s=1)
    assert res.failure_kinds.get("timeout", 0) >= 1 and res.ok == 0 and res.failures >= 1
