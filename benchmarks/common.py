"""What every benchmark shares: the machine description, the result writer,
where MovieLens lives, and small timing helpers.

Nothing here imports TensorFlow, so the unit tests of these helpers are fast.
"""

from __future__ import annotations

import datetime as _dt
import importlib.metadata
import json
import math
import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
RESULTS_DIR = REPO_ROOT / "benchmarks" / "results"
CACHE_DIR = RESULTS_DIR / "cache"  # git-ignored scratch space
DEFAULT_MOVIELENS = REPO_ROOT.parent / "shared" / "data" / "ml-100k"
MOVIELENS_ENV = "RECSYS_BENCH_MOVIELENS"

LIBRARIES = (
    "tensorflow",
    "tf-keras",
    "tensorflow-recommenders",
    "scann",
    "numpy",
    "scipy",
    "pandas",
    "implicit",
    "matplotlib",
    "psutil",
)


# --------------------------------------------------------------------------- machine
def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def _memory_bytes() -> int | None:
    try:
        import psutil

        return int(psutil.virtual_memory().total)
    except Exception:  # pragma: no cover - psutil is a project dependency
        try:
            return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
        except (ValueError, OSError, AttributeError):
            return None


def library_versions(names: Iterable[str] = LIBRARIES) -> dict[str, str | None]:
    """Installed distribution versions (None when a library is absent)."""
    out: dict[str, str | None] = {}
    for name in names:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = None
    return out


def _git_state() -> dict[str, Any]:
    def git(*args: str) -> str | None:
        try:
            done = subprocess.run(["git", *args], cwd=REPO_ROOT, capture_output=True, text=True, timeout=10, check=True)
            return done.stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return None

    status = git("status", "--porcelain")
    return {"commit": git("rev-parse", "HEAD"), "dirty": bool(status) if status is not None else None}


def machine_description() -> dict[str, Any]:
    """CPU model, cores, memory, OS, Python, library versions, load and git state."""
    physical = None
    try:
        import psutil

        physical = psutil.cpu_count(logical=False)
    except Exception:  # pragma: no cover
        pass
    try:
        load = [round(x, 2) for x in os.getloadavg()]
    except OSError:  # pragma: no cover - not on Linux
        load = None
    mem = _memory_bytes()
    try:
        affinity = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not on Linux
        affinity = os.cpu_count()
    return {
        "cpu_model": _cpu_model(),
        "logical_cores": os.cpu_count(),
        "physical_cores": physical,
        "usable_cores": affinity,
        "memory_bytes": mem,
        "memory_gib": round(mem / 2**30, 1) if mem else None,
        "accelerator": "none (CPU only)" if not Path("/dev/nvidia0").exists() else "NVIDIA device present",
        "os": platform.platform(),
        "python": platform.python_version(),
        "libraries": library_versions(),
        "load_average_at_start": load,
        "hostname": platform.node(),
        "git": _git_state(),
    }


def describe_machine_line(machine: dict[str, Any]) -> str:
    libs = machine.get("libraries", {})
    return (
        f"{machine.get('cpu_model')} ({machine.get('usable_cores')} usable cores), "
        f"{machine.get('memory_gib')} GiB RAM, Python {machine.get('python')}, "
        f"TF {libs.get('tensorflow')}, TFRS {libs.get('tensorflow-recommenders')}, "
        f"ScaNN {libs.get('scann')}, numpy {libs.get('numpy')}"
    )


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
    differ from it); ``benchmarks.<name>`` when no benchmark module is ``__main__``."""
    spec = getattr(sys.modules.get("__main__"), "__spec__", None)
    module = getattr(spec, "name", None)
    return module if isinstance(module, str) and module.startswith("benchmarks.") else f"benchmarks.{name}"


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
    try:
        machine["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    except OSError:  # pragma: no cover - not on Linux
        pass
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
