"""IdIndex: id <-> row without a Python object per id, and its dict fallback."""

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from serving.ids import DuplicateIdError, IdIndex

ID_TEXT = st.text(st.characters(exclude_categories=["Cs"]), min_size=0, max_size=12)


@settings(max_examples=150, deadline=None)
@given(ids=st.lists(ID_TEXT, min_size=0, max_size=60, unique=True), probes=st.lists(ID_TEXT, max_size=20))
def test_lookups_match_a_dict(ids, probes) -> None:
    truth = {v: i for i, v in enumerate(ids)}
    for index in (IdIndex(ids), IdIndex(ids, max_sorted_bytes=0)):  # sorted bytes, and the dict fallback
        assert len(index) == len(ids)
        assert list(index) == ids
        for key in ids + probes:
            assert index.get(key) == truth.get(key)
            assert (key in index) == (key in truth)
        keys = ids + probes
        assert index.rows(keys).tolist() == [truth.get(k, -1) for k in keys]
        rows = np.arange(len(ids))[::-1]
        assert index.ids(rows) == [ids[r] for r in rows]


def test_unicode_and_long_ids_round_trip() -> None:
    ids = ["é", "日本語-商品", "x" * 300, "a", "ab", "a\x00b"]
    index = IdIndex(ids)
    assert [index.get(v) for v in ids] == list(range(len(ids)))
    assert index.get("x" * 301) is None and index.get("abc") is None and index.get("") is None
    assert index.ids([1, 2]) == [ids[1], ids[2]]


def test_ids_that_bytes_cannot_hold_use_the_dict() -> None:
    for awkward in (["a", "a\x00"], ["", "b"]):
        index = IdIndex(awkward)
        assert [index.get(v) for v in awkward] == [0, 1]


def test_duplicates_and_nulls_are_refused() -> None:
    with pytest.raises(DuplicateIdError):
        IdIndex(["a", "b", "a"])
    with pytest.raises(DuplicateIdError):
        IdIndex(["a", "b", "a"], max_sorted_bytes=0)
    with pytest.raises(ValueError):
        IdIndex(pa.array(["a", None]))


def test_a_million_ids_stay_compact() -> None:
    ids = pa.array([f"i{i:07d}" for i in range(1_000_000)], type=pa.large_string())
    index = IdIndex(ids)
    assert index.get("i0765432") == 765432 and index.get("i1000000") is None
    assert index.rows(["i0000000", "nope", "i0999999"]).tolist() == [0, -1, 999999]
    assert index._sorted is not None and index._sorted.nbytes == 8_000_000  # 8 bytes per id, no dict
