"""Server processes the benchmarks start on loopback: ``recsys serve`` and the HTTP ceiling,
their readiness, memory and micro-batch sizes."""

from __future__ import annotations

import contextlib
import http.client
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from benchmarks.common import free_port, http_get
from benchmarks.serving.constants import REPO


class Server:
    """A server process we started (own session), its log, readiness and memory."""

    def __init__(self, name: str, cmd: list[str], port: int, env: dict[str, str], log_path: Path) -> None:
        self.name, self.cmd, self.port, self.log_path = name, cmd, port, log_path
        self._log = open(log_path, "ab")  # noqa: SIM115  (the server writes to it until stop() closes it)
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


def wait_all_workers(server: Server, workers: int, timeout_s: float) -> None:
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

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
