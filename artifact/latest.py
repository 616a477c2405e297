"""The ``LATEST`` file and version names (docs/CONTRACTS.md section 3).

A version is a folder named by a whole number (integer seconds since the epoch
when published, always above every existing one); ``LATEST`` holds the name of
the served one on one line. This module is the one place both rules are coded:

* :func:`is_version_name` / :func:`check_version_name`: up to 20 ASCII digits;
* :func:`read_latest`: the name ``LATEST`` holds, read with a size cap
  (:data:`LATEST_MAX_BYTES`), so a huge or binary file is refused, never read whole;
* :func:`write_latest`: atomic (a temporary file flushed, renamed over ``LATEST``,
  the folder flushed), so a crash leaves either the old name or the new one;
* :func:`list_versions` and :func:`next_version`.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable
from pathlib import Path

LATEST = "LATEST"
LATEST_MAX_BYTES = 64
_VERSION_NAME = re.compile(r"[0-9]{1,20}")


class LatestError(Exception):
    """``LATEST`` or a version name cannot be used; ``reason`` is a short label (the service's LoadError reason)."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


def shown(text: str, limit: int = 80) -> str:
    """``text`` cut to ``limit`` characters, control and non-ASCII characters escaped (for messages)."""
    return text[:limit].encode("unicode_escape").decode("ascii")


def is_version_name(name: str) -> bool:
    """A version name: 1 to 20 ASCII digits."""
    return _VERSION_NAME.fullmatch(name) is not None


def check_version_name(name: str, what: str = "version") -> str:
    """``name`` if it is a version name, else :class:`LatestError` (``invalid_version_name``) echoing it
    after ``what`` (e.g. ``the name in LATEST '../1' is not a version name (1 to 20 digits)``)."""
    if not is_version_name(name):
        raise LatestError("invalid_version_name", f"{what} {shown(name)!r} is not a version name (1 to 20 digits)")
    return name


def read_latest(model_root: Path) -> str | None:
    """The name ``LATEST`` holds, stripped; None when there is no ``LATEST`` or it is empty.

    At most ``LATEST_MAX_BYTES + 1`` bytes are read: a longer file is refused
    (``latest_too_large``), an unreadable or non-UTF-8 one too (``latest_unreadable``).
    The name is returned as written: :func:`check_version_name` judges it."""
    try:
        with open(Path(model_root) / LATEST, "rb") as fh:
            raw = fh.read(LATEST_MAX_BYTES + 1)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise LatestError("latest_unreadable", f"cannot read LATEST: {exc}") from exc
    if len(raw) > LATEST_MAX_BYTES:
        raise LatestError(
            "latest_too_large", f"LATEST holds more than {LATEST_MAX_BYTES} bytes; a version name is one short line"
        )
    try:
        name = raw.decode("utf-8").strip()
    except UnicodeDecodeError as exc:
        raise LatestError("latest_unreadable", f"cannot read LATEST: {exc}") from exc
    return name or None


def fsync_dir(path: Path) -> None:
    """Flush a folder's entries (a rename inside it) to disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_latest(model_root: Path, version: str) -> None:
    """Point ``LATEST`` at ``version`` atomically: temporary file, fsync, rename, fsync of the folder.

    The text is written as given (an operator's rollback writes a name by hand); readers judge
    it with :func:`check_version_name`."""
    model_root = Path(model_root)
    tmp = model_root / f".LATEST.{os.getpid()}.tmp"
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(version + "\n")
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, model_root / LATEST)
    fsync_dir(model_root)


def list_versions(model_root: Path) -> list[str]:
    """The version folders under ``model_root`` (names that are version names), oldest first."""
    root = Path(model_root)
    if not root.is_dir():
        return []
    names = [p.name for p in root.iterdir() if is_version_name(p.name) and p.is_dir()]
    return sorted(names, key=int)


def next_version(model_root: Path, clock: Callable[[], float] = time.time) -> str:
    """Integer seconds since the epoch, strictly above every existing version."""
    existing = [int(v) for v in list_versions(model_root)]
    return str(max([int(clock())] + [v + 1 for v in existing]))
