"""The items each known user interacted with in training, as one CSR array pair.

``seen.parquet`` holds a list of item rows per user id. :class:`SeenRows` keeps
them aligned to the rows of ``users.parquet``: ``offsets[u]:offsets[u + 1]`` of
``rows`` are user ``u``'s item rows, sorted and unique. Two numpy arrays
instead of a dict of a small array per user.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from serving.ids import IdIndex


class SeenRowsError(ValueError):
    """seen.parquet names item rows outside the catalog."""


class SeenRows:
    def __init__(self, offsets: np.ndarray, rows: np.ndarray) -> None:
        offsets.flags.writeable = False
        rows.flags.writeable = False
        self._offsets = offsets
        self._rows = rows

    @classmethod
    def from_table(cls, table: pa.Table, users: IdIndex, num_items: int) -> SeenRows:
        """From seen.parquet's ``user_id`` and ``item_rows`` columns; users not in ``users`` are left out."""
        lists = table.column("item_rows").combine_chunks() if table.num_rows else pa.array([], pa.list_(pa.int64()))
        if not (pa.types.is_list(lists.type) or pa.types.is_large_list(lists.type)):
            raise SeenRowsError("item_rows is not a list column")
        user_rows = users.rows([str(v) for v in table.column("user_id").to_pylist()]) if table.num_rows else np.zeros(0, np.int64)
        lengths = pc.fill_null(pc.list_value_length(lists), 0).to_numpy(zero_copy_only=False).astype(np.int64)
        flat = pc.list_flatten(lists)
        if flat.null_count:
            raise SeenRowsError("item_rows holds null rows")
        items = flat.to_numpy(zero_copy_only=False).astype(np.int64)
        if len(items) and (items.min() < 0 or items.max() >= num_items):
            raise SeenRowsError(f"seen.parquet names item rows outside 0..{num_items - 1}")
        owners = np.repeat(user_rows, lengths)
        keep = owners >= 0
        owners, items = owners[keep], items[keep]
        order = np.lexsort((items, owners))
        owners, items = owners[order], items[order]
        if len(items):
            fresh = np.ones(len(items), dtype=bool)
            fresh[1:] = (owners[1:] != owners[:-1]) | (items[1:] != items[:-1])
            owners, items = owners[fresh], items[fresh]
        counts = np.bincount(owners, minlength=len(users)) if len(owners) else np.zeros(len(users), dtype=np.int64)
        offsets = np.zeros(len(users) + 1, dtype=np.int64)
        np.cumsum(counts, out=offsets[1:])
        return cls(offsets, items.astype(np.int64))

    def of(self, user_row: int) -> np.ndarray:
        """Sorted unique item rows of user ``user_row`` (a read-only view)."""
        return self._rows[self._offsets[user_row] : self._offsets[user_row + 1]]

    def count(self, user_row: int) -> int:
        return int(self._offsets[user_row + 1] - self._offsets[user_row])
