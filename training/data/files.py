"""A user's own Parquet or CSV files, described by a YAML spec (see :mod:`files_spec`).

Ids become str; ``timestamp`` may be integer epoch seconds or dates (ISO text or
Parquet timestamps, converted to UTC seconds); ``weight`` must be numeric.
Unparseable rows are bad rows located by file and line (CSV: the physical line,
header = line 1, exact unless a quoted field spans lines; Parquet: the 1-based
row number). Missing string metadata becomes ``""``.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from training.data.bad_rows import BadRowReport, DataError
from training.data.file_values import ids_to_str, split_multi, tidy_metadata, timestamps
from training.data.files_spec import FilesSpec, InteractionsFile, ItemsFile, TableFile, UsersFile, load_spec
from training.data.log import PROVENANCE, InteractionLog, LogWriter
from training.data.parsing import RowChecker
from training.data.progress import QUIET, Progress
from training.data.tables import CanonicalData, canonical_chunk, finalize

DEFAULT_NA = [
    "",
    "#N/A",
    "#N/A N/A",
    "#NA",
    "-1.#IND",
    "-1.#QNAN",
    "-NaN",
    "-nan",
    "1.#IND",
    "1.#QNAN",
    "<NA>",
    "N/A",
    "NA",
    "NULL",
    "NaN",
    "None",
    "n/a",
    "nan",
    "null",
]
_COMPRESSION = {".gz", ".bz2", ".zip", ".xz", ".zst", ".tar"}
LOG_BATCH_ROWS = 1 << 20  # Parquet interactions read at a time when written as a log
_SKIPPED = re.compile(r"Skipping line (\d+): (.*)")


@dataclass
class _Read:
    """A table read from one file: the frame, 1-based line per row, the file name."""

    frame: pd.DataFrame
    lines: np.ndarray
    file: str


def _format(path: Path, spec: TableFile) -> str:
    if spec.format:
        return spec.format
    suffixes = [s.lower() for s in path.suffixes if s.lower() not in _COMPRESSION]
    last = suffixes[-1] if suffixes else ""
    if last in (".csv", ".tsv", ".txt"):
        return "csv"
    if last in (".parquet", ".pq", ".parq"):
        return "parquet"
    raise DataError("cannot tell the format from the extension; set format: csv|parquet", file=str(path))


def _undecodable_line(path: Path, encoding: str) -> int | None:
    """1-based number of the first line that does not decode, if any."""
    with open(path, "rb") as fh:
        for number, raw in enumerate(fh, start=1):
            try:
                raw.decode(encoding)
            except UnicodeDecodeError:
                return number
    return None


def _read_csv(path: Path, spec: TableFile, id_columns: list[str], report: BadRowReport) -> _Read:
    return next(_csv_chunks(path, spec, id_columns, report, None))


def _csv_chunks(path: Path, spec: TableFile, id_columns: list[str], report: BadRowReport, rows: int | None) -> Iterator[_Read]:
    """The CSV file ``rows`` rows at a time (all at once for None): each chunk with the 1-based
    line of each row (the header is line 1; lines pandas skipped as malformed are reported
    and numbered)."""
    sep = spec.sep or ("\t" if ".tsv" in [s.lower() for s in path.suffixes] else ",")
    options: dict[str, Any] = {"sep": sep, "encoding": spec.encoding, "engine": "c"}  # read_csv keywords both reads share
    try:
        header = list(pd.read_csv(path, nrows=0, **options).columns)
    except pd.errors.EmptyDataError as error:
        raise DataError("file is empty (expected a header line)", file=str(path)) from error
    except (pd.errors.ParserError, UnicodeDecodeError) as error:
        raise DataError(f"cannot read the header: {error}", file=str(path), line=1) from error
    na = {c: ([""] if c in id_columns else DEFAULT_NA) for c in header}

    def frames() -> Iterator[pd.DataFrame]:  # parsing happens inside next(), where its warnings are caught
        read = pd.read_csv(
            path,
            dtype={c: str for c in id_columns if c in header},
            keep_default_na=False,
            na_values=na,
            skip_blank_lines=False,
            on_bad_lines="warn",
            chunksize=rows,
            **options,
        )
        if isinstance(read, pd.DataFrame):
            yield read
        else:
            yield from read

    chunks = frames()
    record = 2  # the line of the next record
    while True:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", pd.errors.ParserWarning)
            try:
                frame = next(chunks, None)
            except UnicodeDecodeError as error:
                raise DataError(
                    f"bytes that are not valid {spec.encoding} (set `encoding:` in the spec)",
                    file=str(path),
                    line=_undecodable_line(path, spec.encoding),
                ) from error
            except pd.errors.ParserError as error:
                raise DataError(f"cannot parse the file: {error}", file=str(path)) from error
        skipped: list[int] = []
        for warning in caught:
            for number, reason in _SKIPPED.findall(str(warning.message)):
                skipped.append(int(number))
                report.add(str(path), int(number), None, reason)
        if frame is None:
            return
        records = np.arange(record, record + len(frame) + len(skipped), dtype=np.int64)
        record += len(records)
        lines = np.setdiff1d(records, np.array(skipped, dtype=np.int64)) if skipped else records
        yield _Read(frame, lines, str(path))


def _read_parquet(path: Path) -> _Read:
    try:
        frame = pd.read_parquet(path)
    except Exception as error:
        raise DataError(f"cannot read Parquet: {type(error).__name__}: {error}", file=str(path)) from error
    return _Read(frame.reset_index(drop=True), np.arange(1, len(frame) + 1, dtype=np.int64), str(path))


def _rename(read: _Read, mapping: dict[str, str], table: str) -> pd.DataFrame:
    frame = read.frame
    for canonical, theirs in mapping.items():
        if theirs not in frame.columns:
            raise DataError(
                f"{table} file has no column '{theirs}' (mapped to {canonical}); "
                f"columns present: {', '.join(map(str, frame.columns))}",
                file=read.file,
                column=theirs,
            )
    renames = {theirs: canonical for canonical, theirs in mapping.items() if theirs != canonical}
    for theirs, canonical in renames.items():
        if canonical in frame.columns and canonical not in renames:
            raise DataError(
                f"{table} file has a column '{canonical}' and also maps '{theirs}' to "
                f"{canonical}; map {canonical}: {canonical} or drop one of them",
                file=read.file,
                column=canonical,
            )
    frame = frame.rename(columns=renames)
    return frame


def _resolve(base: Path, spec: TableFile) -> Path:
    path = Path(spec.path).expanduser()
    return path if path.is_absolute() else base / path


def _read(path: Path, spec: TableFile, id_columns: list[str], report: BadRowReport, progress: Progress) -> _Read:
    if not path.is_file():
        raise DataError("data file not found", file=str(path))
    with progress.step(f"reading {path.name}") as done:
        fmt = _format(path, spec)
        read = _read_csv(path, spec, id_columns, report) if fmt == "csv" else _read_parquet(path)
        done(f"{len(read.frame):,} rows")
    return read


def shard_files(folder: Path) -> list[Path]:
    """A folder's Parquet shards, in name order (what ``path:`` may name
    instead of one interactions file)."""
    shards = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in (".parquet", ".pq", ".parq"))
    if not shards:
        raise DataError("folder holds no Parquet shards (*.parquet)", file=str(folder))
    return shards


def _interaction_files(path: Path, table: InteractionsFile) -> list[Path]:
    """The file ``path``, or the Parquet shards of the folder ``path`` in name order."""
    if not path.is_dir():
        return [path]
    if table.format == "csv":
        raise DataError("a folder of interactions must hold Parquet shards (format: parquet)", file=str(path))
    return shard_files(path)


def _interactions(base: Path, spec: FilesSpec, report: BadRowReport, progress: Progress) -> tuple[pd.DataFrame, np.ndarray, str]:
    """The good interaction rows, their line (row) numbers and their file.

    A folder of Parquet shards is read shard by shard in name order: parse
    errors name the shard and its row; the rows returned are numbered across
    the shards (the file is the folder), for the checks that follow."""
    table = spec.interactions
    path = _resolve(base, table)
    shards = _interaction_files(path, table)
    if not path.is_dir():
        return _interaction_rows(_read(path, table, _id_columns(table), report, progress), table, report)
    frames, lines, offset = [], [], 0
    for shard in shards:
        read = _read(shard, table, _id_columns(table), report, progress)
        frame, rows, _ = _interaction_rows(read, table, report)
        frames.append(frame)
        lines.append(rows + offset)
        offset += len(read.frame)
    return (
        pd.concat(frames, ignore_index=True),
        np.concatenate(lines),
        f"{path} (Parquet shards; rows counted across them in name order)",
    )


def _id_columns(table: InteractionsFile) -> list[str]:
    mapping = table.columns.mapping()
    return [mapping["user_id"], mapping["item_id"]]


def _interaction_rows(read: _Read, table: InteractionsFile, report: BadRowReport) -> tuple[pd.DataFrame, np.ndarray, str]:
    mapping = table.columns.mapping()
    frame = _rename(read, mapping, "interactions")
    check = RowChecker(read.file, read.lines, report)
    check.flag(frame.isna().all(axis=1).to_numpy(dtype=bool), None, "empty line")
    for column in ("user_id", "item_id"):
        frame[column] = ids_to_str(frame[column])
        check.flag(
            (frame[column].isna() | (frame[column] == "")).to_numpy(dtype=bool, na_value=True), column, f"missing {column}"
        )
    if "timestamp" in mapping:
        frame["timestamp"] = timestamps(frame["timestamp"], check)
    if "weight" in mapping and not pd.api.types.is_numeric_dtype(frame["weight"]):
        frame["weight"] = check.floats(frame["weight"].astype("str"), "weight")
    for column, sep in table.multi_valued.items():
        if column not in frame.columns:
            raise DataError(f"multi_valued column '{column}' is not in the file", file=read.file, column=column)
        frame[column] = split_multi(frame[column], sep)
    good = check.good
    return frame.loc[good].reset_index(drop=True), read.lines[good], read.file


def read_entities(
    base: Path, table: ItemsFile | UsersFile, id_column: str, report: BadRowReport, progress: Progress, name: str
) -> tuple[pd.DataFrame, np.ndarray, str]:
    mapping = table.columns.mapping()
    read = _read(_resolve(base, table), table, [mapping[id_column]], report, progress)
    frame = _rename(read, mapping, name)
    frame[id_column] = ids_to_str(frame[id_column])
    frame = frame[[id_column] + [c for c in frame.columns if c != id_column]]
    return tidy_metadata(frame, id_column, table.multi_valued, read.file), read.lines, read.file


def _bare(interactions: pd.DataFrame, column: str) -> pd.DataFrame:
    ids = interactions[column].dropna()
    return pd.DataFrame({column: pd.Series(pd.unique(ids.to_numpy(dtype=object)), dtype=str)})


def read_files(spec_path: str | Path, progress: Progress = QUIET, log_dir: Path | None = None) -> CanonicalData:
    """Read the files a YAML spec describes, unvalidated (see :func:`load_files`). ``log_dir``:
    the interactions (a CSV or Parquet file, or a folder of Parquet shards) are written there
    as an interaction log, a batch at a time (:func:`_interaction_log`), instead of being read whole."""
    spec_path = Path(spec_path).expanduser()
    spec = load_spec(spec_path)
    base = spec_path.parent
    report = BadRowReport()
    log = None
    path = _resolve(base, spec.interactions)
    if log_dir is not None:
        log, derived = _interaction_log(path, spec.interactions, report, progress, Path(log_dir))
        inter, inter_file = log.empty_frame(), str(path)
        lines: dict[str, np.ndarray] = {}
    else:
        inter, inter_lines, inter_file = _interactions(base, spec, report, progress)
        derived = {c: _bare(inter, c) for c in ("item_id", "user_id")}
        lines = {"interactions": inter_lines}
    files = {"interactions": inter_file}
    tables: dict[str, pd.DataFrame] = {}
    for name, table, id_column in (("items", spec.items, "item_id"), ("users", spec.users, "user_id")):
        if table is None:
            tables[name] = derived[id_column]
            files[name] = f"{inter_file} ({name} derived from interactions)"
            continue
        tables[name], lines[name], files[name] = read_entities(base, table, id_column, report, progress, name)
    return CanonicalData(inter, tables["items"], tables["users"], f"files:{spec_path}", report, files=files, lines=lines, log=log)


def _interaction_log(
    path: Path, table: InteractionsFile, report: BadRowReport, progress: Progress, folder: Path
) -> tuple[InteractionLog, dict[str, pd.DataFrame]]:
    """The interactions at ``path`` (a CSV or Parquet file, or a folder of Parquet shards read
    in name order) as an interaction log in ``folder``, read
    :data:`LOG_BATCH_ROWS` rows at a time: parsed as :func:`_interaction_rows` parses them,
    then held to the canonical rules (:func:`training.data.tables.canonical_chunk`), bad
    rows reported by file and row. Each row keeps its file and row (the log's provenance).
    Also the bare items and users tables of the ids of the parsed rows, in first-seen order (as
    :func:`_bare` makes them)."""
    mapping = table.columns.mapping()
    columns = tuple(c for c in ("user_id", "item_id", "timestamp", "weight") if c in mapping) + tuple(PROVENANCE)
    writer = LogWriter(folder, columns)
    seen: dict[str, np.ndarray] = {"item_id": np.zeros(0, dtype=object), "user_id": np.zeros(0, dtype=object)}
    for file in _interaction_files(path, table):
        with progress.step(f"reading {file.name}") as done:
            rows = 0
            for read in _chunks(file, table, report):
                rows += len(read.frame)
                parsed, lines, _ = _interaction_rows(read, table, report)
                good, lines = canonical_chunk(parsed, str(file), lines, report)
                writer.write(good.assign(source_file=str(file), source_line=lines))
                for column, ids in seen.items():
                    seen[column] = pd.unique(np.concatenate([ids, parsed[column].to_numpy(dtype=object)]))
            done(f"{rows:,} rows")
    derived = {c: _bare(pd.DataFrame({c: ids}), c) for c, ids in seen.items()}
    return writer.close(), derived


def _chunks(path: Path, table: InteractionsFile, report: BadRowReport) -> Iterator[_Read]:
    """The file :data:`LOG_BATCH_ROWS` rows at a time, each row with its line (CSV) or row (Parquet)."""
    if not path.is_file():
        raise DataError("data file not found", file=str(path))
    if _format(path, table) == "csv":
        yield from _csv_chunks(path, table, _id_columns(table), report, LOG_BATCH_ROWS)
        return
    rows = 0
    try:
        for batch in pq.ParquetFile(path).iter_batches(batch_size=LOG_BATCH_ROWS):
            frame = batch.to_pandas()
            yield _Read(frame, np.arange(rows + 1, rows + 1 + len(frame), dtype=np.int64), str(path))
            rows += len(frame)
    except (OSError, pa.ArrowException) as error:
        raise DataError(f"cannot read Parquet: {type(error).__name__}: {error}", file=str(path)) from error


def load_files(spec_path: str | Path, max_bad_rows: int = 0, progress: Progress = QUIET) -> CanonicalData:
    """Read, validate and check the user's Parquet/CSV files described by ``spec_path``."""
    return finalize(read_files(spec_path, progress), max_bad_rows)
