"""Atomic, versioned publishing into a model root (DESIGN.md section 3).

A version is written under ``.staging-<version>-<pid>``, flushed, renamed into
place, and only then is ``LATEST`` replaced (temp file + rename). A crash at any
point leaves ``LATEST`` naming the previous complete version; stale staging
folders are removed by the next publish. ``LATEST`` and version names follow
:mod:`artifact.latest` (the one rule the service reads them by).
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from artifact.latest import fsync_dir, list_versions, next_version, read_latest, write_latest

log = logging.getLogger(__name__)

STAGING_PREFIX = ".staging-"


class PublishError(RuntimeError):
    """Publishing failed; the previously published version is untouched."""


class LatestMovedError(PublishError):
    """``LATEST`` no longer names the version the new one was made from (another run published meanwhile)."""


@contextlib.contextmanager
def _publish_lock(model_root: Path) -> Iterator[None]:
    with open(model_root / ".publish.lock", "a+") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def clean_stale_staging(model_root: Path) -> list[str]:
    """Remove staging folders and temp files left by publishers that are gone."""
    removed = []
    for path in model_root.iterdir():
        if path.name.startswith(STAGING_PREFIX) or (path.name.startswith(".LATEST.") and path.name.endswith(".tmp")):
            pid_part = path.name.rsplit("-", 1)[-1] if path.is_dir() else path.name.split(".")[2]
            if pid_part.isdigit() and int(pid_part) != os.getpid() and _pid_alive(int(pid_part)):
                continue
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
            removed.append(path.name)
    return removed


def fsync_tree(root: Path) -> None:
    """Flush every file and directory under ``root`` (and ``root``) to disk."""
    for path in sorted(root.rglob("*"), key=lambda p: len(p.parts), reverse=True):
        if path.is_file():
            with open(path, "rb+") as fh:
                os.fsync(fh.fileno())
        elif path.is_dir():
            fsync_dir(path)
    fsync_dir(root)


def prune(model_root: Path, retain: int) -> list[str]:
    """Delete versions beyond the newest ``retain``; never the one LATEST names."""
    latest = read_latest(model_root)
    versions = list_versions(model_root)
    keep = set(versions[-retain:]) | ({latest} if latest else set())
    removed = []
    for v in versions:
        if v not in keep:
            shutil.rmtree(model_root / v, ignore_errors=True)
            removed.append(v)
    return removed


def publish(
    model_root: Path,
    write: Callable[[Path, str], object],
    *,
    retain: int = 3,
    clock: Callable[[], float] = time.time,
    expect_latest: str | None = None,
) -> str:
    """Write a new version with ``write(staging_dir, version)`` and publish it.

    Returns the version name. Raises :class:`PublishError` (the staging folder
    removed, ``LATEST`` untouched) if writing or flushing fails, e.g. a full disk.
    With ``expect_latest``, raises :class:`LatestMovedError` (nothing written)
    unless ``LATEST`` names that version when the publish lock is taken (a catalog
    update must not replace a version trained while it ran).
    """
    model_root = Path(model_root)
    model_root.mkdir(parents=True, exist_ok=True)
    with _publish_lock(model_root):
        if expect_latest is not None and read_latest(model_root) != expect_latest:
            raise LatestMovedError(
                f"LATEST names {read_latest(model_root)}, no longer {expect_latest}, the version this one was made from; "
                "nothing published (run it again on the new version)"
            )
        for name in clean_stale_staging(model_root):
            log.info("removed stale %s", name)
        version = next_version(model_root, clock)
        staging = model_root / f"{STAGING_PREFIX}{version}-{os.getpid()}"
        staging.mkdir()
        try:
            write(staging, version)
            fsync_tree(staging)
            os.rename(staging, model_root / version)
            fsync_dir(model_root)
        except BaseException as exc:
            shutil.rmtree(staging, ignore_errors=True)
            if isinstance(exc, Exception):
                # OSError (ENOSPC, EIO), but also TensorFlow's ResourceExhaustedError
                # and ScaNN's RuntimeError when the SavedModel or index cannot be written.
                raise PublishError(f"could not write version {version} under {model_root}: {exc}") from exc
            raise
        try:
            write_latest(model_root, version)
        except OSError as exc:
            raise PublishError(f"version {version} written but LATEST could not be updated: {exc}") from exc
        for v in prune(model_root, retain):
            log.info("pruned old version %s", v)
    return version
