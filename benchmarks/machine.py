"""The machine a benchmark ran on: CPU, cores, memory, OS, library versions, load and git state."""

from __future__ import annotations

import importlib.metadata
import os
import platform
import subprocess
from collections.abc import Iterable
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]

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
    affinity: int | None
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
