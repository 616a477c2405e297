"""Readers for the three native MovieLens layouts (100K, 1M, latest/20M/25M CSV).

Each reader returns an *unvalidated* :class:`CanonicalData` with provenance
(file and line per row); :func:`training.data.movielens.load_movielens` detects
the layout and validates. Every unparseable line is a bad row, never dropped
silently.
"""

from __future__ import annotations

import csv
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from training.data.bad_rows import BadRowReport, DataError
from training.data.movielens_vocab import (
    GENRES_100K,
    NO_GENRES,
    OCCUPATIONS_1M,
)
from training.data.parsing import RowChecker, read_lines, split_fields
from training.data.progress import QUIET, Progress
from training.data.tables import CanonicalData


class _Table:
    """One delimited file split into named, stripped str columns plus a checker."""

    def __init__(
        self,
        path: Path,
        sep: str,
        names: list[str],
        encoding: str,
        report: BadRowReport,
        *,
        header: bool = False,
    ) -> None:
        raw = read_lines(path, encoding)
        first = 1
        if header:
            if len(raw) == 0:
                raise DataError("file is empty (expected a header line)", file=str(path))
            names = _header_positions(path, raw.iloc[0], sep, names)
            raw = raw.iloc[1:].reset_index(drop=True)
            first = 2
        self.path = path
        self.raw = raw
        self.lines = np.arange(first, first + len(raw), dtype=np.int64)
        self.check = RowChecker(str(path), self.lines, report)
        self.check.blank(raw)
        self.check.undecodable(raw, encoding)
        parts, nfields = split_fields(raw, sep, len(names))
        self.check.field_count(nfields, len(names), sep)
        self.cols = {name: parts[i] for i, name in enumerate(names) if name}

    def keep(self, frame: pd.DataFrame) -> tuple[pd.DataFrame, np.ndarray]:
        """The good rows of ``frame`` (aligned with the file) and their line numbers."""
        good = self.check.good
        return frame.loc[good].reset_index(drop=True), self.lines[good]


def _header_positions(path: Path, header: str, sep: str, wanted: list[str]) -> list[str]:
    """Names per header position (``""`` for unused columns); DataError if one is missing."""
    present = [h.strip().strip('"').lstrip("\ufeff") for h in header.split(sep)]
    for name in wanted:
        if name not in present:
            raise DataError(
                f"header has no '{name}' column (found: {', '.join(present)})",
                file=str(path),
                line=1,
                column=name,
            )
    return [h if h in wanted else "" for h in present]


def _year_from_title(titles: pd.Series) -> pd.Series:
    return pd.to_numeric(titles.str.extract(r"\((\d{4})\)\s*$")[0], errors="coerce").astype(float)


def _lists(split: pd.Series, drop: tuple[str, ...] = ("",)) -> list[list[str]]:
    return [[g for g in parts if g not in drop] if isinstance(parts, list) else [] for parts in split.tolist()]


def _ratings(path: Path, sep: str, encoding: str, report: BadRowReport, header: bool = False) -> tuple[pd.DataFrame, np.ndarray]:
    names = ["userId", "movieId", "rating", "timestamp"] if header else ["user_id", "item_id", "rating", "timestamp"]
    table = _Table(path, sep, names, encoding, report, header=header)
    c, check = table.cols, table.check
    user, item, rating, ts = (c[n] for n in names)
    frame = pd.DataFrame(
        {
            "user_id": check.int_ids(user, "user_id"),
            "item_id": check.int_ids(item, "item_id"),
            "timestamp": check.ints(ts, "timestamp"),
            "weight": check.floats(rating, "weight"),
        }
    )
    return table.keep(frame)


def _zip_prefix(zips: pd.Series) -> pd.Series:
    return zips.fillna("").str.slice(0, 3)


def _with_files(data: dict[str, tuple[pd.DataFrame, np.ndarray, Path]], source: str, report: BadRowReport) -> CanonicalData:
    return CanonicalData(
        interactions=data["interactions"][0],
        items=data["items"][0],
        users=data["users"][0],
        source=source,
        report=report,
        files={k: str(v[2]) for k, v in data.items()},
        lines={k: v[1] for k, v in data.items()},
    )


