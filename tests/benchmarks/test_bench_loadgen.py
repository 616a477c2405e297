"""The load generator (wrk driven by a generated Lua script): loopback-only targets, bounded
runs, and failure counting against a tiny local stub server (some answers 500, some too slow)."""

import json
import subprocess
import sys
import threading
import time
from contextlib import contextmanager, suppress
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from benchmarks import loadgen
from benchmarks.loadgen import NotLoopbackError, RequestSpec, loopback_target, run_wrk
from benchmarks.loadgen.target import bounded_duration

REPO = Path(__file__).resolve().parents[2]


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
            time.sleep(self.server.slow_s)  # type: ignore[attr-defined]  # slow_s is set on the server by stub_server
            with suppress(OSError):  # wrk gave up on the answer and closed the connection
                self._answer(200, b"{}")
        else:
            self._answer(404, b"{}")

    do_GET = _route  # noqa: N815  (the method names http.server dispatches to)
    do_POST = _route  # noqa: N815  (the same)


@contextmanager
def stub_server(slow_s: float = 2.0):
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.daemon_threads = True
    server.slow_s = slow_s  # type: ignore[attr-defined]  # an attribute of our own on the stdlib server
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


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


def test_run_refuses_before_wrk_starts(monkeypatch):
    import subprocess as sp

    def boom(*a, **k):  # pragma: no cover - must not be reached
        raise AssertionError("wrk was started")

    monkeypatch.setattr(sp, "Popen", boom)
    with pytest.raises(NotLoopbackError):
        run_wrk("http://10.1.2.3:80", [RequestSpec()], concurrency=1, duration_s=1)


def test_cli_refuses_non_loopback():
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.loadgen", "--url", "http://203.0.113.7:80", "--duration", "1"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "non-loopback" in done.stderr


def test_durations_are_required_positive_and_capped():
    with pytest.raises(ValueError):
        bounded_duration(0)
    with pytest.raises(ValueError):
        run_wrk("http://127.0.0.1:9", [RequestSpec()], concurrency=1, duration_s=-1)
    with pytest.raises(ValueError):
        run_wrk("http://127.0.0.1:9", [], concurrency=1, duration_s=1)
    assert bounded_duration(10_000.0) == loadgen.HARD_MAX_DURATION_S


# --------------------------------------------------------------------------- counting
def test_wrk_script_escapes_bodies():
    script = loadgen.wrk_script([RequestSpec.post_json("/v1/x", {"q": 'a"b\\c', "n": "é"})], "", True)
    assert '\\"' in script and "\\\\" in script
    assert "__SPECS__" not in script and "count_versions = true" in script


def test_wrk_counts_status_failures_and_timeouts():
    assert loadgen.wrk_path() is not None, "wrk is missing: the test command installs it with benchmarks/install_wrk.sh"
    specs = [RequestSpec("GET", "/ok"), RequestSpec("POST", "/fail", b"{}")]
    with stub_server() as url:
        res = run_wrk(url, specs, concurrency=2, duration_s=1, timeout_s=1, count_versions=True)
    assert res.engine == "wrk" and res.completed > 10 and res.stop_reason == "duration"
    assert res.failure_kinds.get("status_500", 0) >= 1 and res.ok >= 1
    assert abs(res.ok - res.failure_kinds["status_500"]) <= 2  # the two alternate on each connection
    assert res.versions.get("7", 0) == res.completed
    assert res.status_counts == {"200": res.ok, "500": res.failure_kinds["status_500"]}
    json.dumps(res.to_dict())
    with stub_server(slow_s=1.3) as url:  # answers after wrk's 1 s timeout: counted as timeouts, never ok
        res = run_wrk(url, [RequestSpec("GET", "/slow")], concurrency=1, duration_s=2, timeout_s=1)
    assert res.failure_kinds.get("timeout", 0) >= 1 and res.ok == 0 and res.failures >= 1


def test_wrk_counts_versions_per_request_in_turn():
    specs = [RequestSpec("GET", "/ok"), RequestSpec("GET", "/ok2")]
    with stub_server() as url:
        res = run_wrk(url, specs, concurrency=2, duration_s=1, timeout_s=1, threads=2, count_versions=True)
    assert res.processes == 2 and res.failures == 0 and res.ok == res.completed > 10
    assert set(res.versions) == {"7", "8"} and sum(res.versions.values()) == res.completed
    assert abs(res.versions["7"] - res.versions["8"]) <= 4  # each connection alternates


def test_nothing_listening_is_a_clear_error():
    with stub_server() as url:
        pass  # closed: nothing listens on that port any more
    with pytest.raises(ConnectionRefusedError, match=r"could not connect to http://127\.0\.0\.1:"):
        run_wrk(url, [RequestSpec()], concurrency=2, duration_s=1, timeout_s=1)


def test_stop_event_ends_the_run_early():
    stop = threading.Event()
    threading.Timer(0.5, stop.set).start()
    with stub_server() as url:
        start = time.perf_counter()
        res = run_wrk(url, [RequestSpec("GET", "/ok")], concurrency=2, duration_s=30, timeout_s=1, stop=stop)
        elapsed = time.perf_counter() - start
    assert res.stop_reason == "stopped" and res.failures == 0 and res.ok > 0
    assert elapsed < 5 and res.wall_s < 5
