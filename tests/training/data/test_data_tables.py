"""CanonicalData, BadRowReport, DataError, validate_canonical and the fingerprint."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from training.data.bad_rows import BadRow
from training.data.tables import (
    BadRowReport,
    CanonicalData,
    DataError,
    finalize,
    validate_canonical,
)

REPO = Path(__file__).resolve().parents[3]


def make(
    interactions: dict | None = None,
    items: dict | None = None,
    users: dict | None = None,
    lines: dict | None = None,
) -> CanonicalData:
    inter = interactions or {
        "user_id": ["u1", "u2", "u1"],
        "item_id": ["a", "b", "b"],
        "timestamp": [10, 20, 30],
        "weight": [1.0, 2.0, 3.0],
    }
    return CanonicalData(
        interactions=pd.DataFrame(inter),
        items=pd.DataFrame(items or {"item_id": ["a", "b"], "genres": [["x"], ["x", "y"]]}),
        users=pd.DataFrame(users or {"user_id": ["u1", "u2"], "age": [30.0, np.nan]}),
        source="test",
        files={"interactions": "events.csv", "items": "items.csv", "users": "users.csv"},
        lines=lines or {},
    )


def test_data_error_carries_location() -> None:
    error = DataError("bad value", file="u.data", line=7, column="rating")
    assert (error.file, error.line, error.column) == ("u.data", 7, "rating")
    assert str(error) == "u.data:7: column 'rating': bad value"
    assert str(DataError("plain")) == "plain"


def test_bad_row_report_counts_and_check() -> None:
    report = BadRowReport()
    report.add("a.csv", 3, "weight", "not a number")
    report.add_many("b.csv", [5, 9], None, "empty line")
    assert report.count == 3 and len(report) == 3
    assert report.by_file() == {"a.csv": 1, "b.csv": 2}
    assert report.rows[1] == BadRow("b.csv", 5, None, "empty line")
    assert str(report.rows[0]) == "a.csv:3: column 'weight': not a number"
    report.check(3)  # at the limit: fine
    with pytest.raises(DataError) as caught:
        report.check(2)
    message = str(caught.value)
    assert "3 bad row(s)" in message and "a.csv:3" in message and "b.csv:9" in message
    assert (caught.value.file, caught.value.line, caught.value.column) == ("a.csv", 3, "weight")
    with pytest.raises(DataError):
        report.check()  # default limit 0


def test_bad_row_report_summary_truncates() -> None:
    report = BadRowReport()
    report.add_many("f", list(range(1, 31)), None, "x")
    summary = report.summary(show=5)
    assert "f:5" in summary and "f:6" not in summary and "25 more" in summary
    assert BadRowReport().summary() == "no bad rows"


def test_validate_passes_clean_data_and_normalises_types() -> None:
    data = make(interactions={"user_id": ["u1", "u2"], "item_id": ["a", "b"], "timestamp": [1.0, 2.0], "weight": [1, 2]})
    result = validate_canonical(data)
    assert result.report is data.report and result.report.count == 0
    assert result.interactions["timestamp"].dtype == np.int64
    assert result.interactions["weight"].dtype == np.float64
    assert list(result.interactions.index) == [0, 1]


@pytest.mark.parametrize("table,column", [("interactions", "item_id"), ("items", "item_id"), ("users", "user_id")])
def test_missing_required_column_names_table_and_file(table: str, column: str) -> None:
    data = make()
    setattr(data, table, data.table(table).drop(columns=[column]))
    with pytest.raises(DataError) as caught:
        validate_canonical(data)
    assert caught.value.column == column
    assert table in str(caught.value) and column in str(caught.value)
    assert caught.value.file == data.files[table]


def test_empty_table_is_an_error() -> None:
    data = make()
    data.interactions = data.interactions.iloc[0:0]
    with pytest.raises(DataError, match="interactions table is empty"):
        validate_canonical(data)


def test_duplicate_item_ids_name_id_and_lines() -> None:
    data = make(items={"item_id": ["a", "b", "a"]}, lines={"items": np.array([2, 3, 9])})
    with pytest.raises(DataError) as caught:
        validate_canonical(data)
    message = str(caught.value)
    assert "'a'" in message and "lines 2, 9" in message
    assert caught.value.file == "items.csv" and caught.value.line == 2


def test_duplicate_user_ids_are_an_error() -> None:
    data = make(users={"user_id": ["u1", "u2", "u2"]})
    with pytest.raises(DataError, match="duplicate user_id 'u2'"):
        validate_canonical(data)


def test_unknown_references_are_bad_rows_with_file_and_line() -> None:
    data = make(
        interactions={"user_id": ["u1", "u9", "u2", "u1"], "item_id": ["a", "b", "zz", "b"]},
        lines={"interactions": np.array([2, 3, 4, 5])},
    )
    result = validate_canonical(data)
    rows = {(r.file, r.line, r.column) for r in result.report.rows}
    assert rows == {("events.csv", 3, "user_id"), ("events.csv", 4, "item_id")}
    assert "'zz'" in next(r.reason for r in result.report.rows if r.line == 4)
    assert result.interactions["item_id"].tolist() == ["a", "b"]
    assert result.lines["interactions"].tolist() == [2, 5]
    with pytest.raises(DataError, match="limit of 1"):
        finalize(data, max_bad_rows=1)
    assert finalize(make(interactions={"user_id": ["u1", "u9"], "item_id": ["a", "b"]}), max_bad_rows=1).report.count == 1


def test_negative_timestamp_and_nan_weight_are_bad_rows() -> None:
    data = make(
        interactions={
            "user_id": ["u1", "u2", "u1", "u2"],
            "item_id": ["a", "b", "b", "a"],
            "timestamp": [5, -1, 7, 8],
            "weight": [1.0, 1.0, np.nan, np.inf],
        }
    )
    result = validate_canonical(data)
    reasons = {(r.line, r.column): r.reason for r in result.report.rows}
    assert set(reasons) == {(2, "timestamp"), (3, "weight"), (4, "weight")}
    assert "negative" in reasons[(2, "timestamp")]
    assert len(result.interactions) == 1


def test_non_integral_float_timestamp_is_bad_row() -> None:
    data = make(interactions={"user_id": ["u1", "u2"], "item_id": ["a", "b"], "timestamp": [5.5, 6.0]})
    result = validate_canonical(data)
    assert [(r.line, r.column) for r in result.report.rows] == [(1, "timestamp")]
    assert result.interactions["timestamp"].tolist() == [6]


def test_missing_ids_are_bad_rows() -> None:
    data = make(interactions={"user_id": ["u1", None, ""], "item_id": ["a", "b", "b"]}, items={"item_id": ["a", "b", None]})
    result = validate_canonical(data)
    assert {(r.file, r.line) for r in result.report.rows} == {("events.csv", 2), ("events.csv", 3), ("items.csv", 3)}
    assert len(result.items) == 2


def test_int_ids_are_rejected() -> None:
    data = make(items={"item_id": [1, 2]})
    with pytest.raises(DataError, match="must hold str ids"):
        validate_canonical(data)


def test_non_numeric_weight_column_is_an_error() -> None:
    data = make(interactions={"user_id": ["u1"], "item_id": ["a"], "weight": ["high"]})
    with pytest.raises(DataError, match="weight must be numeric"):
        validate_canonical(data)


def test_all_rows_bad_is_an_error_even_with_a_high_limit() -> None:
    data = make(interactions={"user_id": ["x", "y"], "item_id": ["a", "b"]})
    with pytest.raises(DataError, match="no valid rows left"):
        finalize(data, max_bad_rows=100)


def test_fingerprint_is_stable_and_sensitive() -> None:
    first, second = make(), make()
    assert first.fingerprint() == second.fingerprint()
    assert len(first.fingerprint()) == 64
    changed = make()
    changed.items.at[1, "genres"] = ["x", "z"]  # type: ignore[assignment]  # pandas-stubs types a cell as a scalar; this object column holds lists
    assert changed.fingerprint() != first.fingerprint()
    changed = make()
    changed.interactions.loc[0, "weight"] = 1.5
    assert changed.fingerprint() != first.fingerprint()
    renamed = make()
    renamed.users = renamed.users.rename(columns={"age": "years"})
    assert renamed.fingerprint() != first.fingerprint()


def test_fingerprint_is_stable_across_processes() -> None:
    code = (
        "import recsys\n"
        "from training.data.synthetic import generate_storefront\n"
        "print(generate_storefront(items=50, users=20, interactions=300, seed=3).fingerprint())"
    )
    outputs = {
        subprocess.run(
            [sys.executable, "-c", code],
            cwd=REPO,
            capture_output=True,
            text=True,
            check=True,
            env={"PYTHONHASHSEED": str(seed), "PATH": ""},
        ).stdout.strip()
        for seed in (1, 2)
    }
    from training.data.synthetic import generate_storefront

    local = generate_storefront(items=50, users=20, interactions=300, seed=3).fingerprint()
    assert outputs == {local}
