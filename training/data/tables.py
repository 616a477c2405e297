"""The canonical tables every data source is turned into, and their validation.

A source reader produces a :class:`CanonicalData` (three pandas DataFrames plus a
:class:`~training.data.bad_rows.BadRowReport`); :func:`validate_canonical` then enforces the contract of
``docs/CONTRACTS.md`` section 1 and returns a cleaned copy. Rows that break it in
a recoverable way (a NaN weight, a negative timestamp, a reference to an unknown
item) become *bad rows*: counted, reported with file and line, and left out.
Breaks that make the data unusable (a missing column, duplicate ids, an empty
table) raise :class:`DataError`.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from training.data.bad_rows import BadRowReport, DataError
from training.data.fingerprint import fingerprint_tables
from training.data.log import InteractionLog
from training.data.log_checks import check_log

TABLES = ("interactions", "items", "users")
REQUIRED_COLUMNS: dict[str, tuple[str, ...]] = {
    "interactions": ("user_id", "item_id"),
    "items": ("item_id",),
    "users": ("user_id",),
}
_ID_COLUMN = {"items": "item_id", "users": "user_id"}


@dataclass(eq=False)
class CanonicalData:
    """The three canonical tables of one data source.

    ``files`` and ``lines`` are optional provenance for error messages: the file
    each table was read from, and the 1-based line (or record number) of each
    row. Readers fill them; :func:`validate_canonical` keeps them aligned.

    ``log``: the interactions as Parquet files (a source given a folder for them writes
    them there, :mod:`training.data.log`); ``interactions`` is then an empty frame with
    the log's columns, and the run reads the files.
    """

    interactions: pd.DataFrame
    items: pd.DataFrame
    users: pd.DataFrame
    source: str
    report: BadRowReport = field(default_factory=BadRowReport)
    files: dict[str, str] = field(default_factory=dict)
    lines: dict[str, np.ndarray] = field(default_factory=dict)
    log: InteractionLog | None = None

    @property
    def num_interactions(self) -> int:
        return len(self.interactions) if self.log is None else self.log.rows

    def interaction_frames(self, rows: int) -> Iterator[pd.DataFrame]:
        """The interactions (in memory or the log of files), ``rows`` at a time, in order."""
        if self.log is not None:
            yield from self.log.frames(list(self.log.data_columns), rows)
            return
        for start in range(0, len(self.interactions), rows):
            yield self.interactions.iloc[start : start + rows]

    def fingerprint(self) -> str:
        """sha256 hex of the three tables' columns and values (stable across runs; the same
        for a log as for the same interactions in memory)."""
        interactions = self.interactions if self.log is None else self.log
        return fingerprint_tables({"interactions": interactions, "items": self.items, "users": self.users})

    def release_interactions(self) -> None:
        """Drop the in-memory interaction log (and its line numbers), keeping its columns: for
        the owner of this data once the log is prepared into shards (``recsys train``). A log
        of files stays where it is."""
        self.interactions = self.interactions.iloc[:0].copy()
        self.lines.pop("interactions", None)

    def table(self, name: str) -> pd.DataFrame:
        """The table called ``name`` (one of :data:`TABLES`)."""
        if name not in TABLES:
            raise KeyError(name)
        return getattr(self, name)

    def where(self, name: str) -> tuple[str, np.ndarray]:
        """(file name, 1-based line per row) for table ``name``."""
        frame = self.table(name)
        file = self.files.get(name, f"<{name}>")
        lines = self.lines.get(name)
        if lines is None or len(lines) != len(frame):
            lines = np.arange(1, len(frame) + 1, dtype=np.int64)
        return file, np.asarray(lines, dtype=np.int64)


def _missing_string(series: pd.Series) -> np.ndarray:
    """True where an id is missing (NaN/None) or the empty string."""
    missing = series.isna().to_numpy(dtype=bool)
    if len(series) and not missing.all():
        missing = missing | (series == "").to_numpy(dtype=bool, na_value=False)
    return missing


def _check_columns(data: CanonicalData) -> None:
    for name in TABLES:
        frame = data.table(name)
        if not isinstance(frame, pd.DataFrame):
            raise DataError(f"{name} must be a pandas DataFrame, got {type(frame).__name__}")
        file = data.files.get(name)
        for column in REQUIRED_COLUMNS[name]:
            if column not in frame.columns:
                raise DataError(
                    f"{name} table has no '{column}' column (columns present: {', '.join(map(str, frame.columns)) or 'none'})",
                    file=file,
                    column=column,
                )


def _check_non_empty(data: CanonicalData, after_bad_rows: bool) -> None:
    for name in TABLES:
        if data.num_interactions if name == "interactions" else len(data.table(name)):
            continue
        file = data.files.get(name)
        if after_bad_rows or (file is not None and file in data.report.by_file()):
            raise DataError(
                f"{name} table has no valid rows left after skipping bad rows:\n{data.report.summary()}",
                file=file,
            )
        raise DataError(f"{name} table is empty", file=file)


def _check_id_type(name: str, column: str, series: pd.Series, file: str | None) -> None:
    kind = pd.api.types.infer_dtype(series, skipna=True)
    if kind not in ("string", "empty"):
        raise DataError(
            f"{name}.{column} must hold str ids, found {kind} values "
            f"(dtype {series.dtype}); readers convert ids with astype(str)",
            file=file,
            column=column,
        )


def _unique_ids(data: CanonicalData, name: str, keep: np.ndarray) -> None:
    column = _ID_COLUMN[name]
    frame = data.table(name)
    file, lines = data.where(name)
    ids = frame[column][keep].reset_index(drop=True)
    dup = ids.duplicated(keep=False).to_numpy()
    if not dup.any():
        return
    dup_ids = ids[dup].reset_index(drop=True)
    dup_lines = lines[keep][dup]
    first = dup_ids.iloc[0]
    where = dup_lines[(dup_ids == first).to_numpy()].tolist()
    n_dup = dup_ids.nunique()
    raise DataError(
        f"duplicate {column} {first!r} in {name} (lines {', '.join(map(str, where))}); "
        f"{n_dup} id(s) are duplicated; {column} must be unique",
        file=file,
        line=int(where[0]),
        column=column,
    )


def _mark(
    data: CanonicalData,
    name: str,
    bad: np.ndarray,
    mask: np.ndarray,
    column: str | None,
    reasons: str | list[str] | None = None,
    values: np.ndarray | pd.Series | None = None,
    template: str = "",
) -> None:
    """Report rows where ``mask`` holds that are not yet bad, then mark them bad."""
    new = mask & ~bad
    if not new.any():
        return
    file, lines = data.where(name)
    if reasons is None:
        reasons = [template.format(v) for v in np.asarray(values)[new].tolist()]
    data.report.add_many(file, lines[new], column, reasons)
    bad |= new


def _validate_entities(data: CanonicalData, name: str) -> np.ndarray:
    """Bad-row mask of items/users (missing ids); raises on duplicates/wrong types."""
    column = _ID_COLUMN[name]
    frame = data.table(name)
    bad = np.zeros(len(frame), dtype=bool)
    _mark(data, name, bad, _missing_string(frame[column]), column, f"missing {column}")
    _check_id_type(name, column, frame[column][~bad], data.files.get(name))
    _unique_ids(data, name, ~bad)
    return bad


def _numeric(data: CanonicalData, column: str, series: pd.Series) -> np.ndarray:
    if pd.api.types.is_bool_dtype(series) or not pd.api.types.is_numeric_dtype(series):
        raise DataError(
            f"interactions.{column} must be numeric, got dtype {series.dtype}",
            file=data.files.get("interactions"),
            column=column,
        )
    return series.to_numpy(dtype=np.float64, na_value=np.nan)


def _arrow_strings(series: pd.Series) -> pa.Array:
    array = pa.array(series.astype(str), type=pa.large_string(), from_pandas=True)
    return array.combine_chunks() if isinstance(array, pa.ChunkedArray) else array


def _isin(values: pd.Series, universe: pd.Series) -> np.ndarray:
    """Vectorised membership test of str id columns (in Arrow, no per-element Python)."""
    found = pc.is_in(_arrow_strings(values), value_set=_arrow_strings(universe))
    return found.to_numpy(zero_copy_only=False).astype(bool)


def _validate_interactions(
    data: CanonicalData, item_ids: pd.Series | None, user_ids: pd.Series | None
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """(bad-row mask, converted timestamp/weight columns) of ``data.interactions``; interactions
    naming a user or item outside ``user_ids`` / ``item_ids`` are bad (not checked when None)."""
    frame = data.interactions
    bad = np.zeros(len(frame), dtype=bool)
    converted: dict[str, np.ndarray] = {}
    file = data.files.get("interactions")
    for column in ("user_id", "item_id"):
        missing = _missing_string(frame[column])
        _mark(data, "interactions", bad, missing, column, f"missing {column}")
        _check_id_type("interactions", column, frame[column][~bad], file)
    if "timestamp" in frame.columns:
        series = frame["timestamp"]
        if pd.api.types.is_integer_dtype(series):
            values = series.to_numpy(dtype=np.int64)
            _mark(data, "interactions", bad, values < 0, "timestamp", values=values, template="negative timestamp {}")
            converted["timestamp"] = values
        else:
            floats = _numeric(data, "timestamp", series)
            finite = np.isfinite(floats)
            _mark(data, "interactions", bad, ~finite, "timestamp", values=floats, template="missing or non-finite timestamp ({})")
            with np.errstate(invalid="ignore"):
                integral = np.where(finite, np.floor(floats) == floats, True)
            _mark(data, "interactions", bad, ~integral, "timestamp", values=floats, template="timestamp {} is not whole seconds")
            _mark(
                data,
                "interactions",
                bad,
                np.where(finite, floats < 0, False),
                "timestamp",
                values=floats,
                template="negative timestamp {}",
            )
            converted["timestamp"] = np.where(bad, 0, np.nan_to_num(floats)).astype(np.int64)
    if "weight" in frame.columns:
        weights = _numeric(data, "weight", frame["weight"])
        _mark(
            data,
            "interactions",
            bad,
            ~np.isfinite(weights),
            "weight",
            values=weights,
            template="weight {} is not a finite number",
        )
        converted["weight"] = weights
    if item_ids is None or user_ids is None:
        return bad, converted
    users = frame["user_id"].fillna("")
    items = frame["item_id"].fillna("")
    unknown_user = ~bad & ~_isin(users, user_ids)
    _mark(
        data, "interactions", bad, unknown_user, "user_id", values=users, template="unknown user_id {!r} (not in the users table)"
    )
    unknown_item = ~bad & ~_isin(items, item_ids)
    _mark(
        data, "interactions", bad, unknown_item, "item_id", values=items, template="unknown item_id {!r} (not in the items table)"
    )
    return bad, converted


def _keep(frame: pd.DataFrame, bad: np.ndarray) -> pd.DataFrame:
    if not bad.any():
        return frame.reset_index(drop=True)
    return frame.loc[~bad].reset_index(drop=True)


def validate_canonical(data: CanonicalData) -> CanonicalData:
    """Check ``data`` against the canonical contract; return a cleaned copy.

    Raises :class:`DataError` for a missing required column, an empty table,
    duplicate item/user ids, or ids that are not strings. Recoverable problems
    become bad rows in ``data.report`` (the same report object is shared with
    the result) and are left out of the result: missing ids, a negative or
    non-integral timestamp, a non-finite weight, and interactions whose user or
    item is not in the users/items table. ``timestamp`` comes back as int64 and
    ``weight`` as float64; every table gets a fresh RangeIndex. A log of files is checked
    by queries over the files (:func:`training.data.log_checks.check_log`).
    """
    _check_columns(data)
    _check_non_empty(data, after_bad_rows=False)
    bad_items = _validate_entities(data, "items")
    bad_users = _validate_entities(data, "users")
    item_ids = data.items["item_id"][~bad_items]
    user_ids = data.users["user_id"][~bad_users]
    if data.log is not None:
        bad_inter, converted = np.zeros(0, dtype=bool), dict[str, np.ndarray]()
        log = check_log(data.log, item_ids, user_ids, data.report)
    else:
        bad_inter, converted = _validate_interactions(data, item_ids, user_ids)
        log = None

    interactions = data.interactions
    if converted:
        interactions = interactions.assign(**converted)
    bads = {"interactions": bad_inter, "items": bad_items, "users": bad_users}
    lines = {}
    for name in TABLES:
        if name in data.lines and len(data.lines[name]) == len(data.table(name)):
            lines[name] = np.asarray(data.lines[name], dtype=np.int64)[~bads[name]]
    result = replace(
        data,
        interactions=_keep(interactions, bad_inter),
        items=_keep(data.items, bad_items),
        users=_keep(data.users, bad_users),
        files=dict(data.files),
        lines=lines,
        log=log,
    )
    _check_non_empty(result, after_bad_rows=True)
    return result


def canonical_chunk(frame: pd.DataFrame, file: str, lines: np.ndarray, report: BadRowReport) -> tuple[pd.DataFrame, np.ndarray]:
    """A chunk of interactions as an interaction log holds it (:mod:`training.data.log`), and
    its rows' lines: the rules of :func:`validate_canonical` but the users and items
    tables' (checked on the whole log, :func:`training.data.log_checks.check_log`), bad rows
    reported into ``report`` by ``file`` and line and left out."""
    chunk = CanonicalData(
        frame, pd.DataFrame(), pd.DataFrame(), "chunk", report, files={"interactions": file}, lines={"interactions": lines}
    )
    for column in ("user_id", "item_id"):
        if column not in frame.columns:
            raise DataError(f"interactions table has no '{column}' column", file=file, column=column)
    bad, converted = _validate_interactions(chunk, None, None)
    return _keep(frame.assign(**converted), bad), np.asarray(lines, dtype=np.int64)[~bad]


def finalize(data: CanonicalData, max_bad_rows: int = 0) -> CanonicalData:
    """:func:`validate_canonical`, then fail if more than ``max_bad_rows`` rows were bad."""
    result = validate_canonical(data)
    result.report.check(max_bad_rows)
    return result
