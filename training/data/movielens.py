"""MovieLens directories in their native formats, detected from the files present.

========  ==================================================  =================
layout    files                                               source name
========  ==================================================  =================
100K      ``u.data`` + ``u.item`` (+ ``u.user``)               ``movielens-100k``
1M        ``ratings.dat`` + ``movies.dat`` (+ ``users.dat``)  ``movielens-1m``
latest    ``ratings.csv`` + ``movies.csv`` (20M, 25M, 32M…)   ``movielens-latest``
========  ==================================================  =================

Tables: items ``item_id, title, genres (list of str), year (float, NaN if
unknown)``; users ``user_id, age (float), gender, occupation, zip_prefix`` (only
``user_id`` for the CSV layouts, which have no user file); interactions
``user_id, item_id, timestamp (int64), weight (float: the rating)``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from training.data import movielens_formats as formats
from training.data.bad_rows import DataError
from training.data.progress import QUIET, Progress
from training.data.tables import CanonicalData, finalize

# (layout name, file that identifies it, other required files, reader)
LAYOUTS: list[tuple[str, str, tuple[str, ...], Callable[[Path, Progress], CanonicalData]]] = [
    ("100k", "u.data", ("u.item",), formats.read_100k),
    ("1m", "ratings.dat", ("movies.dat",), formats.read_1m),
    ("latest", "ratings.csv", ("movies.csv",), formats.read_movielens_latest),
]


def detect_format(path: str | Path) -> str:
    """The layout name (``100k``, ``1m`` or ``latest``) of the MovieLens directory ``path``."""
    return _detect(_directory(path))[0]


def _directory(path: str | Path) -> Path:
    directory = Path(path).expanduser()
    if directory.is_file():  # a file inside the directory, e.g. .../ml-100k/u.data
        directory = directory.parent
    if not directory.is_dir():
        raise DataError("MovieLens directory not found", file=str(directory))
    return directory


def _detect(directory: Path) -> tuple[str, Callable[[Path, Progress], CanonicalData]]:
    for name, marker, required, reader in LAYOUTS:
        if not (directory / marker).is_file():
            continue
        missing = [f for f in required if not (directory / f).is_file()]
        if missing:
            raise DataError(
                f"MovieLens {name} layout ({marker} found) but {', '.join(missing)} is missing",
                file=str(directory),
            )
        return name, reader
    looked_for = "; ".join(f"{marker} + {', '.join(req)} ({name})" for name, marker, req, _ in LAYOUTS)
    raise DataError(
        f"no recognised MovieLens format: looked for {looked_for}",
        file=str(directory),
    )


def read_movielens(path: str | Path, progress: Progress = QUIET) -> CanonicalData:
    """Read a MovieLens directory without validating it (see :func:`load_movielens`)."""
    directory = _directory(path)
    _, reader = _detect(directory)
    return reader(directory, progress)


def load_movielens(path: str | Path, max_bad_rows: int = 0, progress: Progress = QUIET) -> CanonicalData:
    """Read, validate and check a MovieLens directory (format detected from its files).

    Unparseable lines are bad rows with file, 1-based line and column; more than
    ``max_bad_rows`` of them raise :class:`DataError`.
    """
    return finalize(read_movielens(path, progress), max_bad_rows)
