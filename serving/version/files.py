"""What may be in a version folder, checked before anything in it is read (docs/CONTRACTS.md section 3).

* ``LATEST`` and version names: :mod:`artifact.latest` (read with a size cap).
* The version folder and everything in it are inspected without following
  symbolic links (``lstat`` / ``os.scandir``): a symbolic link anywhere, the
  folder itself included, is refused, and so is anything that is neither a
  folder nor a regular file (a FIFO would block a reader).
* Every regular file but ``manifest.json`` must be listed in the manifest's
  ``files``, and every listed file must be there with its sha256. Each file is
  hashed through a descriptor opened with ``O_NOFOLLOW`` whose identity
  (device, inode, size, mtime) must be the one the walk saw.
* The ScaNN index names its files in ``index/scann_assets.pbtxt``; each must be
  a listed file inside ``index/`` (ScaNN opens an absolute path as it is).
* After loading, the folder is walked again: if any entry changed between the
  check and the load, the version is refused.

Any refusal raises :class:`VersionFileError` with a short ``reason``
(``serving.version.loader`` turns it into a ``LoadError``; ``training.catalog_base``
verifies a catalog update's base version with these same checks).
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from artifact.checksums import MANIFEST, sha256_of
from artifact.latest import shown

MAX_ENTRIES = 10_000  # a version holds a few dozen files; a walk never goes on for ever
_ASSET_PATH = re.compile(r'asset_path:\s*"((?:[^"\\]|\\.)*)"')


class VersionFileError(Exception):
    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class Entry:
    """One entry of a version folder as ``lstat`` saw it."""

    is_dir: bool
    identity: tuple[int, int, int, int]  # st_dev, st_ino, st_size, st_mtime_ns


def _identity(st: os.stat_result) -> tuple[int, int, int, int]:
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


def _shown(text: str) -> str:
    return shown(text, limit=120)


def check_version_folder(path: Path) -> None:
    """``path`` is a real folder (not a symbolic link to one)."""
    try:
        st = os.lstat(path)
    except FileNotFoundError as exc:
        raise VersionFileError("missing_version_dir", f"{path.name}/ does not exist") from exc
    except OSError as exc:
        raise VersionFileError("missing_version_dir", f"{path.name}/ cannot be read: {exc}") from exc
    if stat.S_ISLNK(st.st_mode):
        raise VersionFileError("symlink", f"version folder {path.name}/ is a symbolic link; a version must be a real folder")
    if not stat.S_ISDIR(st.st_mode):
        raise VersionFileError("missing_version_dir", f"{path.name} is not a folder")


def scan(path: Path) -> dict[str, Entry]:
    """Every entry under ``path`` by POSIX relative path, without following symbolic links.

    Refuses (``symlink``) a symbolic link anywhere and (``not_a_regular_file``)
    anything that is neither a folder nor a regular file."""
    check_version_folder(path)
    out: dict[str, Entry] = {}
    pending = [""]
    while pending:
        rel_dir = pending.pop()
        try:
            with os.scandir(path / rel_dir if rel_dir else path) as entries:
                children = list(entries)
        except OSError as exc:
            raise VersionFileError("file_unreadable", f"cannot list {rel_dir or '.'}/: {exc}") from exc
        for child in children:
            rel = f"{rel_dir}/{child.name}" if rel_dir else child.name
            try:
                st = child.stat(follow_symlinks=False)
            except OSError as exc:
                raise VersionFileError("file_unreadable", f"cannot stat {_shown(rel)}: {exc}") from exc
            if stat.S_ISLNK(st.st_mode):
                raise VersionFileError("symlink", f"{_shown(rel)} is a symbolic link; a version holds regular files only")
            if stat.S_ISDIR(st.st_mode):
                pending.append(rel)
            elif not stat.S_ISREG(st.st_mode):
                raise VersionFileError("not_a_regular_file", f"{_shown(rel)} is neither a file nor a folder")
            out[rel] = Entry(stat.S_ISDIR(st.st_mode), _identity(st))
            if len(out) > MAX_ENTRIES:
                raise VersionFileError("too_many_files", f"the version holds more than {MAX_ENTRIES} entries")
    return out


def _no_pause() -> None:
    return None


def _sha256(path: Path, expected: Entry, rel: str, pause: Callable[[], None] = _no_pause) -> str:
    """sha256 of the file the walk saw at ``rel`` (opened without following a symbolic link)."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        raise VersionFileError("changed_during_load", f"{_shown(rel)} could not be opened after the walk: {exc}") from exc
    with os.fdopen(fd, "rb") as fh:
        if _identity(os.fstat(fh.fileno())) != expected.identity:
            raise VersionFileError("changed_during_load", f"{_shown(rel)} was replaced while the version was checked")
        return sha256_of(fh, pause)


def verify_files(path: Path, files: Mapping[str, str], entries: dict[str, Entry], pause: Callable[[], None] = _no_pause) -> None:
    """Listed files present with their sha256; no regular file that the manifest does not list.

    ``pause`` is called after every 16 MiB hashed."""
    for rel, digest in files.items():
        pure = PurePosixPath(str(rel))
        if pure.is_absolute() or ".." in pure.parts or not pure.parts or str(pure) != str(rel):
            raise VersionFileError("manifest_invalid", f"the manifest lists an unsafe path {_shown(str(rel))!r}")
        entry = entries.get(str(rel))
        if entry is None or entry.is_dir:
            raise VersionFileError("file_missing", f"{rel} is missing")
        if _sha256(path / pure, entry, str(rel), pause) != digest.lower():
            raise VersionFileError("checksum_mismatch", f"{rel} does not match its sha256 in the manifest")
    unlisted = sorted(rel for rel, e in entries.items() if not e.is_dir and rel != MANIFEST and rel not in files)
    if unlisted:
        more = f" (and {len(unlisted) - 1} more)" if len(unlisted) > 1 else ""
        raise VersionFileError(
            "unlisted_file", f"{_shown(unlisted[0])}{more} is in the version folder but not listed in its manifest"
        )


def check_index_assets(path: Path, files: Mapping[str, str]) -> None:
    """Every file ``index/scann_assets.pbtxt`` names is a listed file inside ``index/``."""
    assets = path / "index" / "scann_assets.pbtxt"
    if "index/scann_assets.pbtxt" not in files:
        return  # an index without an assets list: ScaNN reads only its fixed file names in index/
    text = assets.read_text(encoding="utf-8", errors="replace")
    for raw in _ASSET_PATH.findall(text):
        asset = PurePosixPath(raw)
        if asset.is_absolute() or ".." in asset.parts or f"index/{asset}" not in files:
            raise VersionFileError(
                "path_outside_version", f"index/scann_assets.pbtxt names {_shown(raw)!r}, which is not a listed file of index/"
            )


def check_unchanged(path: Path, before: dict[str, Entry]) -> None:
    """The folder holds exactly what the walk before loading saw (same entries, same files)."""
    after = scan(path)
    if after != before:
        changed = sorted(set(after) ^ set(before)) or sorted(r for r in after if after[r] != before[r])
        raise VersionFileError("changed_during_load", f"{_shown(changed[0])} changed while the version was loaded")
