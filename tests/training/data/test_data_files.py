"""The user's own CSV/Parquet files with a YAML column mapping."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from training.data.bad_rows import DataError
from training.data.files import load_files, read_files
from training.data.tables import finalize


def write_spec(path: Path, spec: dict) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(spec), encoding="utf-8")
    return path


EVENTS_CSV = (
    "customer,sku,ts,qty,channel\nc1,007,1700000000,1,web\nc2,008,2024-01-02T00:00:00Z,2.5,app\nNA,007,1700000100,1,web\n"
)
PRODUCTS_CSV = "sku,name,genres,price\n007,Café racer,a|b| c ,9.5\n008,,,\n"


def csv_spec(tmp_path: Path, events: str = EVENTS_CSV, products: str = PRODUCTS_CSV, **overrides) -> Path:
    data = tmp_path / "data"
    data.mkdir(exist_ok=True)
    (data / "events.csv").write_text(events, encoding="utf-8")
    (data / "products.csv").write_text(products, encoding="utf-8")
    spec = {
        "interactions": {
            "path": "data/events.csv",
            "columns": {"user_id": "customer", "item_id": "sku", "timestamp": "ts", "weight": "qty"},
        },
        "items": {"path": "data/products.csv", "columns": {"item_id": "sku", "title": "name"}, "multi_valued": {"genres": "|"}},
    }
    spec.update(overrides)
    return write_spec(tmp_path / "spec.yaml", spec)


def test_csv_with_column_mapping(tmp_path: Path) -> None:
    data = load_files(csv_spec(tmp_path))
    inter = data.interactions
    assert list(inter.columns)[:4] == ["user_id", "item_id", "timestamp", "weight"]
    assert inter["user_id"].tolist() == ["c1", "c2", "NA"]  # "NA" is an id, not missing
    assert inter["item_id"].tolist() == ["007", "008", "007"]  # leading zeros kept
    assert inter["timestamp"].tolist() == [1700000000, 1704153600, 1700000100]
    assert inter["timestamp"].dtype == np.int64
    assert inter["weight"].tolist() == [1.0, 2.5, 1.0]
    assert inter["channel"].tolist() == ["web", "app", "web"]  # context column kept
    items = data.items.set_index("item_id")
    assert items.loc["007", "title"] == "Café racer"
    assert items.loc["007", "genres"] == ["a", "b", "c"] and items.loc["008", "genres"] == []
    assert items.loc["008", "title"] == "" and np.isnan(items["price"].loc["008"])
    assert sorted(data.users["user_id"]) == ["NA", "c1", "c2"]  # bare users
    assert data.source.startswith("files:")


def test_parquet_with_int_ids_datetimes_and_lists(tmp_path: Path) -> None:
    pd.DataFrame(
        {
            "uid": [10, 11, 10],
            "iid": [1, 2, 2],
            "when": pd.to_datetime(["2024-01-01", "2024-01-02", "2024-01-03"]),
        }
    ).to_parquet(tmp_path / "events.parquet")
    pd.DataFrame({"iid": [1, 2], "tags": [["x", "y"], []], "brand": ["acme", None]}).to_parquet(tmp_path / "items.pq")
    pd.DataFrame({"uid": [10, 11], "age": [30.0, np.nan]}).to_parquet(tmp_path / "users.parquet")
    spec = write_spec(
        tmp_path / "spec.yml",
        {
            "interactions": {
                "path": str(tmp_path / "events.parquet"),
                "columns": {"user_id": "uid", "item_id": "iid", "timestamp": "when"},
            },
            "items": {"path": "items.pq", "columns": {"item_id": "iid"}},
            "users": {"path": "users.parquet", "format": "parquet", "columns": {"user_id": "uid"}},
        },
    )
    data = load_files(spec)
    assert data.interactions["user_id"].tolist() == ["10", "11", "10"]
    assert data.interactions["timestamp"].tolist() == [1704067200, 1704153600, 1704240000]
    assert data.items["tags"].tolist() == [["x", "y"], []]
    assert data.items["brand"].tolist() == ["acme", ""]
    assert list(data.users.columns) == ["user_id", "age"]


def test_missing_mapped_column_names_file_and_column(tmp_path: Path) -> None:
    spec = csv_spec(tmp_path, interactions={"path": "data/events.csv", "columns": {"user_id": "customer", "item_id": "product"}})
    with pytest.raises(DataError) as caught:
        load_files(spec)
    assert caught.value.column == "product"
    assert (caught.value.file or "").endswith("events.csv") and "item_id" in str(caught.value)


def test_bad_rows_located_by_line(tmp_path: Path) -> None:
    events = (
        "customer,sku,ts,qty,channel\n"
        "c1,007,1700000000,1,web\n"  # 2 ok
        "c1,007,1700000000,1,web,extra\n"  # 3 too many fields
        "c2,999,1700000000,1,web\n"  # 4 unknown item
        "c2,008,yesterday-ish,1,web\n"  # 5 timestamp
        "c2,008,1700000000,lots,web\n"  # 6 weight
        "\n"  # 7 blank
        ",008,1700000000,1,web\n"  # 8 missing user
        "c3,008,-4,1,web\n"  # 9 negative timestamp
    )
    spec = csv_spec(tmp_path, events=events)
    data = load_files(spec, max_bad_rows=7)
    file = str(tmp_path / "data" / "events.csv")
    found = {(r.file, r.line, r.column) for r in data.report.rows}
    assert found == {
        (file, 3, None),
        (file, 4, "item_id"),
        (file, 5, "timestamp"),
        (file, 6, "weight"),
        (file, 7, None),
        (file, 8, "user_id"),
        (file, 9, "timestamp"),
    }
    assert data.lines["interactions"].tolist() == [2]
    with pytest.raises(DataError, match="7 bad row"):
        load_files(spec, max_bad_rows=6)


def test_a_csv_read_as_a_log_a_few_rows_at_a_time_finds_the_same_bad_lines_and_rows(tmp_path: Path, monkeypatch) -> None:
    """Given a folder for the log (``recsys train`` gives one), a CSV is read a chunk at a time
    into a log of files: the same bad rows by line (a malformed line, a blank one, an unknown
    item found by the log's checks) and the same good rows with their lines."""
    import training.data.files as files

    rows = [f"c{k % 4},00{7 + k % 2},{1700000000 + k},1,web" for k in range(14)]
    rows[3] = "c1,007,1700000000,1,web,extra"  # line 5: too many fields
    rows[6] = ""  # line 8: blank
    rows[9] = "c2,999,1700000000,1,web"  # line 11: unknown item
    rows[12] = "c2,008,yesterday-ish,1,web"  # line 14: timestamp
    spec = csv_spec(tmp_path, events="customer,sku,ts,qty,channel\n" + "\n".join(rows) + "\n")
    whole = load_files(spec, max_bad_rows=4)
    monkeypatch.setattr(files, "LOG_BATCH_ROWS", 3)
    logged = finalize(read_files(spec, log_dir=tmp_path / "log"), max_bad_rows=4)
    where = sorted((r.file, r.line, r.column) for r in logged.report.rows)
    assert where == sorted((r.file, r.line, r.column) for r in whole.report.rows)
    assert [line for _, line, _ in where] == [5, 8, 11, 14]
    assert logged.log is not None and len(logged.log.files) == 1
    read = pd.concat(list(logged.log.frames()), ignore_index=True)
    pd.testing.assert_frame_equal(read[list(logged.log.data_columns)], whole.interactions[list(logged.log.data_columns)])
    assert read["source_line"].tolist() == whole.lines["interactions"].tolist()


def test_duplicate_item_ids_in_items_file(tmp_path: Path) -> None:
    spec = csv_spec(tmp_path, products=PRODUCTS_CSV + "007,Again,,1\n")
    with pytest.raises(DataError) as caught:
        load_files(spec)
    assert "duplicate item_id '007'" in str(caught.value) and "lines 2, 4" in str(caught.value)


@pytest.mark.parametrize(
    "spec,match",
    [
        ({"items": {"path": "x.csv"}}, "interactions"),
        ({"interactions": {"path": "e.csv", "colums": {}}}, "colums"),
        ({"interactions": {"path": "e.csv", "format": "xlsx"}}, "format"),
        ({"interactions": {"path": "e.csv", "columns": {"user_id": 3}}}, "user_id"),
        (["not", "a", "mapping"], "mapping"),
    ],
)
def test_invalid_specs(tmp_path: Path, spec, match: str) -> None:
    path = write_spec(tmp_path / "spec.yaml", spec)
    with pytest.raises(DataError, match=match) as caught:
        load_files(path)
    assert caught.value.file == str(path)


def test_missing_spec_or_data_file(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="not found"):
        load_files(tmp_path / "nope.yaml")
    spec = write_spec(tmp_path / "s.yaml", {"interactions": {"path": "gone.csv"}})
    with pytest.raises(DataError, match="not found") as caught:
        load_files(spec)
    assert caught.value.file == str(tmp_path / "gone.csv")


def test_unknown_extension_needs_format(tmp_path: Path) -> None:
    (tmp_path / "events.dat").write_text("user_id,item_id\na,b\n")
    spec = write_spec(tmp_path / "s.yaml", {"interactions": {"path": "events.dat"}})
    with pytest.raises(DataError, match="format"):
        load_files(spec)
    spec = write_spec(tmp_path / "s.yaml", {"interactions": {"path": "events.dat", "format": "csv"}})
    assert load_files(spec).interactions["item_id"].tolist() == ["b"]


def test_column_name_conflict(tmp_path: Path) -> None:
    (tmp_path / "e.csv").write_text("user_id,customer,item_id\nx,c1,i1\n")
    spec = write_spec(tmp_path / "s.yaml", {"interactions": {"path": "e.csv", "columns": {"user_id": "customer"}}})
    with pytest.raises(DataError, match="also maps"):
        load_files(spec)


IDS = st.text(st.characters(blacklist_categories=("Cs", "Cc", "Zl", "Zp")), min_size=1, max_size=8)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    rows=st.lists(st.tuples(IDS, IDS, st.integers(0, 2**40), st.floats(-1e6, 1e6, allow_nan=False)), min_size=1, max_size=25),
    parquet=st.booleans(),
)
def test_property_rows_round_trip(rows: list[tuple[str, str, int, float]], parquet: bool) -> None:
    frame = pd.DataFrame(rows, columns=["who", "what", "when", "w"])
    with tempfile.TemporaryDirectory() as tmp:
        name = "events.parquet" if parquet else "events.csv"
        if parquet:
            frame.to_parquet(Path(tmp) / name)
        else:
            frame.to_csv(Path(tmp) / name, index=False)
        spec = write_spec(
            Path(tmp) / "spec.yaml",
            {
                "interactions": {
                    "path": name,
                    "columns": {"user_id": "who", "item_id": "what", "timestamp": "when", "weight": "w"},
                }
            },
        )
        data = read_files(spec)
    assert data.report.count == 0
    assert data.interactions["user_id"].tolist() == frame["who"].tolist()
    assert data.interactions["item_id"].tolist() == frame["what"].tolist()
    assert data.interactions["timestamp"].tolist() == frame["when"].tolist()
    assert np.allclose(data.interactions["weight"].to_numpy(float), frame["w"].to_numpy())
    assert data.lines["interactions"].tolist() == list(range(2 - parquet, len(rows) + 2 - parquet))
