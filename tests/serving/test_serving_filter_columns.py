"""Filter columns built from item metadata: the Arrow paths agree with the cell-by-cell rules."""

import numpy as np
import pandas as pd
import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st

import recsys  # noqa: F401  (first: TF_USE_LEGACY_KERAS)
from serving.filter_columns import FilterColumn, filter_column

TEXT = st.sampled_from(["a", "b", "", "ünï", "x y", "0"])


def prepared(name: str, arr: pa.Array | pa.ChunkedArray) -> FilterColumn:
    """``filter_column``, which must find the column filterable."""
    fc = filter_column(name, arr)
    assert fc is not None, f"{name}: not filterable"
    return fc


def rows_matching_scalar(fc, value):
    code = fc.code_of.get(value)
    return set() if code is None else set(np.flatnonzero(fc.codes == code).tolist())


def test_text_column_codes_each_value_and_counts_missing_as_empty() -> None:
    fc = prepared("category", pa.chunked_array([["x", None], ["y", "x", ""]]))
    assert fc.kind == "scalar"
    codes, _ = fc.scalar_codes()
    assert codes.dtype == np.int32 and not codes.flags.writeable
    assert rows_matching_scalar(fc, "x") == {0, 3}
    assert rows_matching_scalar(fc, "y") == {2}
    assert rows_matching_scalar(fc, "") == {1, 4}  # None and "" alike
    assert rows_matching_scalar(fc, "z") == set()


def test_dictionary_text_column_is_decoded() -> None:
    arr = pa.array(["red", "blue", None, "red"]).dictionary_encode()
    fc = prepared("colour", arr)
    assert fc.kind == "scalar"
    assert rows_matching_scalar(fc, "red") == {0, 3}
    assert rows_matching_scalar(fc, "") == {2}


def test_list_column_maps_each_value_to_sorted_distinct_rows() -> None:
    arr = pa.array([["a", "b", "a"], None, [], ["b", None], ["c"], ["a"]], type=pa.list_(pa.string()))
    fc = prepared("tags", arr)
    assert fc.kind == "list"
    assert {k: v.tolist() for k, v in fc.list_rows().items()} == {"a": [0, 5], "b": [0, 3], "c": [4]}
    assert all(v.dtype == np.int64 and not v.flags.writeable for v in fc.list_rows().values())


def test_sliced_and_large_list_columns_count_rows_from_the_column_start() -> None:
    full = pa.array([["z"], ["a"], ["b", "a"], ["a"]], type=pa.large_list(pa.large_string()))
    fc = prepared("tags", full.slice(1))
    assert {k: v.tolist() for k, v in fc.list_rows().items()} == {"a": [0, 1, 2], "b": [1]}


def test_numbers_and_booleans_are_numeric_with_nan_for_missing() -> None:
    fc = prepared("price", pa.array([1.5, None, 3.0]))
    assert fc.kind == "numeric"
    np.testing.assert_array_equal(fc.numeric_values(), [1.5, np.nan, 3.0])
    flags = prepared("in_stock", pa.array([True, False, True]))
    assert flags.kind == "numeric" and flags.numeric_values().tolist() == [1.0, 0.0, 1.0]


def test_lists_of_integers_and_booleans_are_matched_by_the_text_a_request_gives() -> None:
    fc = prepared("sizes", pa.array([[1, 2], None, [2, None]], type=pa.list_(pa.int64())))
    assert fc.kind == "list"
    assert {k: v.tolist() for k, v in fc.list_rows().items()} == {"1": [0], "2": [0, 2]}
    flags = prepared("flags", pa.array([[True], [False, True]], type=pa.list_(pa.bool_())))
    assert {k: v.tolist() for k, v in flags.list_rows().items()} == {"true": [0, 1], "false": [1]}


def test_other_scalar_types_are_filtered_as_their_text() -> None:
    days = pa.array([pd.Timestamp("2024-01-02").date(), None, pd.Timestamp("2024-01-02").date()])
    fc = prepared("day", days)
    assert fc.kind == "scalar"
    assert rows_matching_scalar(fc, "2024-01-02") == {0, 2}
    assert rows_matching_scalar(fc, "") == {1}


@settings(max_examples=60, deadline=None)
@given(st.lists(st.none() | TEXT, min_size=1, max_size=40))
def test_text_codes_agree_with_the_cell_rules(cells) -> None:
    fc = prepared("c", pa.array(cells, type=pa.string()))
    for value in {"" if c is None else c for c in cells} | {"missing"}:
        expected = {i for i, c in enumerate(cells) if ("" if c is None else c) == value}
        assert rows_matching_scalar(fc, value) == expected


@settings(max_examples=60, deadline=None)
@given(st.lists(st.none() | st.lists(st.none() | TEXT, max_size=5), min_size=1, max_size=40))
def test_list_rows_agree_with_the_cell_rules(cells) -> None:
    fc = prepared("c", pa.array(cells, type=pa.list_(pa.string())))
    expected: dict[str, list[int]] = {}
    for row, cell in enumerate(cells):
        for value in sorted({v for v in cell or [] if v is not None}):
            expected.setdefault(value, []).append(row)
    assert {k: v.tolist() for k, v in fc.list_rows().items()} == expected
