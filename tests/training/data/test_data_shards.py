"""Interactions given as a folder of Parquet shards (``files:`` spec, ``path:``
a folder): the same data as one file gives the same tables, vocabularies,
split and seeded model; a bad row is named by its shard and row; a corrupt
shard by its file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from training.config import TrainConfig
from training.data.bad_rows import DataError
from training.data.files import load_files, read_files
from training.data.synthetic import generate_storefront
from training.data.tables import finalize
from training.pipeline import default_spec, split_with_validation
from training.prepared import prepare
from training.trainer import train


def _spec(path: Path, interactions: str) -> Path:
    spec = {"interactions": {"path": interactions, "columns": {"user_id": "customer", "item_id": "sku", "timestamp": "ts"}}}
    path.write_text(yaml.safe_dump(spec), encoding="utf-8")
    return path


def _events(n: int = 3000) -> pd.DataFrame:
    inter = generate_storefront(items=150, users=120, interactions=n, seed=5).interactions
    return pd.DataFrame({"customer": inter["user_id"], "sku": inter["item_id"], "ts": inter["timestamp"].astype("int64")})


def _write_shards(folder: Path, events: pd.DataFrame, cuts: list[int]) -> list[Path]:
    folder.mkdir(parents=True)
    paths = []
    for i, part in enumerate(np.split(np.arange(len(events)), cuts)):
        paths.append(folder / f"part-{i:03d}.parquet")
        events.iloc[part].to_parquet(paths[-1], index=False)
    return paths


def test_folder_of_shards_and_one_file_give_the_same_vocabularies_split_and_model(tmp_path):
    events = _events()
    events.to_parquet(tmp_path / "events.parquet", index=False)
    _write_shards(tmp_path / "shards", events, [700, 1900])  # unequal shards
    one = load_files(_spec(tmp_path / "one.yaml", "events.parquet"))
    many = load_files(_spec(tmp_path / "many.yaml", "shards"))
    for name in ("interactions", "items", "users"):
        pd.testing.assert_frame_equal(one.table(name), many.table(name))
    spec = default_spec(one.source, one, embedding_dim=8)
    config = TrainConfig(epochs=1, batch_size=256, seed=7)
    models = []
    for data in (one, many):
        prep = prepare(data, spec)
        split, fit_rows, val_rows = split_with_validation(prep, config)
        models.append((prep, split, fit_rows, train(prep, spec, config, fit_rows, val_rows, verbose=0).model))
    (p1, s1, f1, m1), (p2, s2, f2, m2) = models
    np.testing.assert_array_equal(p1.user_ids, p2.user_ids)
    np.testing.assert_array_equal(p1.item_ids, p2.item_ids)
    np.testing.assert_array_equal(s1.train, s2.train)
    np.testing.assert_array_equal(s1.test, s2.test)
    np.testing.assert_array_equal(f1, f2)
    for a, b in zip(m1.get_weights(), m2.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)


def _shards_with_a_bad_timestamp(folder: Path) -> tuple[pd.DataFrame, list[Path]]:
    """300 events in three shards; row 3 of the second has a timestamp that does not parse."""
    events = _events(300)
    shards = _write_shards(folder, events, [100, 200])
    bad = pd.read_parquet(shards[1])
    bad["ts"] = bad["ts"].astype(str)
    bad.loc[2, "ts"] = "soon"
    bad.to_parquet(shards[1], index=False)
    return events, shards


def test_a_bad_row_is_named_by_its_shard_and_row(tmp_path):
    _, shards = _shards_with_a_bad_timestamp(tmp_path / "shards")
    spec = _spec(tmp_path / "spec.yaml", "shards")
    with pytest.raises(DataError, match="1 bad row"):
        load_files(spec)
    data = load_files(spec, max_bad_rows=1)
    assert [(r.file, r.line, r.column) for r in data.report.rows] == [(str(shards[1]), 3, "timestamp")]
    assert len(data.interactions) == 299


def test_a_corrupt_shard_is_named_by_file(tmp_path):
    shards = _write_shards(tmp_path / "shards", _events(300), [150])
    shards[1].write_bytes(b"PAR1 not really parquet")
    with pytest.raises(DataError) as caught:
        read_files(_spec(tmp_path / "spec.yaml", "shards"))
    assert caught.value.file == str(shards[1]) and "cannot read Parquet" in str(caught.value)


def test_a_folder_without_shards_is_an_error(tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("no shards here")
    with pytest.raises(DataError, match="no Parquet shards") as caught:
        read_files(_spec(tmp_path / "spec.yaml", "empty"))
    assert caught.value.file == str(tmp_path / "empty")


def _as_log(spec: Path, folder: Path, max_bad_rows: int = 0):
    return finalize(read_files(spec, log_dir=folder), max_bad_rows)


def test_shards_read_as_a_log_of_files_are_the_same_data_vocabularies_and_split(tmp_path):
    """Given a folder for the log (``recsys train`` gives one), Parquet interactions are read a batch
    at a time into a log of files, never whole: the same rows, tables, fingerprint and split."""
    events = _events()
    _write_shards(tmp_path / "shards", events, [700, 1900])
    spec = _spec(tmp_path / "spec.yaml", "shards")
    in_memory, logged = load_files(spec), _as_log(spec, tmp_path / "log")
    assert logged.log is not None and len(logged.interactions) == 0 and logged.num_interactions == 3000
    rows = pd.concat(list(logged.log.frames(list(logged.log.data_columns))), ignore_index=True)
    pd.testing.assert_frame_equal(rows, in_memory.interactions)
    for name in ("items", "users"):
        pd.testing.assert_frame_equal(logged.table(name), in_memory.table(name))
    assert logged.fingerprint() == in_memory.fingerprint()
    config = TrainConfig(epochs=1, batch_size=256, seed=7)
    spec_model = default_spec(in_memory.source, in_memory, embedding_dim=8)
    (s1, f1, v1), (s2, f2, v2) = (split_with_validation(prepare(d, spec_model), config) for d in (in_memory, logged))
    for a, b in ((s1.train, s2.train), (s1.test, s2.test), (f1, f2), (v1, v2)):
        np.testing.assert_array_equal(a, b)


def test_a_logs_bad_rows_are_named_by_their_shard_and_row_whichever_check_finds_them(tmp_path):
    """A row that does not parse is found while the shard is read; one naming an unknown
    item, by the log's checks over the files: both name the shard and its row."""
    events, shards = _shards_with_a_bad_timestamp(tmp_path / "shards")
    last = pd.read_parquet(shards[2])
    last.loc[4, "sku"] = "not-in-the-catalog"  # row 5 of the third shard
    last.to_parquet(shards[2], index=False)
    catalog = pd.DataFrame({"sku": sorted(set(events["sku"]))})
    catalog.to_parquet(tmp_path / "items.parquet", index=False)
    spec = yaml.safe_load((_spec(tmp_path / "spec.yaml", "shards")).read_text())
    spec["items"] = {"path": "items.parquet", "columns": {"item_id": "sku"}}
    (tmp_path / "spec.yaml").write_text(yaml.safe_dump(spec), encoding="utf-8")
    with pytest.raises(DataError, match="2 bad row"):
        _as_log(tmp_path / "spec.yaml", tmp_path / "log-a")
    data = _as_log(tmp_path / "spec.yaml", tmp_path / "log-b", max_bad_rows=2)
    assert [(r.file, r.line, r.column) for r in data.report.rows] == [
        (str(shards[1]), 3, "timestamp"),
        (str(shards[2]), 5, "item_id"),
    ]
    assert data.num_interactions == 298 and "not-in-the-catalog" in data.report.rows[1].reason


