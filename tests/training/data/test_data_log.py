"""The interaction log as Parquet files: writing, reading, fingerprint and validation."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from training.data.bad_rows import DataError
from training.data.log import InteractionLog, LogWriter
from training.data.synthetic import generate_storefront
from training.data.tables import CanonicalData, finalize
from training.prepared import interaction_rows

COLUMNS = ("user_id", "item_id", "timestamp", "weight")


def _log_of(frame: pd.DataFrame, folder, file_rows: int = 4, chunk: int = 3) -> InteractionLog:
    writer = LogWriter(folder, tuple(frame.columns), file_rows=file_rows)
    for start in range(0, len(frame), chunk):
        writer.write(frame.iloc[start : start + chunk])
    return writer.close()


def _frame(n: int = 10) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "user_id": pd.Series([f"u{k % 3}" for k in range(n)], dtype=str),
            "item_id": pd.Series([f"i{k % 4}" for k in range(n)], dtype=str),
            "timestamp": np.arange(100, 100 + n, dtype=np.int64),
            "weight": np.linspace(1.0, 2.0, n),
        }
    )


def _data(frame: pd.DataFrame, log: InteractionLog | None) -> CanonicalData:
    items = pd.DataFrame({"item_id": pd.Series([f"i{k}" for k in range(4)], dtype=str)})
    users = pd.DataFrame({"user_id": pd.Series([f"u{k}" for k in range(3)], dtype=str)})
    if log is None:
        return CanonicalData(frame, items, users, "test", files={"interactions": "<interactions>"})
    return CanonicalData(log.empty_frame(), items, users, "test", log=log)


def test_a_log_is_written_across_files_of_at_most_file_rows_and_read_back_in_order(tmp_path):
    frame = _frame(10)
    log = _log_of(frame, tmp_path / "log", file_rows=4, chunk=3)
    assert [f.name for f in log.files] == ["part-00000.parquet", "part-00001.parquet", "part-00002.parquet"]
    assert [pq.ParquetFile(f).metadata.num_rows for f in log.files] == [4, 4, 2]
    assert log.rows == 10 and log.columns == COLUMNS
    assert InteractionLog.of(list(log.files)) == log
    read = pd.concat(list(log.frames(rows=3)), ignore_index=True)
    pd.testing.assert_frame_equal(read, frame)
    assert list(log.empty_frame().columns) == list(COLUMNS) and len(log.empty_frame()) == 0


def test_a_log_writer_refuses_a_folder_that_holds_a_log_and_columns_outside_the_canonical_ones(tmp_path):
    _log_of(_frame(3), tmp_path / "log")
    with pytest.raises(FileExistsError):
        LogWriter(tmp_path / "log", COLUMNS)
    with pytest.raises(ValueError, match="user_id and item_id"):
        LogWriter(tmp_path / "other", ("user_id", "title"))


def test_the_generated_storefront_written_as_a_log_is_the_same_data_with_the_same_fingerprint(tmp_path):
    in_memory = generate_storefront(items=120, users=80, interactions=3000, seed=5)
    as_log = generate_storefront(items=120, users=80, interactions=3000, seed=5, log_dir=tmp_path / "log")
    assert as_log.log is not None and as_log.num_interactions == 3000 and len(as_log.interactions) == 0
    read = pd.concat(list(as_log.log.frames()), ignore_index=True)
    pd.testing.assert_frame_equal(read, in_memory.interactions)
    assert as_log.fingerprint() == in_memory.fingerprint()
    other = generate_storefront(items=120, users=80, interactions=3000, seed=6, log_dir=tmp_path / "other")
    assert other.fingerprint() != as_log.fingerprint()


def test_interaction_rows_of_a_log_are_those_of_the_same_rows_in_memory(tmp_path):
    frame = _frame(10)
    from_log = _data(frame, _log_of(frame, tmp_path / "log"))
    in_memory = _data(frame, None)
    ids = (in_memory.users["user_id"].to_numpy(), in_memory.items["item_id"].to_numpy())
    a, b = interaction_rows(from_log, *ids), interaction_rows(in_memory, *ids)
    for field in ("user_rows", "item_rows", "times"):
        np.testing.assert_array_equal(getattr(a, field), getattr(b, field))


def _bad_frame() -> pd.DataFrame:
    frame = _frame(12)
    frame.loc[1, "user_id"] = ""
    frame.loc[3, "timestamp"] = -5
    frame.loc[5, "weight"] = np.nan
    frame.loc[6, "weight"] = np.inf
    frame.loc[8, "user_id"] = "u9"
    frame.loc[10, "item_id"] = "i7"
    return frame


def test_a_logs_bad_rows_are_named_by_file_and_row_with_the_in_memory_reasons_and_left_out(tmp_path):
    frame = _bad_frame()
    log = _log_of(frame, tmp_path / "log", file_rows=4)
    checked = finalize(_data(frame, log), max_bad_rows=10)
    in_memory = finalize(_data(frame, None), max_bad_rows=10)
    rows = checked.report.rows
    assert [(r.file, r.line) for r in rows] == [
        (str(log.files[0]), 2),
        (str(log.files[0]), 4),
        (str(log.files[1]), 2),
        (str(log.files[1]), 3),
        (str(log.files[2]), 1),
        (str(log.files[2]), 3),
    ]
    in_memory_rows = sorted(in_memory.report.rows, key=lambda r: r.line or 0)
    assert [(r.column, r.reason) for r in rows] == [(r.column, r.reason) for r in in_memory_rows]
    assert [r.reason for r in rows][2:] == [
        "weight nan is not a finite number",
        "weight inf is not a finite number",
        "unknown user_id 'u9' (not in the users table)",
        "unknown item_id 'i7' (not in the items table)",
    ]
    assert checked.log is not None and checked.log.files != log.files and checked.num_interactions == 6
    good = pd.concat(list(checked.log.frames()), ignore_index=True)
    pd.testing.assert_frame_equal(good, in_memory.interactions)
    assert checked.fingerprint() == in_memory.fingerprint()


def test_a_log_with_more_bad_rows_than_allowed_is_refused_at_its_first_bad_row(tmp_path):
    frame = _bad_frame()
    log = _log_of(frame, tmp_path / "log", file_rows=4)
    with pytest.raises(DataError) as error:
        finalize(_data(frame, log), max_bad_rows=5)
    assert error.value.file == str(log.files[0]) and error.value.line == 2 and error.value.column == "user_id"


def test_a_log_without_bad_rows_is_kept_as_it_is(tmp_path):
    log = _log_of(_frame(8), tmp_path / "log")
    checked = finalize(_data(_frame(8), log))
    assert checked.log == log and checked.report.count == 0


def test_a_log_whose_ids_are_not_strings_is_refused(tmp_path):
    frame = _frame(4)
    path = tmp_path / "log" / "part-00000.parquet"
    path.parent.mkdir()
    frame.assign(user_id=np.arange(4)).to_parquet(path)
    with pytest.raises(DataError, match="user_id must hold str ids"):
        finalize(_data(frame, InteractionLog.of([path])))
