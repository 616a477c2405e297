"""What every benchmark shares: the result writer (with the machine description of
:mod:`benchmarks.machine`), where MovieLens lives, timing helpers, the progress
log, the load average, and the loopback helpers of the serving benchmarks.

Nothing here imports TensorFlow, so the unit tests of these helpers are fast.
"""

from __future__ import annotations

import datetime as _dt
import http.client
import json
import math
import os
import socket
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from benchmarks.machine import describe_machine_line, machine_description
from benchmarks.machine import library_versions as library_versions  # re-exported: the benchmarks import it from here

REPO_ROOT = Path(__file__).resolve().parents[1]
RESULTS_DIR = REPO_ROOT / "benchmarks" / "results"
CACHE_DIR = RESULTS_DIR / "cache"  # git-ignored scratch space
DEFAULT_MOVIELENS = REPO_ROOT.parent / "shared" / "data" / "ml-100k"
MOVIELENS_ENV = "RECSYS_BENCH_MOVIELENS"


# --------------------------------------------------------------------------- results
def _jsonable(value: Any) -> Any:
    """numpy scalars/arrays, Paths and NaN/inf -> plain JSON values."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "tolist") and not isinstance(value, (str, bytes)):
        return _jsonable(value.tolist())
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        return _jsonable(value.item())
    return value


def running_module(name: str) -> str:
    """The ``benchmarks.*`` module run with ``python -m`` (results named with ``--out``
    differ from it; a package's ``__main__`` is named by its package); ``benchmarks.<name>``
    when no benchmark module is ``__main__``."""
    spec = getattr(sys.modules.get("__main__"), "__spec__", None)
    module = getattr(spec, "name", None)
    if not (isinstance(module, str) and module.startswith("benchmarks.")):
        return f"benchmarks.{name}"
    return module.removesuffix(".__main__")


def write_results(
    name: str,
    results: dict[str, Any],
    summary: str,
    *,
    out_dir: Path | None = None,
    command: Sequence[str] | None = None,
    machine: dict[str, Any] | None = None,
    started: float | None = None,
) -> tuple[Path, Path]:
    """Write ``<out_dir>/<name>.json`` and ``<out_dir>/<name>.md`` atomically
    (temporary file, then rename) and return both paths.

    The JSON always holds ``benchmark``, ``command``, ``created_at``,
    ``wall_seconds``, ``machine`` and ``results``.
    """
    out_dir = Path(out_dir) if out_dir is not None else RESULTS_DIR
    out_dir.mkdir(parents=True, exist_ok=True)
    machine = machine if machine is not None else machine_description()
    cmd = list(command) if command is not None else ["python", "-m", running_module(name), *sys.argv[1:]]
    machine = dict(machine)
    if load := load_average():
        machine["load_average_at_end"] = load
    doc = {
        "benchmark": name,
        "command": " ".join(cmd),
        "created_at": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "wall_seconds": round(time.perf_counter() - started, 2) if started is not None else None,
        "machine": machine,
        "results": results,
    }
    json_path = out_dir / f"{name}.json"
    md_path = out_dir / f"{name}.md"
    header = (
        f"# benchmark: {name}\n\n"
        f"- command: `{doc['command']}`\n"
        f"- created: {doc['created_at']}\n"
        f"- machine: {describe_machine_line(machine)}\n"
        f"- load average (1/5/15 min) at start: {machine.get('load_average_at_start')}, at end: {machine.get('load_average_at_end')}"
        " (a shared machine: compare ratios measured in the same run)\n\n"
    )
    _atomic_write(json_path, json.dumps(_jsonable(doc), indent=2, sort_keys=False, allow_nan=False) + "\n")
    _atomic_write(md_path, header + summary.rstrip() + "\n")
    return json_path, md_path


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


# --------------------------------------------------------------------------- data
def movielens_dir(explicit: str | Path | None = None) -> Path:
    """The MovieLens 100K directory: the argument, else $RECSYS_BENCH_MOVIELENS,
    else ../shared/data/ml-100k beside the repository."""
    if explicit:
        return Path(explicit)
    if os.environ.get(MOVIELENS_ENV):
        return Path(os.environ[MOVIELENS_ENV])
    return DEFAULT_MOVIELENS


def movielens_missing_message(path: Path) -> str | None:
    """None when ``path`` holds MovieLens 100K, else why the benchmark is skipped."""
    if (path / "u.data").is_file() and (path / "u.item").is_file():
        return None
    return (
        f"SKIPPED: MovieLens 100K not found at {path} (need u.data, u.item, u.user). "
        "It is not redistributed with this project: download ml-100k from GroupLens, "
        f"unpack it there or pass --data DIR (or set {MOVIELENS_ENV})."
    )


def require_movielens(path: Path) -> None:
    """Print a clear skip message and exit 0 when MovieLens is absent."""
    msg = movielens_missing_message(path)
    if msg:
        print(msg, file=sys.stderr)
        raise SystemExit(0)


# --------------------------------------------------------------------------- timing
def median(values: Sequence[float]) -> float:
    vals = sorted(float(v) for v in values)
    if not vals:
        return float("nan")
    mid = len(vals) // 2
    return vals[mid] if len(vals) % 2 else 0.5 * (vals[mid - 1] + vals[mid])


def timed(fn: Callable[[], Any]) -> tuple[Any, float]:
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def repeat_timing(fn: Callable[[], Any], repeats: int) -> list[float]:
    """Wall seconds of ``repeats`` calls of ``fn``."""
    return [timed(fn)[1] for _ in range(repeats)]


def fmt_table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """A GitHub-markdown table; floats shown with 4 significant decimals."""

    def cell(v: Any) -> str:
        if isinstance(v, float):
            if not math.isfinite(v):
                return "—"
            if abs(v) >= 1000:
                return f"{v:,.0f}"
            if abs(v) >= 100:
                return f"{v:.1f}"
            return f"{v:.4f}" if abs(v) < 10 else f"{v:.2f}"
        return "—" if v is None else str(v)

    lines = ["| " + " | ".join(headers) + " |", "| " + " | ".join("---" for _ in headers) + " |"]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


# --------------------------------------------------------------------------- progress and load
def log(name: str, msg: str) -> None:
    """One progress line on stderr: ``[name HH:MM:SS] msg``."""
    print(f"[{name} {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def child_json(module: str, args: Sequence[str], what: str) -> dict[str, Any]:
    """Run ``python -m module args`` (a measurement in a process of its own) and return the JSON
    object its last stdout line holds; on failure its stderr's tail, and exit naming ``what``."""
    import subprocess

    done = subprocess.run([sys.executable, "-m", module, *args], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        sys.stderr.write(done.stderr[-4000:])
        raise SystemExit(f"{what} failed with exit code {done.returncode}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def load_average() -> list[float]:
    """The 1, 5 and 15 minute load averages (empty where the OS does not tell)."""
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:  # pragma: no cover - not on Linux
        return []


# --------------------------------------------------------------------------- loopback
def free_port() -> int:
    """A TCP port nothing listens on at 127.0.0.1 now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def http_get(port: int, path: str, timeout: float = 5.0) -> tuple[int, bytes]:
    """(status, body) of one GET on 127.0.0.1 (probes and scrapes, not load)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()
