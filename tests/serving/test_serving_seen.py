"""SeenRows: the training items of each known user, as CSR arrays."""

import numpy as np
import pyarrow as pa
import pytest

from serving.ids import IdIndex
from serving.seen import SeenRows, SeenRowsError


def test_rows_are_sorted_unique_and_aligned_to_users() -> None:
    users = IdIndex(["u1", "u2", "u3"])
    table = pa.table({"user_id": ["u3", "u1", "ghost", "u3"], "item_rows": [[5, 1, 5], [0], [2], [4]]})
    seen = SeenRows.from_table(table, users, num_items=6)
    assert seen.of(0).tolist() == [0]
    assert seen.of(1).tolist() == [] and seen.count(1) == 0
    assert seen.of(2).tolist() == [1, 4, 5] and seen.count(2) == 3
    assert not seen.of(2).flags.writeable


def test_null_lists_are_empty_and_bad_rows_refused() -> None:
    users = IdIndex(["u1"])
    seen = SeenRows.from_table(pa.table({"user_id": ["u1"], "item_rows": pa.array([None], pa.list_(pa.int64()))}), users, 3)
    assert seen.of(0).tolist() == []
    for bad in ([3], [-1]):
        with pytest.raises(SeenRowsError):
            SeenRows.from_table(pa.table({"user_id": ["u1"], "item_rows": [bad]}), users, 3)
    empty = SeenRows.from_table(
        pa.table({"user_id": pa.array([], pa.string()), "item_rows": pa.array([], pa.list_(pa.int64()))}), users, 3
    )
    assert empty.of(0).tolist() == []


def test_many_users_match_a_per_user_unique() -> None:
    rng = np.random.default_rng(0)
    ids = [f"u{i}" for i in range(500)]
    lists = [rng.integers(0, 50, rng.integers(0, 12)).tolist() for _ in ids]
    seen = SeenRows.from_table(pa.table({"user_id": ids, "item_rows": lists}), IdIndex(ids), 50)
    for row, items in enumerate(lists):
        assert seen.of(row).tolist() == sorted(set(items))
