"""A stable sha256 over DataFrames, for the dataset fingerprint in the manifest.

The digest depends only on table names, column names and order, and cell values
(not on pandas' internal dtypes or hashing seeds), so the same data gives the
same fingerprint in every process and across pandas versions.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping

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


def _column_bytes(series: pd.Series) -> tuple[str, bytes]:
    """(kind tag, canonical bytes) of one column."""
    if pd.api.types.is_bool_dtype(series) and not series.isna().any():
        return "bool", series.to_numpy(dtype=np.uint8).tobytes()
    if pd.api.types.is_integer_dtype(series) and not series.isna().any():
        return "int", series.to_numpy(dtype="<i8").tobytes()
    if pd.api.types.is_float_dtype(series):
        values = series.to_numpy(dtype="<f8", na_value=np.nan)
        values = np.where(np.isnan(values), np.nan, values)  # one NaN bit pattern
        return "float", values.astype("<f8").tobytes()
    if pd.api.types.is_datetime64_any_dtype(series):
        return "datetime", series.astype(str).str.cat(sep=_ROW).encode()
    if pd.api.types.infer_dtype(series, skipna=True) in ("string", "empty"):
        cells = series.astype(object).where(series.notna(), _NULL).tolist()
    else:
        cells = ["[" + _SEP.join(map(_cell_text, v)) + "]" if isinstance(v, list) else _cell_text(v) for v in series.tolist()]
    return "text", _ROW.join(cells).encode("utf-8", "surrogatepass")


def fingerprint_tables(tables: Mapping[str, pd.DataFrame]) -> str:
    """sha256 hex over ``tables`` (name → frame), in the mapping's order."""
    digest = hashlib.sha256()
    for name, frame in tables.items():
        digest.update(f"table:{name}:{len(frame)}:{len(frame.columns)}\n".encode())
        for column in frame.columns:
            kind, payload = _column_bytes(frame[column])
            digest.update(f"column:{column}:{kind}:{len(payload)}\n".encode())
            digest.update(payload)
    return digest.hexdigest()
