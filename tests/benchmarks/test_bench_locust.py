"""The storefront locustfile: its threshold logic and a real headless run against a stub.

Importing locust monkey-patches the standard library (gevent), so the locustfile is
only ever imported in child processes, never in the pytest process.
"""

import importlib.util
import json
import re
import subprocess
import sys
import threading
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
LOCUSTFILE = REPO / "benchmarks" / "locustfile.py"

pytestmark = pytest.mark.skipif(importlib.util.find_spec("locust") is None, reason="locust is not installed")


def _locust_exe() -> list[str]:
    exe = Path(sys.executable).parent / "locust"
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "locust"]


PURE_CHECKS = r"""
import json, random, types
import benchmarks.locustfile as L
out = {}
out["mix"] = L.parse_mix("known=3, similar=1")
try:
    L.parse_mix("known=1,bogus=2"); out["bad_mix"] = "accepted"
except ValueError:
    out["bad_mix"] = "refused"
try:
    L.parse_mix("known=0"); out["zero_mix"] = "accepted"
except ValueError:
    out["zero_mix"] = "refused"
tv = L.threshold_violations
out["pass"] = tv(1000, 1, 20.0, max_fail_ratio=0.001, max_p99_ms=25)
out["too_many_failures"] = tv(1000, 2, 20.0, max_fail_ratio=0.001, max_p99_ms=25)
out["too_slow"] = tv(1000, 0, 26.0, max_fail_ratio=0.0, max_p99_ms=25)
out["no_latency_check"] = tv(1000, 0, 9999.0, max_fail_ratio=0.0, max_p99_ms=0)
out["no_requests"] = tv(0, 0, None, max_fail_ratio=0.0, max_p99_ms=25)
out["visitor"] = L.visitor_features(
    [{"name": "user_id", "dtype": "string"}, {"name": "age", "dtype": "float32", "default": 40.0},
     {"name": "country", "dtype": "string"}, {"name": "tags", "dtype": "string", "kind": "multi_categorical"}],
    {"country": ["de"]}, random.Random(1))
out["answers"] = [
    L.check_answer(200, {"items": [{}] * 10}, 10), L.check_answer(200, {"items": [{}] * 11}, 10),
    L.check_answer(500, None, 10), L.check_answer(200, {"results": [{"items": []}] * 2}, 10, batch=2),
    L.check_answer(200, {"results": [{"items": []}]}, 10, batch=2),
]

class Total:
    def __init__(self, n, f, p99):
        self.num_requests, self.num_failures, self._p99 = n, f, p99
        self.fail_ratio = f / n if n else 0.0
    def get_response_time_percentile(self, q):
        assert q == 0.99
        return self._p99

def verdict(n, f, p99, **opts):
    o = dict(max_fail_ratio=0.01, max_p99_ms=25.0, min_requests=1); o.update(opts)
    env = types.SimpleNamespace(parsed_options=types.SimpleNamespace(**o), stats=types.SimpleNamespace(total=Total(n, f, p99)), process_exit_code=None)
    L._verdict(env)
    return env.process_exit_code

out["verdicts"] = [verdict(100, 0, 10), verdict(100, 2, 10), verdict(100, 0, 30), verdict(100, 0, 30, max_p99_ms=0), verdict(5, 0, 1, min_requests=10)]
print("RESULT " + json.dumps(out))
"""


def test_threshold_logic_and_helpers():
    done = subprocess.run([sys.executable, "-c", PURE_CHECKS], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr[-2000:]
    out = json.loads(next(ln for ln in done.stdout.splitlines() if ln.startswith("RESULT "))[7:])
    assert out["mix"] == {"known": 3, "visitor": 0, "similar": 1, "batch": 0}
    assert out["bad_mix"] == "refused" and out["zero_mix"] == "refused"
    assert out["pass"] == []
    assert len(out["too_many_failures"]) == 1 and "failure ratio" in out["too_many_failures"][0]
    assert len(out["too_slow"]) == 1 and "p99 26 ms above 25 ms" in out["too_slow"][0]
    assert out["no_latency_check"] == []
    assert any("only 0 requests" in p for p in out["no_requests"])
    v = out["visitor"]
    assert "user_id" not in v and v["country"] == "de" and 20.0 <= v["age"] <= 60.0 and isinstance(v["tags"], list)
    assert out["answers"][0] is None and out["answers"][1] == "11 items for k=10"
    assert out["answers"][2] == "HTTP 500" and out["answers"][3] is None and "1 results for 2" in out["answers"][4]
    assert out["verdicts"] == [0, 1, 1, 0, 1]


# --------------------------------------------------------------------------- a real run against a stub storefront
class _Storefront(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    counter = 0
    lock = threading.Lock()

    def log_message(self, *args):
        pass

    def _json(self, status: int, payload) -> None:
        body = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        if self.path == "/v1/model":
            self._json(
                200,
                {
                    "model_version": "1",
                    "query_inputs": [
                        {"name": "user_id", "dtype": "string"},
                        {"name": "age", "dtype": "float32", "default": 30.0},
                    ],
                },
            )
        elif self.path.startswith("/v1/users"):
            self._json(200, {"user_ids": ["u1", "u2", "u3"]})
        elif re.match(r"^/v1/items/[^/]+/similar", self.path):
            self._json(200, {"items": [{"item_id": "i2"}]})
        else:
            self._json(404, {"error": {"code": "not_found"}})

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
        with self.lock:
            type(self).counter += 1
            n = type(self).counter
        if self.path == "/v1/recommendations/batch":
            self._json(200, {"results": [{"items": [{"item_id": "i1"}]} for _ in body["requests"]]})
        elif self.path == "/v1/recommendations":
            if n % 4 == 0:  # every 4th: a server error
                self._json(500, {"error": {"code": "internal_error"}})
            else:
                self._json(200, {"items": [{"item_id": "i1"}, {"item_id": "i2"}]})
        else:
            self._json(404, {})


@contextmanager
def storefront():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Storefront)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def _run_locust(host: str, tmp_path: Path, *extra: str) -> subprocess.CompletedProcess:
    cmd = [
        *_locust_exe(),
        "-f",
        str(LOCUSTFILE),
        "--host",
        host,
        "--headless",
        "--users",
        "4",
        "--spawn-rate",
        "4",
        "--run-time",
        "2s",
        "--stop-timeout",
        "1",
        "--think-ms",
        "0,5",
        "--only-summary",
        "--seed",
        "1",
        *extra,
    ]
    return subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=90)


def test_headless_run_exit_code_follows_thresholds(tmp_path):
    with storefront() as host:
        lenient = _run_locust(host, tmp_path, "--max-fail-ratio", "0.5", "--max-p99-ms", "5000")
        strict = _run_locust(host, tmp_path, "--max-fail-ratio", "0.01")
    assert lenient.returncode == 0, lenient.stderr[-3000:]
    assert "thresholds passed" in lenient.stderr
    assert "3 known users" in lenient.stderr  # discovered through GET /v1/users
    # failures were made (every 4th recommendation is a 500) and counted, but tolerated
    assert re.search(r"POST /v1/recommendations \[known user\]\s+\d+\s+[1-9]\d*\(", lenient.stdout + lenient.stderr)
    assert strict.returncode == 1, strict.stderr[-3000:]
    assert "thresholds FAILED" in strict.stderr and "failure ratio" in strict.stderr
