"""A bounded, loopback-only HTTP load generator (closed loop, fixed concurrency).

    python -m benchmarks.loadgen --url http://127.0.0.1:8000 --path /v1/recommendations \\
        --body '{"user_id": "u0000001", "k": 10}' --concurrency 32 --requests 20000 --duration 30 \\
        [--engine asyncio|httpx|wrk] [--processes 2] [--timeout 10]

``concurrency`` clients each send a request, wait for the answer, and send the
next (a closed loop: latency is measured from send to last byte; a slow server
gets fewer requests, it is not flooded). Every run is bounded twice: it stops
after ``requests`` requests *or* ``duration`` seconds, whichever comes first
(wrk only knows a duration). Only loopback targets are accepted
(127.0.0.0/8, ::1, ``localhost``); anything else is refused before a socket is
opened.

Counted per run: requests sent and completed, failures by kind (``status_NNN``
for any non-2xx answer, ``timeout``, ``connect``, ``read`` for a connection
lost mid-request, ``other``), latency percentiles (p50/p95/p99/max, ms, over
every answered request), requests per second (answered / elapsed), the answers
per ``X-Model-Version`` header (which versions answered) and the status codes.

Engines:

- ``asyncio`` (default): a minimal HTTP/1.1 keep-alive client on asyncio
  streams (uvloop when installed); about 3x cheaper per request than httpx,
  which matters on a 2-core machine shared with the server.
- ``httpx``: ``httpx.AsyncClient`` (the same loop, the common client library).
- ``wrk``: the C load generator (Debian package ``wrk``, see
  ``benchmarks/install_wrk.sh``) driven by a generated Lua script; far cheaper
  per request than any Python client, so it is the one used for the ceilings.

``processes > 1`` splits the connections over that many generator processes
(asyncio/httpx), for when one Python process cannot keep up. With only 2 cores
shared with the server this rarely helps: the generator then takes CPU from the
server it measures. The generator's own CPU time is reported (``client_cpu_s``)
so that cost is visible.
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

HARD_MAX_DURATION_S = 900.0  # no run lasts longer than this, whatever is asked
HARD_MAX_REQUESTS = 10_000_000


# --------------------------------------------------------------------------- target checks
class NotLoopbackError(ValueError):
    """The target is not a loopback address: this generator refuses to send anything."""


def loopback_target(url: str) -> tuple[str, int, str]:
    """(host, port, base path) of a loopback http:// URL; raises :class:`NotLoopbackError` otherwise."""
    parts = urlsplit(url)
    if parts.scheme != "http":
        raise NotLoopbackError(f"only plain http:// on loopback is supported, not {parts.scheme or 'no'} scheme: {url!r}")
    host = parts.hostname or ""
    if host == "localhost":
        host = "127.0.0.1"
    try:
        addr = ipaddress.ip_address(host)
    except ValueError as exc:
        raise NotLoopbackError(f"refusing non-loopback host {host!r} (give 127.0.0.1 or ::1)") from exc
    if not addr.is_loopback:
        raise NotLoopbackError(f"refusing non-loopback address {host} (this generator only loads 127.0.0.0/8 and ::1)")
    if parts.username or parts.password:
        raise NotLoopbackError("credentials in the URL are not supported")
    try:
        port = parts.port or 80
    except ValueError as exc:
        raise NotLoopbackError(f"bad port in {url!r}") from exc
    return str(addr), port, parts.path.rstrip("/")


