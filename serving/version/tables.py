"""A version's tables read into the lookups a request uses (items, users, seen lists), once at load.

:func:`read_tables` reads ``items.parquet``, ``users.parquet`` and ``seen.parquet``,
checks them against the manifest (row count, the columns the service reads, unique
ids) and returns :class:`Tables`. Any problem raises ``LoadError``
(``table_unreadable``, ``table_invalid``, ``shape_mismatch``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from serving.filter_columns import FilterColumn, filter_column, is_list_cell, is_missing_cell
from serving.ids import DuplicateIdError, IdIndex
from serving.items import ItemMetadata
from serving.model import QueryInput
from serving.seen import SeenRows, SeenRowsError
from serving.version.errors import LoadError

RESERVED_KEYS = ("item_id", "score", "rank")  # items.parquet columns that are not metadata


@dataclass(frozen=True)
class Tables:
    """What a version's tables become (see :class:`serving.model.LoadedModel` for each)."""

    items: ItemMetadata
    popularity: np.ndarray  # float64 [num_items], read-only
    popular_order: np.ndarray  # int64 rows by popularity desc, then row; read-only
    users: IdIndex
    user_features: dict[str, np.ndarray]
    seen: SeenRows
    filter_columns: dict[str, FilterColumn]


def _user_column(users: pd.DataFrame, qi: QueryInput) -> np.ndarray:
    col = users[qi.name]
    if qi.dtype == "float32":
        arr: np.ndarray = pd.to_numeric(col, errors="coerce").to_numpy(dtype=np.float32, na_value=np.nan)
    else:

        def cell(v: Any) -> str:
            if is_list_cell(v):
                return qi.separator.join(str(x) for x in v)
            if is_missing_cell(v):
                return ""
            return str(v)

        arr = np.array([cell(v) for v in col.tolist()], dtype=object)
    arr.flags.writeable = False
    return arr


def _read(path: Path, name: str) -> tuple[pa.Table, pd.DataFrame, pa.Table]:
    try:
        return (
            pq.read_table(path / "items.parquet"),
            pd.read_parquet(path / "users.parquet"),
            pq.read_table(path / "seen.parquet"),
        )
    except Exception as exc:
        raise LoadError("table_unreadable", f"version {name}: {type(exc).__name__}: {exc}", name) from exc


def _check_columns(item_table: pa.Table, users: pd.DataFrame, seen_table: pa.Table, name: str) -> None:
    for columns, col in (
        (item_table.column_names, "item_id"),
        (users.columns, "user_id"),
        (seen_table.column_names, "user_id"),
        (seen_table.column_names, "item_rows"),
    ):
        if col not in columns:
            raise LoadError("table_invalid", f"version {name}: a table lacks the column {col}", name)
    if "popularity" not in item_table.column_names:
        raise LoadError("table_invalid", "items.parquet lacks the popularity column", name)


def read_tables(path: Path, name: str, num_items: int, inputs: tuple[QueryInput, ...], pause: Callable[[], None]) -> Tables:
    """The tables of version ``name`` (folder ``path``) as lookups; ``pause`` between the steps."""
    item_table, users, seen_table = _read(path, name)
    pause()
    if item_table.num_rows != num_items:
        raise LoadError(
            "shape_mismatch", f"items.parquet has {item_table.num_rows} rows, manifest num_items is {num_items}", name
        )
    _check_columns(item_table, users, seen_table, name)
    try:
        item_ids = IdIndex(pc.cast(item_table.column("item_id"), pa.large_string()))
    except (DuplicateIdError, ValueError, pa.ArrowException) as exc:
        raise LoadError("table_invalid", f"items.parquet item_id: {exc} (ids must be unique, non-null strings)", name) from exc
    pause()
    user_id_strings = [str(v) for v in users["user_id"].tolist()]
    try:
        user_index = IdIndex(user_id_strings)
    except DuplicateIdError as exc:
        raise LoadError("table_invalid", "users.parquet has duplicate user_id values", name) from exc
    pause()
    missing = [qi.name for qi in inputs if qi.name != "user_id" and qi.name not in users.columns]
    if missing:
        raise LoadError("table_invalid", f"users.parquet lacks query input columns {missing}", name)
    if "user_id" in [qi.name for qi in inputs]:
        users = users.assign(user_id=user_id_strings)
    user_features = {qi.name: _user_column(users, qi) for qi in inputs}
    del users, user_id_strings
    try:
        seen = SeenRows.from_table(seen_table, user_index, num_items)
    except (SeenRowsError, pa.ArrowException) as exc:
        raise LoadError("table_invalid", f"seen.parquet: {exc}", name) from exc
    del seen_table
    pause()
    popularity = pd.to_numeric(item_table.column("popularity").to_pandas(), errors="coerce").fillna(0).to_numpy(dtype=np.float64)
    popular_order = np.lexsort((np.arange(num_items), -popularity)).astype(np.int64)
    popularity.flags.writeable = False
    popular_order.flags.writeable = False
    try:
        item_meta = ItemMetadata.from_table(item_ids, item_table, skip=RESERVED_KEYS)
    except (ValueError, pa.ArrowException) as exc:
        raise LoadError("table_invalid", f"items.parquet metadata: {exc}", name) from exc
    pause()
    filters = {}
    for col in item_table.column_names:
        if col not in RESERVED_KEYS and (fc := filter_column(str(col), item_table.column(col))) is not None:
            filters[str(col)] = fc
    del item_table
    pa.default_memory_pool().release_unused()  # the Parquet read buffers
    pause()
    return Tables(item_meta, popularity, popular_order, user_index, user_features, seen, filters)