def _bare_users(interactions: pd.DataFrame) -> pd.DataFrame:
    ids = pd.unique(interactions["user_id"].to_numpy())
    return pd.DataFrame({"user_id": pd.Series(ids, dtype=str)})


def _step(
    progress: Progress,
    path: Path,
    reader: Callable[..., tuple[pd.DataFrame, np.ndarray]],
    *args: object,
) -> tuple[pd.DataFrame, np.ndarray, Path]:
    """Run ``reader(path, *args)`` as one progress step."""
    with progress.step(f"reading {path.name}") as done:
        frame, lines = reader(path, *args)
        done(f"{len(frame):,} rows")
    return frame, lines, path


# ---------------------------------------------------------------- 100K
def _items_100k(path: Path, report: BadRowReport) -> tuple[pd.DataFrame, np.ndarray]:
    names = ["item_id", "title", "release_date", "video_release_date", "url"] + GENRES_100K
    table = _Table(path, "|", names, "latin-1", report)
    c, check = table.cols, table.check
    ids = check.int_ids(c["item_id"], "item_id")
    flags = pd.DataFrame({g: c[g] for g in GENRES_100K})
    ok = flags.isin(["0", "1"]).all(axis=1).to_numpy()
    check.flag(~ok, "genres", "genre flags must be 0 or 1")
    titles = c["title"].fillna("")
    year = _year_from_title(titles)
    from_date = pd.to_numeric(c["release_date"].fillna("").str.extract(r"(\d{4})\s*$")[0], errors="coerce")
    names_arr = np.array(GENRES_100K, dtype=object)
    genres = [names_arr[row].tolist() for row in (flags == "1").to_numpy(dtype=bool)]
    frame = pd.DataFrame(
        {
            "item_id": ids,
            "title": titles,
            "genres": pd.Series(genres, dtype=object),
            "year": year.fillna(from_date).astype(float),
        }
    )
    return table.keep(frame)


def _users_100k(path: Path, report: BadRowReport) -> tuple[pd.DataFrame, np.ndarray]:
    table = _Table(path, "|", ["user_id", "age", "gender", "occupation", "zip"], "latin-1", report)
    c, check = table.cols, table.check
    frame = pd.DataFrame(
        {
            "user_id": check.int_ids(c["user_id"], "user_id"),
            "age": check.floats(c["age"], "age", allow_missing=True),
            "gender": c["gender"].fillna(""),
            "occupation": c["occupation"].fillna(""),
            "zip_prefix": _zip_prefix(c["zip"]),
        }
    )
    return table.keep(frame)


def read_100k(path: Path, progress: Progress = QUIET) -> CanonicalData:
    """MovieLens 100K: ``u.data`` (tab), ``u.item`` and ``u.user`` (``|``, latin-1)."""
    report = BadRowReport()
    data = {
        "interactions": _step(progress, path / "u.data", _ratings, "\t", "latin-1", report),
        "items": _step(progress, path / "u.item", _items_100k, report),
    }
    if (path / "u.user").is_file():
        data["users"] = _step(progress, path / "u.user", _users_100k, report)
    else:
        users = _bare_users(data["interactions"][0])
        data["users"] = (users, np.arange(1, len(users) + 1), path / "u.data")
    return _with_files(data, f"movielens-100k:{path}", report)


# ---------------------------------------------------------------- 1M
def _items_dat(path: Path, report: BadRowReport) -> tuple[pd.DataFrame, np.ndarray]:
    table = _Table(path, "::", ["item_id", "title", "genres"], "latin-1", report)
    c, check = table.cols, table.check
    ids = check.int_ids(c["item_id"], "item_id")
    titles = c["title"].fillna("")
    frame = pd.DataFrame(
        {
            "item_id": ids,
            "title": titles,
            "genres": pd.Series(_lists(c["genres"].str.split("|", regex=False), ("", NO_GENRES)), dtype=object),
            "year": _year_from_title(titles),
        }
    )
    return table.keep(frame)