# --------------------------------------------------------------------------- requests and results
@dataclass(frozen=True)
class RequestSpec:
    """One request the clients send (they cycle through a list of these)."""

    method: str = "GET"
    path: str = "/"
    body: bytes | None = None
    content_type: str = "application/json"

    @staticmethod
    def post_json(path: str, payload: Any) -> RequestSpec:
        return RequestSpec("POST", path, json.dumps(payload, separators=(",", ":")).encode())


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0-100) of already sorted values, linear
    interpolation between closest ranks (numpy's default method); NaN if empty."""
    n = len(sorted_values)
    if n == 0:
        return float("nan")
    if not 0 <= q <= 100:
        raise ValueError("q must be within 0..100")
    pos = (n - 1) * q / 100.0
    lo = math.floor(pos)
    hi = min(lo + 1, n - 1)
    frac = pos - lo
    return float(sorted_values[lo]) + (float(sorted_values[hi]) - float(sorted_values[lo])) * frac


@dataclass
class LoadResult:
    engine: str
    url: str
    concurrency: int
    processes: int
    elapsed_s: float
    sent: int
    completed: int  # answered with any status
    ok: int  # 2xx
    failures: int  # non-2xx + timeouts + connection errors
    failure_kinds: dict[str, int]
    status_counts: dict[str, int]
    versions: dict[str, int]  # X-Model-Version -> answers
    latency_ms: dict[str, float]  # p50, p95, p99, max, mean over answered requests
    rps: float  # answered / elapsed
    client_cpu_s: float | None = None
    stop_reason: str = ""
    notes: list[str] = field(default_factory=list)

    @property
    def failure_ratio(self) -> float:
        return self.failures / self.sent if self.sent else 0.0

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["failure_ratio"] = self.failure_ratio
        return out


def summarize_latencies(latencies_s: Sequence[float]) -> dict[str, float]:
    vals = sorted(latencies_s)
    ms = [v * 1000.0 for v in vals]
    return {
        "p50": percentile(ms, 50),
        "p95": percentile(ms, 95),
        "p99": percentile(ms, 99),
        "max": ms[-1] if ms else float("nan"),
        "mean": sum(ms) / len(ms) if ms else float("nan"),
    }


@dataclass
class _Tally:
    sent: int = 0
    latencies: list[float] = field(default_factory=list)
    ok: int = 0
    failures: Counter = field(default_factory=Counter)
    statuses: Counter = field(default_factory=Counter)
    versions: Counter = field(default_factory=Counter)

    def claim(self, total: int) -> int | None:
        """The number of the next request to send, or None once ``total`` were sent."""
        if self.sent >= total:
            return None
        self.sent += 1
        return self.sent - 1

    def answered(self, status: int, latency: float, version: str | None) -> None:
        self.latencies.append(latency)
        self.statuses[str(status)] += 1
        if version:
            self.versions[version] += 1
        if 200 <= status < 300:
            self.ok += 1
        else:
            self.failures[f"status_{status}"] += 1

    def merge(self, other: dict[str, Any]) -> None:
        self.sent += other["sent"]
        self.latencies.extend(other["latencies"])
        self.ok += other["ok"]
        self.failures.update(other["failures"])
        self.statuses.update(other["statuses"])
        self.versions.update(other["versions"])

    def as_dict(self) -> dict[str, Any]:
        return {
            "sent": self.sent,
            "latencies": self.latencies,
            "ok": self.ok,
            "failures": dict(self.failures),
            "statuses": dict(self.statuses),
            "versions": dict(self.versions),
        }


def _bounds(requests: int | None, duration_s: float | None) -> tuple[int, float]:
    if requests is None and duration_s is None:
        raise ValueError("give a request count, a duration, or both")
    if requests is not None and requests < 1:
        raise ValueError("requests must be positive")
    if duration_s is not None and duration_s <= 0:
        raise ValueError("duration must be positive")
    total = min(requests if requests is not None else HARD_MAX_REQUESTS, HARD_MAX_REQUESTS)
    dur = min(duration_s if duration_s is not None else HARD_MAX_DURATION_S, HARD_MAX_DURATION_S)
    return total, dur


# --------------------------------------------------------------------------- asyncio engine (raw HTTP/1.1)
class _Conn:
    """One keep-alive HTTP/1.1 connection on asyncio streams."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def ensure(self) -> None:
        if self.writer is None or self.writer.is_closing():
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None

    async def request(self, raw: bytes) -> tuple[int, str | None]:
        """Send one prepared request, read the whole answer; (status, X-Model-Version)."""
        assert self.reader is not None and self.writer is not None
        self.writer.write(raw)
        head = await self.reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        length: int | None = None
        chunked = close = False
        version = None
        for line in lines[1:]:
            if not line:
                continue
            name, _, value = line.partition(":")
            name = name.strip().lower()
            value = value.strip()
            if name == "content-length":
                length = int(value)
            elif name == "transfer-encoding" and "chunked" in value.lower():
                chunked = True
            elif name == "connection" and value.lower() == "close":
                close = True
            elif name == "x-model-version":
                version = value
        if chunked:
            while True:
                size = int((await self.reader.readuntil(b"\r\n")).split(b";")[0], 16)
                await self.reader.readexactly(size + 2)
                if size == 0:
                    break
        elif length is not None:
            await self.reader.readexactly(length)
        else:  # body until close
            await self.reader.read()
            close = True
        if close:
            self.close()
        return status, version


def _raw_request(spec: RequestSpec, host: str, port: int, base: str) -> bytes:
    headers = [f"{spec.method} {base}{spec.path} HTTP/1.1", f"Host: {host}:{port}", "User-Agent: recsys-loadgen", "Accept: */*"]
    body = spec.body or b""
    if spec.body is not None:
        headers += [f"Content-Type: {spec.content_type}", f"Content-Length: {len(body)}"]
    return ("\r\n".join(headers) + "\r\n\r\n").encode("latin-1") + body


def _failure_kind(exc: BaseException) -> str:
    if isinstance(exc, (TimeoutError, asyncio.TimeoutError)):
        return "timeout"
    if isinstance(exc, ConnectionRefusedError):
        return "connect"
    if isinstance(exc, (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError)):
        return "read"
    name = type(exc).__name__
    if "Timeout" in name:
        return "timeout"
    if "Connect" in name:
        return "connect"
    if name in ("ReadError", "RemoteProtocolError", "WriteError", "LocalProtocolError"):
        return "read"
    return "other"


async def _run_asyncio(
    url: str, specs: Sequence[RequestSpec], concurrency: int, total: int, duration_s: float, timeout_s: float, offset: int
) -> dict[str, Any]:
    host, port, base = loopback_target(url)
    raws = [_raw_request(s, host, port, base) for s in specs]
    tally = _Tally()
    loop = asyncio.get_running_loop()
    deadline = loop.time() + duration_s

    async def client() -> None:
        conn = _Conn(host, port)
        try:
            while loop.time() < deadline and (i := tally.claim(total)) is not None:
                raw = raws[(i + offset) % len(raws)]
                start = time.perf_counter()
                try:
                    async with asyncio.timeout(min(timeout_s, max(deadline - loop.time(), 0.001) + timeout_s)):
                        await conn.ensure()
                        status, version = await conn.request(raw)
                except Exception as exc:
                    conn.close()
                    tally.failures[_failure_kind(exc)] += 1
                    if isinstance(exc, ConnectionRefusedError):
                        await asyncio.sleep(0.01)  # do not spin on a dead server
                    continue
                tally.answered(status, time.perf_counter() - start, version)
        finally:
            conn.close()

    await asyncio.gather(*(client() for _ in range(concurrency)))
    return tally.as_dict()


async def _run_httpx(
    url: str, specs: Sequence[RequestSpec], concurrency: int, total: int, duration_s: float, timeout_s: float, offset: int
) -> dict[str, Any]:
    import httpx

    host, port, base = loopback_target(url)
    root = f"http://{host if ':' not in host else f'[{host}]'}:{port}{base}"
    tally = _Tally()
    loop = asyncio.get_running_loop()
    deadline = loop.time() + duration_s
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=root, limits=limits, timeout=timeout_s, trust_env=False) as http:

        async def client() -> None:
            while loop.time() < deadline and (i := tally.claim(total)) is not None:
                spec = specs[(i + offset) % len(specs)]
                start = time.perf_counter()
                try:
                    headers = {"content-type": spec.content_type} if spec.body is not None else None
                    resp = await http.request(spec.method, spec.path, content=spec.body, headers=headers)
                except Exception as exc:
                    tally.failures[_failure_kind(exc)] += 1
                    if "Connect" in type(exc).__name__:
                        await asyncio.sleep(0.01)
                    continue
                tally.answered(resp.status_code, time.perf_counter() - start, resp.headers.get("x-model-version"))

        await asyncio.gather(*(client() for _ in range(concurrency)))
    return tally.as_dict()


def _process_main(
    engine: str,
    url: str,
    specs: list[RequestSpec],
    concurrency: int,
    total: int,
    duration_s: float,
    timeout_s: float,
    offset: int,
) -> dict[str, Any]:
    """Entry point of one generator process (also used in-process when processes == 1)."""
    runner = _run_asyncio if engine == "asyncio" else _run_httpx
    try:
        import uvloop

        policy_runner = uvloop.run
    except ImportError:  # pragma: no cover - uvloop comes with uvicorn[standard]
        policy_runner = asyncio.run
    cpu0 = time.process_time()
    out = policy_runner(runner(url, specs, concurrency, total, duration_s, timeout_s, offset))
    out["cpu_s"] = time.process_time() - cpu0
    return out


def run_python(
    url: str,
    specs: Sequence[RequestSpec],
    *,
    concurrency: int,
    requests: int | None = None,
    duration_s: float | None = None,
    timeout_s: float = 10.0,
    engine: str = "asyncio",
    processes: int = 1,
) -> LoadResult:
    """Closed-loop load with the asyncio or httpx engine, in this process or ``processes`` processes."""
    loopback_target(url)
    if not specs:
        raise ValueError("no requests to send")
    if concurrency < 1:
        raise ValueError("concurrency must be at least 1")
    if engine not in ("asyncio", "httpx"):
        raise ValueError(f"unknown python engine {engine!r}")
    total, dur = _bounds(requests, duration_s)
    processes = max(1, min(processes, concurrency))
    specs = list(specs)
    start = time.perf_counter()
    tally = _Tally()
    cpu = 0.0
    if processes == 1:
        part = _process_main(engine, url, specs, concurrency, total, dur, timeout_s, 0)
        tally.merge(part)
        cpu += part["cpu_s"]
    else:
        import multiprocessing as mp
        from concurrent.futures import ProcessPoolExecutor

        conc = [concurrency // processes + (1 if i < concurrency % processes else 0) for i in range(processes)]
        totals = [total // processes + (1 if i < total % processes else 0) for i in range(processes)]
        with ProcessPoolExecutor(processes, mp_context=mp.get_context("spawn")) as pool:
            futures = [
                pool.submit(_process_main, engine, url, specs, conc[i], totals[i], dur, timeout_s, i * 7919)
                for i in range(processes)
            ]
            for fut in futures:
                part = fut.result(timeout=dur + timeout_s + 120)
                tally.merge(part)
                cpu += part["cpu_s"]
    elapsed = time.perf_counter() - start
    completed = len(tally.latencies)
    failures = sum(tally.failures.values())
    reason = "requests" if tally.sent >= total else "duration"
    return LoadResult(
        engine=engine,
        url=url,
        concurrency=concurrency,
        processes=processes,
        elapsed_s=elapsed,
        sent=tally.sent,
        completed=completed,
        ok=tally.ok,
        failures=failures,
        failure_kinds=dict(tally.failures),
        status_counts=dict(tally.statuses),
        versions=dict(tally.versions),
        latency_ms=summarize_latencies(tally.latencies),
        rps=completed / elapsed if elapsed > 0 else 0.0,
        client_cpu_s=cpu,
        stop_reason=reason,
    )


# --------------------------------------------------------------------------- wrk engine
WRK_SCRIPT = r"""
-- generated by benchmarks/loadgen.py
local reqs = {}
local specs = __SPECS__
local count_versions = __COUNT_VERSIONS__
local threads = {}
local counter = 0

function setup(thread)
  table.insert(threads, thread)
  thread:set("offset", #threads * 7919)
end

function init(args)
  for i, s in ipairs(specs) do
    local headers = {}
    if s.body then headers["Content-Type"] = s.content_type end
    reqs[i] = wrk.format(s.method, s.path, headers, s.body)
  end
  counter = offset or 0
  versions = {}
  statuses = {}
end

function request()
  counter = counter + 1
  return reqs[(counter % #reqs) + 1]
end

if count_versions then
  function response(status, headers, body)
    local v = headers["X-Model-Version"] or headers["x-model-version"]
    if v then versions[v] = (versions[v] or 0) + 1 end
    local s = tostring(status)
    statuses[s] = (statuses[s] or 0) + 1
  end
end

local function enc(t)
  local parts = {}
  for k, v in pairs(t) do table.insert(parts, string.format("%q:%d", k, v)) end
  return "{" .. table.concat(parts, ",") .. "}"
end

function done(summary, latency, requests)
  local all_versions, all_statuses = {}, {}
  for _, t in ipairs(threads) do
    local tv = t:get("versions") or {}
    for k, v in pairs(tv) do all_versions[k] = (all_versions[k] or 0) + v end
    local ts = t:get("statuses") or {}
    for k, v in pairs(ts) do all_statuses[k] = (all_statuses[k] or 0) + v end
  end
  local e = summary.errors
  io.write("WRKJSON ")
  io.write(string.format(
    '{"duration_us":%d,"requests":%d,"bytes":%d,"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},' ..
    '"latency_us":{"p50":%d,"p95":%d,"p99":%d,"max":%d,"mean":%f},"versions":%s,"statuses":%s}\n',
    summary.duration, summary.requests, summary.bytes, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(95), latency:percentile(99), latency.max, latency.mean,
    enc(all_versions), enc(all_statuses)))
end
"""


def _lua_string(data: bytes | str) -> str:
    text = data.decode("latin-1") if isinstance(data, bytes) else data
    out = ['"']
    for ch in text:
        code = ord(ch)
        if ch in '"\\':
            out.append("\\" + ch)
        elif 32 <= code < 127:
            out.append(ch)
        else:
            out.append(f"\\{code:03d}")
    out.append('"')
    return "".join(out)


def wrk_script(specs: Sequence[RequestSpec], base: str, count_versions: bool) -> str:
    rows = []
    for s in specs:
        fields = [
            f"method={_lua_string(s.method)}",
            f"path={_lua_string(base + s.path)}",
            f"content_type={_lua_string(s.content_type)}",
        ]
        if s.body is not None:
            fields.append(f"body={_lua_string(s.body)}")
        rows.append("{" + ", ".join(fields) + "}")
    return WRK_SCRIPT.replace("__SPECS__", "{\n" + ",\n".join(rows) + "\n}").replace(
        "__COUNT_VERSIONS__", "true" if count_versions else "false"
    )


def wrk_path() -> str | None:
    return shutil.which("wrk")


def run_wrk(
    url: str,
    specs: Sequence[RequestSpec],
    *,
    concurrency: int,
    duration_s: float,
    timeout_s: float = 10.0,
    threads: int = 1,
    count_versions: bool = False,
) -> LoadResult:
    """Closed-loop load with wrk for ``duration_s`` (wrk has no request-count bound)."""
    host, port, base = loopback_target(url)
    exe = wrk_path()
    if exe is None:
        raise FileNotFoundError("wrk is not installed (run benchmarks/install_wrk.sh)")
    if not specs:
        raise ValueError("no requests to send")
    _, dur = _bounds(None, duration_s)
    threads = max(1, min(threads, concurrency))
    seconds = max(1, int(round(dur)))
    with tempfile.TemporaryDirectory(prefix="loadgen-wrk-") as tmp:
        script = Path(tmp) / "load.lua"
        script.write_text(wrk_script(list(specs), base, count_versions), encoding="utf-8")
        target = f"http://{host if ':' not in host else f'[{host}]'}:{port}"
        cmd = [
            exe,
            "-t",
            str(threads),
            "-c",
            str(concurrency),
            "-d",
            f"{seconds}s",
            "--timeout",
            f"{max(1, math.ceil(timeout_s))}s",
            "-s",
            str(script),
            target,
        ]
        usage0 = os.times()
        start = time.perf_counter()
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + timeout_s + 60, check=False)
        elapsed = time.perf_counter() - start
        usage1 = os.times()
    line = next((ln for ln in done.stdout.splitlines() if ln.startswith("WRKJSON ")), None)
    if done.returncode != 0 or line is None:
        raise RuntimeError(f"wrk failed (exit {done.returncode}): {done.stderr.strip()[:500]} {done.stdout.strip()[-500:]}")
    data = json.loads(line[len("WRKJSON ") :])
    err = data["errors"]
    kinds = {k: int(v) for k, v in err.items() if v and k != "status"}
    statuses = {k: int(v) for k, v in data.get("statuses", {}).items()}
    if err["status"]:
        bad = {k: v for k, v in statuses.items() if not k.startswith("2")}
        if bad:
            kinds.update({f"status_{k}": v for k, v in bad.items()})
        else:
            kinds["status_non2xx"] = int(err["status"])
    # wrk counts a response that arrives later than --timeout both as a request and as a timeout
    # (its latency is beyond the histogram); a request still unanswered when the run ends is not counted.
    completed = int(data["requests"])
    timeouts = int(err["timeout"])
    lat = data["latency_us"]
    notes = [
        "wrk: a response later than --timeout counts as a timeout; requests unanswered at the end of the run are not counted",
        "latencies are wrk's (microsecond histogram); p95 from latency:percentile(95)",
    ]
    return LoadResult(
        engine="wrk",
        url=url,
        concurrency=concurrency,
        processes=threads,
        elapsed_s=data["duration_us"] / 1e6 or elapsed,
        sent=completed + int(err["connect"]),
        completed=completed,
        ok=max(0, completed - int(err["status"]) - timeouts),
        failures=int(err["status"]) + sum(int(err[k]) for k in ("connect", "read", "write", "timeout")),
        failure_kinds=kinds,
        status_counts=statuses,
        versions={k: int(v) for k, v in data.get("versions", {}).items()},
        latency_ms={
            "p50": lat["p50"] / 1000,
            "p95": lat["p95"] / 1000,
            "p99": lat["p99"] / 1000,
            "max": lat["max"] / 1000,
            "mean": lat["mean"] / 1000,
        },
        rps=completed / (data["duration_us"] / 1e6) if data["duration_us"] else 0.0,
        client_cpu_s=(usage1.children_user - usage0.children_user) + (usage1.children_system - usage0.children_system),
        stop_reason="duration",
        notes=notes,
    )


def run_load(
    url: str,
    specs: Sequence[RequestSpec],
    *,
    engine: str = "asyncio",
    concurrency: int,
    requests: int | None = None,
    duration_s: float | None = None,
    timeout_s: float = 10.0,
    processes: int = 1,
    count_versions: bool = True,
) -> LoadResult:
    if engine == "wrk":
        if duration_s is None:
            raise ValueError("wrk runs for a duration; give duration_s")
        return run_wrk(
            url,
            specs,
            concurrency=concurrency,
            duration_s=duration_s,
            timeout_s=timeout_s,
            threads=processes,
            count_versions=count_versions,
        )
    return run_python(
        url,
        specs,
        concurrency=concurrency,
        requests=requests,
        duration_s=duration_s,
        timeout_s=timeout_s,
        engine=engine,
        processes=processes,
    )


# --------------------------------------------------------------------------- command line
def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="Bounded closed-loop HTTP load on a loopback URL; prints a JSON result.")
    p.add_argument("--url", default="http://127.0.0.1:8000", help="loopback base URL")
    p.add_argument("--path", default="/healthz")
    p.add_argument("--method", default=None, help="default: POST with --body/--bodies, else GET")
    p.add_argument("--body", default=None, help="JSON body sent with every request")
    p.add_argument("--bodies", type=Path, default=None, help="file with one JSON body per line (cycled)")
    p.add_argument("--concurrency", type=int, default=8)
    p.add_argument("--requests", type=int, default=None, help="stop after this many requests")
    p.add_argument("--duration", type=float, default=None, help="stop after this many seconds (default 10 if no --requests)")
    p.add_argument("--timeout", type=float, default=10.0, help="per-request timeout (s); a timeout is a failure")
    p.add_argument("--engine", choices=("asyncio", "httpx", "wrk"), default="asyncio")
    p.add_argument("--processes", type=int, default=1, help="generator processes (python engines) or wrk threads")
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
    duration = args.duration if (args.duration is not None or args.requests is not None) else 10.0
    result = run_load(
        args.url,
        specs,
        engine=args.engine,
        concurrency=args.concurrency,
        requests=args.requests,
        duration_s=duration,
        timeout_s=args.timeout,
        processes=args.processes,
    )
    print(json.dumps(result.to_dict(), indent=2, default=float))
    return 0 if result.failures == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
