"""Item metadata kept column by column, turned into answer items per batch.

One dict per catalog item cost about 460 MiB at a million items and made every
full garbage collection walk them. :class:`ItemMetadata` keeps each metadata
column of ``items.parquet`` as a numpy array (numbers and booleans without
nulls) or an Arrow array (strings, lists, nullable values), already in
JSON-ready types; :meth:`ItemMetadata.answer_items` gathers the rows a whole
micro-batch needs, one take per column, and builds the answer dicts.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from serving.ids import IdIndex

ANSWER_KEYS = ("item_id", "score", "rank")


def _orjson_native(t: pa.DataType) -> bool:
    """Types whose Python values orjson writes as they are."""
    if pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_boolean(t) or pa.types.is_null(t):
        return True
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        return True
    if pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t):
        return _orjson_native(t.value_type)
    return False


def _text(value: Any) -> Any:
    """A cell of an unusual type as JSON-ready text (timestamps in ISO 8601)."""
    if value is None:
        return None
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if hasattr(value, "isoformat"):
        return value.isoformat()
    if isinstance(value, (list, tuple)):
        return [_text(v) for v in value]
    return str(value)


class Coded:
    """A string column with few distinct values: an int32 code per item and the values (-1: null)."""

    __slots__ = ("codes", "values")

    def __init__(self, codes: np.ndarray, values: list[Any]) -> None:
        codes.flags.writeable = False
        self.codes = codes
        self.values = tuple(values) + (None,)  # code -1 picks the trailing None

    def __len__(self) -> int:
        return len(self.codes)

    def take(self, rows: np.ndarray) -> list[Any]:
        values = self.values
        return [values[c] for c in self.codes[rows].tolist()]


def _coded(arr: pa.Array, max_values: int) -> Coded | None:
    if not (pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type)) or not len(arr):
        return None
    encoded = arr.dictionary_encode()
    if len(encoded.dictionary) > max_values:
        return None
    codes = pc.fill_null(encoded.indices, -1).to_numpy(zero_copy_only=False).astype(np.int32)
    return Coded(codes, encoded.dictionary.to_pylist())


def json_ready(column: pa.ChunkedArray | pa.Array) -> pa.Array | np.ndarray | Coded:
    """One metadata column in the form :class:`ItemMetadata` serves it: numpy for
    numbers without nulls, :class:`Coded` for strings with few distinct values,
    Arrow for the rest."""
    arr = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    if pa.types.is_dictionary(arr.type):
        arr = arr.dictionary_decode()
    if pa.types.is_float16(arr.type) or pa.types.is_decimal(arr.type):
        arr = pc.cast(arr, pa.float64())
    if not _orjson_native(arr.type):
        values = [_text(v) for v in arr.to_pylist()]
        try:
            arr = pa.array(values)
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            arr = pa.array([None if v is None else str(v) for v in values], type=pa.large_string())
    if arr.null_count == 0 and (pa.types.is_integer(arr.type) or pa.types.is_floating(arr.type) or pa.types.is_boolean(arr.type)):
        out = arr.to_numpy(zero_copy_only=False)
        if pa.types.is_floating(arr.type):
            out = out.astype(np.float64)
        out.flags.writeable = False
        return out
    return _coded(arr, max_values=max(1024, len(arr) // 16)) or arr


def _row_builder(keys: Sequence[str]) -> Callable[..., dict[str, Any]]:
    """``f(v0, v1, ...) -> {keys[0]: v0, ...}`` as a compiled dict display: about twice as
    fast as ``dict(zip(keys, values))``, which matters for every item of every answer.
    The keys enter the source only as ``repr`` string literals."""
    params = ", ".join(f"v{i}" for i in range(len(keys)))
    body = ", ".join(f"{str(key)!r}: v{i}" for i in range(len(keys)) for key in (keys[i],))
    builder: Callable[..., dict[str, Any]] = eval(f"lambda {params}: {{{body}}}", {"__builtins__": {}})
    return builder


class ItemMetadata:
    """Item ids plus JSON-ready metadata columns, by item row."""

    def __init__(self, ids: IdIndex, columns: dict[str, pa.Array | np.ndarray]) -> None:
        for name, col in columns.items():
            if len(col) != len(ids):
                raise ValueError(f"metadata column {name} has {len(col)} rows for {len(ids)} items")
        self.ids = ids
        self.names: tuple[str, ...] = tuple(columns)
        self._columns = tuple(columns.values())
        self._answer_row = _row_builder(ANSWER_KEYS + self.names)
        self._record_row = _row_builder(("item_id",) + self.names)

    @classmethod
    def from_table(cls, ids: IdIndex, table: pa.Table, skip: Sequence[str]) -> ItemMetadata:
        return cls(ids, {name: json_ready(table.column(name)) for name in table.column_names if name not in skip})

    def _gather(self, rows: np.ndarray) -> list[list[Any]]:
        out = []
        taken = None
        for col in self._columns:
            if isinstance(col, np.ndarray):
                out.append(col[rows].tolist())
            elif isinstance(col, Coded):
                out.append(col.take(rows))
            else:
                taken = pa.array(rows, type=pa.int64()) if taken is None else taken
                out.append(col.take(taken).to_pylist())
        return out

    def answer_items(self, rows: np.ndarray, scores: np.ndarray, counts: Sequence[int]) -> list[list[dict[str, Any]]]:
        """Answer dicts (item_id, score, rank, metadata) for consecutive groups of ``counts`` rows."""
        rows = np.asarray(rows, dtype=np.int64)
        ranks: list[int] = []
        for n in counts:
            ranks.extend(range(1, n + 1))
        columns = [self.ids.ids(rows), np.asarray(scores, dtype=np.float64).tolist(), ranks, *self._gather(rows)]
        flat = list(map(self._answer_row, *columns))
        out, start = [], 0
        for n in counts:
            out.append(flat[start : start + n])
            start += n
        return out

    def records(self, rows: np.ndarray) -> list[dict[str, Any]]:
        """``{"item_id", **metadata}`` for ``rows`` (the demo's history)."""
        rows = np.asarray(rows, dtype=np.int64)
        columns = [self.ids.ids(rows), *self._gather(rows)]
        return list(map(self._record_row, *columns))
