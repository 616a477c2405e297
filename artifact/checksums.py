"""sha256 digests of a version's files, as the manifest's ``files`` lists them (``hashlib.file_digest``)."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

MANIFEST = "manifest.json"  # the one file of a version its manifest does not list
PAUSE_EVERY_BYTES = 16 << 20


def _no_pause() -> None:
    return None


class _PacedReader:
    """A binary file that calls ``pause`` after every ``every`` bytes read (what ``file_digest`` reads through)."""

    def __init__(self, fh: BinaryIO, pause: Callable[[], None], every: int) -> None:
        self._fh, self._pause, self._every, self._since = fh, pause, every, 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray) -> int:
        size = self._fh.readinto(buffer)  # type: ignore[attr-defined]  # BinaryIO omits readinto; every binary file has it
        self._since += size or 0
        if self._since >= self._every:
            self._since = 0
            self._pause()
        return int(size or 0)


def sha256_of(fh: BinaryIO, pause: Callable[[], None] = _no_pause, pause_every: int = PAUSE_EVERY_BYTES) -> str:
    """Hex sha256 of an open binary file from its current position; ``pause`` is called after every
    ``pause_every`` bytes (a service that loads a version beside the served one yields there)."""
    reader = fh if pause is _no_pause else _PacedReader(fh, pause, pause_every)
    return hashlib.file_digest(reader, "sha256").hexdigest()  # type: ignore[arg-type]  # _PacedReader has what file_digest reads


def sha256_file(path: Path) -> str:
    """Hex sha256 of the file at ``path``."""
    with open(path, "rb") as fh:
        return sha256_of(fh)


def tree_checksums(root: Path, exclude: frozenset[str] = frozenset({MANIFEST})) -> dict[str, str]:
    """sha256 of every regular file under ``root``, keyed by POSIX relative path (the manifest's ``files``)."""
    out: dict[str, str] = {}
    for path in sorted(Path(root).rglob("*")):
        rel = path.relative_to(root).as_posix()
        if path.is_file() and rel not in exclude:
            out[rel] = sha256_file(path)
    return out