def _users_dat(path: Path, report: BadRowReport) -> tuple[pd.DataFrame, np.ndarray]:
    table = _Table(path, "::", ["user_id", "gender", "age", "occupation", "zip"], "latin-1", report)
    c, check = table.cols, table.check
    ids = check.int_ids(c["user_id"], "user_id")
    age = check.floats(c["age"], "age", allow_missing=True)
    code = pd.to_numeric(c["occupation"], errors="coerce")
    known = code.isin(list(OCCUPATIONS_1M)).to_numpy()
    check.flag(~known, "occupation", lambda v: f"occupation code {v!r} is not one of 0..20", c["occupation"])
    frame = pd.DataFrame(
        {
            "user_id": ids,
            "age": age,
            "gender": c["gender"].fillna(""),
            "occupation": code.map(OCCUPATIONS_1M).fillna("").astype(str),
            "zip_prefix": _zip_prefix(c["zip"]),
        }
    )
    return table.keep(frame)


def read_1m(path: Path, progress: Progress = QUIET) -> CanonicalData:
    """MovieLens 1M: ``ratings.dat``, ``movies.dat``, ``users.dat`` (``::``, latin-1)."""
    report = BadRowReport()
    data = {
        "interactions": _step(progress, path / "ratings.dat", _ratings, "::", "latin-1", report),
        "items": _step(progress, path / "movies.dat", _items_dat, report),
    }
    if (path / "users.dat").is_file():
        data["users"] = _step(progress, path / "users.dat", _users_dat, report)
    else:
        users = _bare_users(data["interactions"][0])
        data["users"] = (users, np.arange(1, len(users) + 1), path / "ratings.dat")
    return _with_files(data, f"movielens-1m:{path}", report)


# ---------------------------------------------------------------- latest / 20M / 25M
def _items_csv(path: Path, report: BadRowReport) -> tuple[pd.DataFrame, np.ndarray]:
    """``movies.csv`` through the csv module: titles are quoted and may hold commas."""
    if not path.is_file():
        raise DataError("file not found", file=str(path))
    with path.open(encoding="utf-8", errors="replace", newline="") as handle:
        reader = csv.reader(handle)
        header = next(reader, None)
        if header is None:
            raise DataError("file is empty (expected a header line)", file=str(path))
        header = [h.strip().lstrip("\ufeff") for h in header]
        for name in ("movieId", "title", "genres"):
            if name not in header:
                raise DataError(
                    f"header has no '{name}' column (found: {', '.join(header)})", file=str(path), line=1, column=name
                )
        rows, lines = [], []
        for row in reader:
            rows.append(row)
            lines.append(reader.line_num)
    width = len(header)
    padded = [r if len(r) == width else (r + [""] * width)[:width] for r in rows]
    nfields = np.array([len(r) for r in rows], dtype=np.int64)
    cols = (
        pd.DataFrame(padded, columns=header, dtype=str) if rows else pd.DataFrame({h: pd.Series([], dtype=str) for h in header})
    )
    check = RowChecker(str(path), np.array(lines, dtype=np.int64), report)
    check.flag(nfields == 0, None, "empty line")
    undecodable = np.zeros(len(rows), dtype=bool)
    for name in header:
        undecodable |= cols[name].str.contains("\ufffd", regex=False).to_numpy(dtype=bool)
    check.flag(undecodable, None, "bytes that are not valid utf-8")
    check.field_count(nfields, width, ",")
    ids = check.int_ids(cols["movieId"].str.strip(), "item_id")
    titles = cols["title"].str.strip()
    frame = pd.DataFrame(
        {
            "item_id": ids,
            "title": titles,
            "genres": pd.Series(_lists(cols["genres"].str.split("|", regex=False), ("", NO_GENRES)), dtype=object),
            "year": _year_from_title(titles),
        }
    )
    good = check.good
    return frame.loc[good].reset_index(drop=True), check.lines[good]


def read_movielens_latest(path: Path, progress: Progress = QUIET) -> CanonicalData:
    """MovieLens latest/20M/25M: ``ratings.csv`` and ``movies.csv`` (UTF-8, with headers).

    There is no user table in these releases: users get a bare ``user_id`` row.
    ``tags.csv`` and ``links.csv`` are ignored.
    """
    report = BadRowReport()
    data = {
        "interactions": _step(progress, path / "ratings.csv", _ratings, ",", "utf-8", report, True),
        "items": _step(progress, path / "movies.csv", _items_csv, report),
    }
    users = _bare_users(data["interactions"][0])
    data["users"] = (users, np.arange(1, len(users) + 1), path / "ratings.csv")
    return _with_files(data, f"movielens-latest:{path}", report)
