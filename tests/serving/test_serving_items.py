"""ItemMetadata: JSON-ready metadata columns and the answer items built from them."""

import datetime as dt
import decimal
import math

import numpy as np
import orjson
import pyarrow as pa

from serving.ids import IdIndex
from serving.items import Coded, ItemMetadata, json_ready


def _table() -> pa.Table:
    return pa.table(
        {
            "item_id": ["a", "b", "c"],
            "title": ["A", None, "C"],
            "tags": [["x", "y"], [], None],
            "price": [1.5, float("nan"), 3.0],
            "stock": pa.array([1, None, 3], pa.int64()),
            "popularity": [5, 6, 7],
            "on_sale": [True, False, True],
            "added": pa.array([dt.datetime(2024, 1, 2, 3, 4, 5), None, dt.datetime(2025, 6, 7)], pa.timestamp("us")),
            "cost": pa.array([decimal.Decimal("1.25"), None, decimal.Decimal("2")], pa.decimal128(5, 2)),
            "brand": pa.array(["p", "q", "p"]).dictionary_encode(),
        }
    )


def test_answer_items_carry_id_score_rank_and_metadata() -> None:
    table = _table()
    meta = ItemMetadata.from_table(IdIndex(table.column("item_id")), table, skip=("item_id",))
    groups = meta.answer_items(np.array([2, 0, 1]), np.array([0.9, 0.5, 0.25]), [2, 1])
    assert [[i["item_id"] for i in g] for g in groups] == [["c", "a"], ["b"]]
    assert [[i["rank"] for i in g] for g in groups] == [[1, 2], [1]]
    first = groups[0][0]
    assert list(first)[:3] == ["item_id", "score", "rank"]
    assert first["score"] == 0.9 and first["tags"] is None and first["stock"] == 3 and first["on_sale"] is True
    assert first["added"] == "2025-06-07T00:00:00" and first["cost"] == 2.0 and first["brand"] == "p"
    b = orjson.loads(orjson.dumps(groups[1][0]))
    assert b["title"] is None and b["price"] is None and b["stock"] is None and b["tags"] == []
    assert groups[0][1]["added"] == "2024-01-02T03:04:05" and groups[0][1]["tags"] == ["x", "y"]
    assert meta.answer_items(np.array([], dtype=np.int64), np.array([]), [0, 0]) == [[], []]


def test_records_are_id_plus_metadata() -> None:
    table = _table()
    meta = ItemMetadata.from_table(IdIndex(table.column("item_id")), table, skip=("item_id", "popularity"))
    rec = meta.records(np.array([0]))[0]
    assert rec["item_id"] == "a" and "popularity" not in rec and "score" not in rec and rec["title"] == "A"


def test_plain_numbers_become_numpy_and_json_native_types() -> None:
    assert isinstance(json_ready(pa.chunked_array([[1, 2], [3]])), np.ndarray)
    assert isinstance(json_ready(pa.array([1.0, 2.0], pa.float32())), np.ndarray)
    with_null = json_ready(pa.array([1, None]))
    assert isinstance(with_null, pa.Array) and with_null.to_pylist() == [1, None]
    coded = json_ready(pa.array([b"ab", None, b"ab"]))
    assert isinstance(coded, Coded) and coded.take(np.array([2, 1, 0])) == ["ab", None, "ab"]
    many = json_ready(pa.array([f"title {i}" for i in range(5_000)]))  # too many distinct values to code
    assert isinstance(many, pa.Array) and many[4_999].as_py() == "title 4999"
    half = json_ready(pa.array(np.array([1.5, np.inf], dtype=np.float16)))
    assert isinstance(half, np.ndarray)
    assert half[0] == 1.5 and math.isinf(half[1])


def test_any_column_name_is_a_safe_key() -> None:
    names = ['a"b', "it's", "back\\slash", "lambda", "ünï", "}", "__import__('os')"]
    table = pa.table({"item_id": ["x", "y"], **{n: [i, i + 1] for i, n in enumerate(names)}})
    meta = ItemMetadata.from_table(IdIndex(table.column("item_id")), table, skip=("item_id",))
    [[item]] = meta.answer_items(np.array([1]), np.array([0.5]), [1])
    assert list(item) == ["item_id", "score", "rank", *names]
    assert [item[n] for n in names] == [i + 1 for i in range(len(names))]
    assert meta.records(np.array([0]))[0] == {"item_id": "x", **{n: i for i, n in enumerate(names)}}