def test_a_corrupt_shard_read_as_a_log_is_named_by_file(tmp_path):
    shards = _write_shards(tmp_path / "shards", _events(300), [150])
    shards[1].write_bytes(b"PAR1 not really parquet")
    with pytest.raises(DataError) as caught:
        read_files(_spec(tmp_path / "spec.yaml", "shards"), log_dir=tmp_path / "log")
    assert caught.value.file == str(shards[1]) and "cannot read Parquet" in str(caught.value)


def test_the_readmes_flow_for_a_large_log_a_csv_converted_by_duckdb_gives_the_same_data(tmp_path):
    """README "A log too large for memory": DuckDB converts the CSV into one Parquet file, out of
    core and in the rows' order; the spec names it; the run's log holds the CSV's rows."""
    import duckdb

    _events(2000).to_csv(tmp_path / "events.csv", index=False)
    duckdb.sql(f"COPY (SELECT * FROM read_csv('{tmp_path / 'events.csv'}')) TO '{tmp_path / 'events.parquet'}' (FORMAT parquet)")
    from_csv = load_files(_spec(tmp_path / "csv.yaml", "events.csv"))
    converted = _as_log(_spec(tmp_path / "parquet.yaml", "events.parquet"), tmp_path / "log")
    rows = pd.concat(list(converted.log.frames(list(converted.log.data_columns))), ignore_index=True)
    pd.testing.assert_frame_equal(rows, from_csv.interactions)
    assert converted.fingerprint() == from_csv.fingerprint()
