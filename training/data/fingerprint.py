"""A stable sha256 over DataFrames, for the dataset fingerprint in the manifest.

The digest depends only on table names, column names and order, and cell values
(not on pandas' internal dtypes or hashing seeds), so the same data gives the
same fingerprint in every process and across pandas versions.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Mapping

import numpy as np
import pandas as pd

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


def _column_chunks(series: pd.Series, kind: str) -> Iterator[bytes]:
    """The column's canonical bytes in pieces: text cells are joined by ``_ROW`` across pieces too."""
    separator = b"" if kind in ("bool", "int", "float") else _ROW.encode()
    for start in range(0, len(series), CHUNK_ROWS):
        piece = _chunk_bytes(series.iloc[start : start + CHUNK_ROWS], kind)
        yield piece if start == 0 else separator + piece


def fingerprint_tables(tables: Mapping[str, pd.DataFrame]) -> str:
    """sha256 hex over ``tables`` (name → frame), in the mapping's order. Each column is
    read twice a chunk at a time (its length, then its bytes), never copied whole."""
    digest = hashlib.sha256()
    for name, frame in tables.items():
        digest.update(f"table:{name}:{len(frame)}:{len(frame.columns)}\n".encode())
        for column in frame.columns:
            series = frame[column]
            kind = _column_kind(series)
            size = sum(len(piece) for piece in _column_chunks(series, kind))
            tag = {"string": "text", "other": "text"}.get(kind, kind)
            digest.update(f"column:{column}:{tag}:{size}\n".encode())
            for piece in _column_chunks(series, kind):
                digest.update(piece)
    return digest.hexdigest()
