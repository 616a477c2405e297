"""A stable sha256 over DataFrames, for the dataset fingerprint in the manifest.

The digest depends only on table names, column names and order, and cell values
(not on pandas' internal dtypes or hashing seeds), so the same data gives the
same fingerprint in every process and across pandas versions.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Iterator, Mapping

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from training.data.log import InteractionLog

_SEP = "\x1f"  # between list elements
_ROW = "\x1e"  # between cells of a column
_NULL = "\x00null"


def _cell_text(value: object) -> str:
    if isinstance(value, (list, tuple, np.ndarray)):
        return "[" + _SEP.join(_cell_text(v) for v in value) + "]"
    if value is None or (isinstance(value, float) and value != value):
        return _NULL
    if value is pd.NA or value is pd.NaT:
        return _NULL
    return str(value)


CHUNK_ROWS = 1 << 18  # cells encoded at a time: a 20M-row column is hashed without a copy of it


def _chunk_bytes(series: pd.Series, kind: str) -> bytes:
    """The canonical bytes of consecutive cells ``series`` (a chunk of a column of ``kind``)."""
    if kind == "bool":
        return series.to_numpy(dtype=np.uint8).tobytes()
    if kind == "int":
        return series.to_numpy(dtype="<i8").tobytes()
    if kind == "float":
        values = series.to_numpy(dtype="<f8", na_value=np.nan)
        return np.where(np.isnan(values), np.nan, values).astype("<f8").tobytes()  # one NaN bit pattern
    if kind == "datetime":
        return series.astype(str).str.cat(sep=_ROW).encode()
    if kind == "string":
        cells = series.astype(object).where(series.notna(), _NULL).tolist()
    else:
        cells = ["[" + _SEP.join(map(_cell_text, v)) + "]" if isinstance(v, list) else _cell_text(v) for v in series.tolist()]
    return _ROW.join(cells).encode("utf-8", "surrogatepass")


def _column_kind(series: pd.Series) -> str:
    if pd.api.types.is_bool_dtype(series) and not series.isna().any():
        return "bool"
    if pd.api.types.is_integer_dtype(series) and not series.isna().any():
        return "int"
    if pd.api.types.is_float_dtype(series):
        return "float"
    if pd.api.types.is_datetime64_any_dtype(series):
        return "datetime"
    return "string" if pd.api.types.infer_dtype(series, skipna=True) in ("string", "empty") else "other"


def _column_chunks(pieces: Iterable[pd.Series], kind: str) -> Iterator[bytes]:
    """The column's canonical bytes a piece at a time: text cells are joined by ``_ROW``
    across pieces too, so the bytes do not depend on where the pieces are cut."""
    separator = b"" if kind in ("bool", "int", "float") else _ROW.encode()
    for k, series in enumerate(pieces):
        piece = _chunk_bytes(series, kind)
        yield piece if k == 0 else separator + piece


def _frame_columns(frame: pd.DataFrame) -> Iterator[tuple[str, str, Callable[[], Iterator[pd.Series]]]]:
    for column in frame.columns:
        series = frame[column]

        def pieces(series: pd.Series = series) -> Iterator[pd.Series]:
            return (series.iloc[start : start + CHUNK_ROWS] for start in range(0, len(series), CHUNK_ROWS))

        yield str(column), _column_kind(series), pieces


def _log_kind(kind: pa.DataType) -> str:
    """A log column's kind: its type is canonical (:data:`training.data.log.TYPES`) and
    validation left no nulls in it, so it hashes as the same column in memory does."""
    if pa.types.is_integer(kind):
        return "int"
    return "float" if pa.types.is_floating(kind) else "string"


def _log_columns(log: InteractionLog) -> Iterator[tuple[str, str, Callable[[], Iterator[pd.Series]]]]:
    schema = pq.read_schema(log.files[0])
    for column in log.data_columns:

        def pieces(column: str = column) -> Iterator[pd.Series]:
            return (frame[column] for frame in log.frames([column], CHUNK_ROWS))

        yield column, _log_kind(schema.field(column).type), pieces


def fingerprint_tables(tables: Mapping[str, pd.DataFrame | InteractionLog]) -> str:
    """sha256 hex over ``tables`` (name → frame or log of files), in the mapping's order. Each
    column is read twice a chunk at a time (its length, then its bytes), never copied whole."""
    digest = hashlib.sha256()
    for name, table in tables.items():
        if isinstance(table, InteractionLog):
            rows, columns = table.rows, list(_log_columns(table))
        else:
            rows, columns = len(table), list(_frame_columns(table))
        digest.update(f"table:{name}:{rows}:{len(columns)}\n".encode())
        for column, kind, pieces in columns:
            size = sum(len(piece) for piece in _column_chunks(pieces(), kind))
            tag = {"string": "text", "other": "text"}.get(kind, kind)
            digest.update(f"column:{column}:{tag}:{size}\n".encode())
            for piece in _column_chunks(pieces(), kind):
                digest.update(piece)
    return digest.hexdigest()
