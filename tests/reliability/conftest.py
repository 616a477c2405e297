"""Fixtures for the reliability tests: the serving fixtures (one tiny trained model
per session, version cloning, in-process apps, real ``recsys serve`` processes)
re-exported from ``tests/serving/conftest.py``, plus helpers to run the ``recsys``
command line in a child process and to mount a small tmpfs.

``tests/serving/conftest.py`` is loaded here under its own module name (a
non-root conftest cannot use ``pytest_plugins``), so when both folders run in
one session the tiny model is trained once per folder.
"""

import contextlib
import importlib.util
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest

import recsys  # noqa: F401  (first: TF_USE_LEGACY_KERAS)

REPO = Path(__file__).resolve().parents[2]


def _load_serving_fixtures():
    name = "recsys_tests_serving_fixtures"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, REPO / "tests" / "serving" / "conftest.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


serving_fixtures = _load_serving_fixtures()

# fixtures (pytest collects them from this module's namespace)
trained = serving_fixtures.trained
base_dir = serving_fixtures.base_dir
versions = serving_fixtures.versions
make_versions = serving_fixtures.make_versions
make_client = serving_fixtures.make_client
start_server = serving_fixtures.start_server
pytest_configure = serving_fixtures.pytest_configure

# helpers
Versions = serving_fixtures.Versions
ServerProcess = serving_fixtures.ServerProcess
edit_manifest = serving_fixtures.edit_manifest
free_port = serving_fixtures.free_port
wait_until = serving_fixtures.wait_until


def child_env(**extra: str) -> dict[str, str]:
    """Environment for a ``recsys`` child process: no RECSYS_* leaking in, unbuffered output."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RECSYS_")}
    env.update({"PYTHONPATH": str(REPO), "PYTHONUNBUFFERED": "1", "TF_CPP_MIN_LOG_LEVEL": "2", **extra})
    return env


def recsys_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "recsys.cli", *args]


def run_recsys(*args: str, timeout: float = 300, **env: str) -> subprocess.CompletedProcess:
    """``recsys ARGS`` in a child process (bounded in time), output captured as text."""
    return subprocess.run(recsys_cmd(*args), cwd=str(REPO), env=child_env(**env), capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="session")
def cli() -> SimpleNamespace:
    """Helpers to run ``recsys`` in a child process: ``cli.cmd(*args)``, ``cli.env(**extra)``,
    ``cli.run(*args, timeout=...)``, ``cli.repo``."""
    return SimpleNamespace(cmd=recsys_cmd, env=child_env, run=run_recsys, repo=REPO)


@contextlib.contextmanager
def tmpfs(path: Path, size: str) -> Iterator[bool]:
    """Mount a tmpfs of ``size`` on ``path`` for the block; yields False (nothing mounted) where
    mounting is not allowed (not root, no CAP_SYS_ADMIN)."""
    path.mkdir(parents=True, exist_ok=True)
    try:
        done = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size}", f"recsys-test-{uuid.uuid4().hex[:8]}", str(path)],
            capture_output=True,
            text=True,
            timeout=30,
        )
    except (OSError, subprocess.SubprocessError):
        done = None
    mounted = done is not None and done.returncode == 0
    try:
        yield mounted
    finally:
        if mounted:
            subprocess.run(["umount", "-l", str(path)], capture_output=True, timeout=30)


@pytest.fixture
def small_tmpfs(tmp_path: Path) -> Iterator[Path | None]:
    """An 8 MiB tmpfs folder (None where it cannot be mounted): room for two versions of the tiny model; the tests fill it to the byte they need."""
    with tmpfs(tmp_path / "tmpfs", "8m") as mounted:
        yield (tmp_path / "tmpfs") if mounted else None
