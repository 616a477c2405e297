"""wrk driven by a generated Lua script: the requests to cycle through, the answers per
``X-Model-Version`` and per status, and one ``WRKJSON`` line with the run's figures."""

from __future__ import annotations

import json
import math
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from benchmarks.loadgen.result import LoadResult, RequestSpec
from benchmarks.loadgen.target import bounded_duration, loopback_target

WRK_SCRIPT = (Path(__file__).with_name("wrk_script.lua")).read_text(encoding="utf-8")
NOTES = [
    "wrk: a response later than --timeout counts as a timeout; requests unanswered at the end of the run are not counted",
    "latencies are wrk's (microsecond histogram); p95 from latency:percentile(95)",
]


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
    """The Lua script sending ``specs`` in turn (paths under ``base``); with ``count_versions``
    it also counts the answers per X-Model-Version and per status (a little client CPU)."""
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


def _result(
    data: dict[str, Any], url: str, concurrency: int, threads: int, cpu_s: float, wall_s: float, stopped: bool
) -> LoadResult:
    """The figures of wrk's ``WRKJSON`` line as a :class:`LoadResult`."""
    err = data["errors"]
    kinds = {k: int(v) for k, v in err.items() if v and k != "status"}
    statuses = {k: int(v) for k, v in data.get("statuses", {}).items()}
    if err["status"]:
        bad = {k: v for k, v in statuses.items() if not k.startswith("2")}
        if bad:
            kinds.update({f"status_{k}": v for k, v in bad.items()})
        else:  # statuses are only counted with count_versions
            kinds["status_non2xx"] = int(err["status"])
    # wrk counts a response that arrives later than --timeout both as a request and as a timeout
    # (its latency is beyond the histogram); a request still unanswered when the run ends is not counted.
    completed = int(data["requests"])
    timeouts = int(err["timeout"])
    lat = data["latency_us"]
    seconds = data["duration_us"] / 1e6
    return LoadResult(
        engine="wrk",
        url=url,
        concurrency=concurrency,
        processes=threads,
        elapsed_s=seconds or wall_s,
        sent=completed + int(err["connect"]),
        completed=completed,
        ok=max(0, completed - int(err["status"]) - timeouts),
        failures=int(err["status"]) + sum(int(err[k]) for k in ("connect", "read", "write", "timeout")),
        failure_kinds=kinds,
        status_counts=statuses,
        versions={k: int(v) for k, v in data.get("versions", {}).items()},
        latency_ms={q: lat[q] / 1000 for q in ("p50", "p95", "p99", "max", "mean")},
        rps=completed / seconds if seconds else 0.0,
        client_cpu_s=cpu_s,
        stop_reason="stopped" if stopped else "duration",
        wall_s=wall_s,
        notes=list(NOTES),
    )


def run_wrk(
    url: str,
    specs: Sequence[RequestSpec],
    *,
    concurrency: int,
    duration_s: float,
    timeout_s: float = 10.0,
    threads: int = 1,
    count_versions: bool = False,
    stop: threading.Event | None = None,
) -> LoadResult:
    """Closed-loop load with wrk for ``duration_s``, or until ``stop`` is set (wrk then gets
    SIGINT, which ends its run and reports it)."""
    host, port, base = loopback_target(url)
    if not specs:
        raise ValueError("no requests to send")
    if concurrency < 1:
        raise ValueError("concurrency must be at least 1")
    seconds = max(1, round(bounded_duration(duration_s)))
    exe = wrk_path()
    if exe is None:
        raise FileNotFoundError("wrk is not installed (run benchmarks/install_wrk.sh)")
    threads = max(1, min(threads, concurrency))
    with tempfile.TemporaryDirectory(prefix="loadgen-wrk-") as tmp:
        script = Path(tmp) / "load.lua"
        script.write_text(wrk_script(list(specs), base, count_versions), encoding="utf-8")
        target = f"http://{host if ':' not in host else f'[{host}]'}:{port}"
        timeout = f"{max(1, math.ceil(timeout_s))}s"
        cmd = [
            exe,
            "-t",
            str(threads),
            "-c",
            str(concurrency),
            "-d",
            f"{seconds}s",
            "--timeout",
            timeout,
            "-s",
            str(script),
            target,
        ]
        usage0 = os.times()
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        stopped = False
        if stop is not None:
            while proc.poll() is None and not stop.wait(0.05):
                pass
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)
                stopped = True
        out, err = proc.communicate(timeout=seconds + timeout_s + 60)
        wall = time.perf_counter() - start
        usage1 = os.times()
    line = next((ln for ln in out.splitlines() if ln.startswith("WRKJSON ")), None)
    if line is None and "unable to connect" in err:  # wrk gives up at once when nothing listens
        raise ConnectionRefusedError(f"wrk could not connect to {target}: {err.strip()[:300]}")
    if line is None or (proc.returncode != 0 and not stopped):
        raise RuntimeError(f"wrk failed (exit {proc.returncode}): {err.strip()[:500]} {out.strip()[-500:]}")
    cpu = (usage1.children_user - usage0.children_user) + (usage1.children_system - usage0.children_system)
    return _result(json.loads(line[len("WRKJSON ") :]), url, concurrency, threads, cpu, wall, stopped)
