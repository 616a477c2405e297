"""Vectorised parsing of delimited text files with per-line bad-row reporting.

:func:`read_lines` reads a file as one string per physical line (blank lines
kept, so row ``i`` is line ``i + 1``); :func:`split_fields` splits the lines on a
separator; :class:`RowChecker` parses columns with pandas and records every row
that fails, once, with its file, line and column, in a :class:`BadRowReport`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from training.data.bad_rows import BadRowReport, DataError

_PADDING = " \t"  # stripped around fields; other control characters make a field invalid
_INT_RE = r"[+-]?\d{1,18}"
_ID_RE = r"\d{1,18}"
_FLOAT_RE = r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?"


def read_lines(path: Path, encoding: str = "utf-8") -> pd.Series:
    """Every physical line of ``path`` (split on ``\n``, a trailing ``\r`` removed) as str.

    Blank lines are kept, so element ``i`` is line ``i + 1``. Bytes that do not
    decode in ``encoding`` become U+FFFD (see :meth:`RowChecker.undecodable`).
    The split runs in Arrow, so no Python object is made per line.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError("file not found", file=str(path))
    text = path.read_bytes().decode(encoding, errors="replace")
    if not text:
        return pd.Series([], dtype=str)
    whole = pa.array([text], type=pa.large_string())
    del text
    lines = pc.split_pattern(whole, pattern="\n").values
    if len(lines) > 1 and lines[len(lines) - 1].as_py() == "":
        lines = lines.slice(0, len(lines) - 1)  # the final line break ends the last line
    lines = pc.replace_substring_regex(lines, pattern="\r$", replacement="")
    return _to_series(lines)


def _arrow(series: pd.Series) -> pa.Array:
    array = pa.array(series, type=pa.large_string(), from_pandas=True)
    return array.combine_chunks() if isinstance(array, pa.ChunkedArray) else array


def _to_series(array: pa.Array) -> pd.Series:
    return pd.Series(pd.array(array, dtype="str"))


def split_fields(lines: pd.Series, sep: str, expected: int) -> tuple[pd.DataFrame, np.ndarray]:
    """Split ``lines`` on ``sep`` into ``expected`` str columns stripped of spaces and tabs.

    Returns the columns (0..expected-1; NaN where a line has fewer fields) and
    the number of fields each line really has. Runs in Arrow, not Python.
    """
    if len(lines) == 0:
        empty = pd.DataFrame({i: pd.Series([], dtype=str) for i in range(expected)})
        return empty, np.zeros(0, dtype=np.int64)
    array = _arrow(lines)
    nfields = pc.count_substring(array, sep).to_numpy(zero_copy_only=False).astype(np.int64) + 1
    lists = pc.split_pattern(array, pattern=sep, max_splits=expected)
    offsets = lists.offsets.to_numpy()
    values = lists.values
    lengths = np.diff(offsets)
    columns = {}
    for i in range(expected):
        has = lengths > i
        picked = values.take(pa.array(np.where(has, offsets[:-1] + i, 0)))
        picked = pc.if_else(pa.array(has), picked, pa.scalar(None, picked.type))
        columns[i] = _to_series(pc.utf8_trim(picked, characters=_PADDING))
    return pd.DataFrame(columns), nfields


class RowChecker:
    """Parses columns of one file and records each failing row once."""

    def __init__(self, file: str, lines: np.ndarray, report: BadRowReport) -> None:
        self.file = str(file)
        self.lines = np.asarray(lines, dtype=np.int64)
        self.report = report
        self.bad = np.zeros(len(self.lines), dtype=bool)

    @property
    def good(self) -> np.ndarray:
        """Mask of rows that passed every check so far."""
        return ~self.bad

    def flag(
        self,
        mask: np.ndarray,
        column: str | None,
        reason: str | Callable[[object], str],
        values: pd.Series | np.ndarray | None = None,
    ) -> None:
        """Record rows where ``mask`` holds (and that are not bad yet) as bad."""
        new = np.asarray(mask, dtype=bool) & ~self.bad
        if not new.any():
            return
        if callable(reason):
            picked = np.asarray(values, dtype=object)[new].tolist()
            reasons: str | list[str] = [reason(v) for v in picked]
        else:
            reasons = reason
        self.report.add_many(self.file, self.lines[new], column, reasons)
        self.bad |= new

    def blank(self, raw: pd.Series) -> None:
        """Blank (whitespace-only) lines are bad rows."""
        self.flag((raw.str.strip() == "").to_numpy(dtype=bool), None, "empty line")

    def undecodable(self, raw: pd.Series, encoding: str) -> None:
        """Lines holding bytes that did not decode are bad rows."""
        self.flag(raw.str.contains("\ufffd", regex=False).to_numpy(dtype=bool), None, f"bytes that are not valid {encoding}")

    def field_count(self, nfields: np.ndarray, expected: int, sep: str) -> None:
        """Lines with another number of ``sep``-separated fields are bad rows."""
        self.flag(nfields != expected, None, lambda n: f"expected {expected} fields separated by {sep!r}, found {n}", nfields)

    def present(self, series: pd.Series, column: str) -> None:
        """Missing or empty values are bad rows."""
        missing = series.isna().to_numpy() | (series.fillna("").astype(str) == "").to_numpy()
        self.flag(missing, column, f"missing {column}")

    def int_ids(self, series: pd.Series, column: str) -> pd.Series:
        """Decimal integer ids, normalised (no leading zeros), as str."""
        self.present(series, column)
        ok = series.fillna("").str.fullmatch(_ID_RE).to_numpy(dtype=bool)
        self.flag(~ok, column, lambda v: f"{column} {v!r} is not an integer id", series)
        cleaned = series.where(self.good, "0").fillna("0").str.lstrip("0")
        return cleaned.where(cleaned != "", "0")

    def ints(self, series: pd.Series, column: str) -> np.ndarray:
        """Whole numbers as int64 (0 in bad rows)."""
        self.present(series, column)
        ok = series.fillna("").str.fullmatch(_INT_RE).to_numpy(dtype=bool)
        self.flag(~ok, column, lambda v: f"{column} {v!r} is not an integer", series)
        cleaned = series.where(self.good, "0").fillna("0").str.lstrip("+")
        return pc.cast(_arrow(cleaned), pa.int64()).to_numpy(zero_copy_only=False)

    def floats(self, series: pd.Series, column: str, *, allow_missing: bool = False) -> np.ndarray:
        """Finite floats as float64; NaN where allowed to be missing, else bad rows."""
        missing = series.isna().to_numpy() | (series.fillna("") == "").to_numpy()
        if not allow_missing:
            self.flag(missing, column, f"missing {column}")
        number = series.fillna("").str.fullmatch(_FLOAT_RE).to_numpy(dtype=bool)
        cleaned = series.where(number, "nan").fillna("nan")
        values = pc.cast(_arrow(cleaned), pa.float64()).to_numpy(zero_copy_only=False)
        self.flag(~missing & ~np.isfinite(values), column, lambda v: f"{column} {v!r} is not a finite number", series)
        return np.where(self.good & ~missing, values, np.nan)
