"""Column values of a user's files (:mod:`training.data.files`) in canonical form: ids as str,
timestamps as epoch seconds (integers or dates; bad ones reported as bad rows), multi-valued
metadata as lists, missing strings as ``""``."""

from __future__ import annotations

import numpy as np
import pandas as pd

from training.data.bad_rows import DataError
from training.data.parsing import RowChecker


def ids_to_str(series: pd.Series) -> pd.Series:
    """Ids as str (ints without ``.0``); missing stay missing."""
    if pd.api.types.is_float_dtype(series):
        values = series.to_numpy(dtype=np.float64, na_value=np.nan)
        finite = np.isfinite(values)
        with np.errstate(invalid="ignore"):
            integral = finite & (np.floor(values) == values)
        if integral[finite].all():
            series = series.astype("Int64")
    if pd.api.types.is_string_dtype(series) and not pd.api.types.is_object_dtype(series):
        return series
    missing = series.isna()
    return series.astype(str).where(~missing.to_numpy(), None).astype("str")


def epoch_seconds(stamps: pd.Series) -> np.ndarray:
    """Whole seconds since the epoch of tz-aware datetimes (NaN for NaT)."""
    delta = (stamps - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(seconds=1)
    return delta.to_numpy(dtype=np.float64, na_value=np.nan)


def timestamps(series: pd.Series, check: RowChecker) -> np.ndarray:
    """Epoch seconds as float64 (NaN in bad rows, which are reported)."""
    if pd.api.types.is_datetime64_any_dtype(series):
        stamps = series.dt.tz_localize("UTC") if series.dt.tz is None else series
        valid = stamps.notna().to_numpy()
        check.flag(~valid, "timestamp", "missing timestamp")
        return np.where(valid, epoch_seconds(stamps), np.nan)
    if pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series):
        return series.to_numpy(dtype=np.float64, na_value=np.nan)
    text = series.astype("str").str.strip()
    missing = (text.isna() | (text == "")).to_numpy(dtype=bool, na_value=True)
    check.flag(missing, "timestamp", "missing timestamp")
    numbers = np.array(pd.to_numeric(text, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan))  # a writable copy
    needs_date = ~missing & np.isnan(numbers)
    if needs_date.any():
        dates = pd.to_datetime(text[needs_date], utc=True, errors="coerce", format="mixed")
        ok = dates.notna().to_numpy()
        numbers[np.flatnonzero(needs_date)[ok]] = epoch_seconds(dates[ok])
        bad = np.zeros(len(text), dtype=bool)
        bad[np.flatnonzero(needs_date)[~ok]] = True
        check.flag(bad, "timestamp", lambda v: f"timestamp {v!r} is neither epoch seconds nor a date", text)
    return np.where(check.good, numbers, np.nan)


def split_multi(series: pd.Series, sep: str) -> pd.Series:
    def split(value: object) -> list[str]:
        if isinstance(value, (list, tuple, np.ndarray)):
            return [str(v) for v in value]
        if value is None or (isinstance(value, float) and np.isnan(value)):
            return []
        return [part.strip() for part in str(value).split(sep) if part.strip()]

    return pd.Series([split(v) for v in series.tolist()], index=series.index, dtype=object)


def tidy_metadata(frame: pd.DataFrame, id_column: str, multi: dict[str, str], file: str) -> pd.DataFrame:
    """Split multi-valued columns, turn Parquet lists into lists and missing strings into ""."""
    frame = frame.copy()
    for column, sep in multi.items():
        if column not in frame.columns:
            raise DataError(f"multi_valued column '{column}' is not in the file", file=file, column=column)
        frame[column] = split_multi(frame[column], sep)
    for column in frame.columns:
        if column == id_column or column in multi:
            continue
        series = frame[column]
        if pd.api.types.is_object_dtype(series) and len(series):
            first = series.dropna()
            if len(first) and isinstance(first.iloc[0], (list, tuple, np.ndarray)):
                frame[column] = split_multi(series, "\x00")  # Parquet lists → Python lists
                continue
        if pd.api.types.is_string_dtype(series) or pd.api.types.is_object_dtype(series):
            frame[column] = series.fillna("")
    return frame
