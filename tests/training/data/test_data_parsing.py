"""Line reading and field splitting helpers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from training.data.bad_rows import BadRowReport
from training.data.parsing import RowChecker, read_lines, split_fields


def test_read_lines_keeps_blank_lines_and_strips_line_breaks(tmp_path: Path) -> None:
    path = tmp_path / "f.txt"
    path.write_bytes(b"a\tb\r\n\n  \nlast")
    assert read_lines(path).tolist() == ["a\tb", "", "  ", "last"]


def test_read_lines_keeps_unit_separators_and_decodes(tmp_path: Path) -> None:
    path = tmp_path / "f.txt"
    path.write_bytes("x\x1fy\ncaf\xe9\n".encode("latin-1"))
    assert read_lines(path, "latin-1").tolist() == ["x\x1fy", "café"]
    assert read_lines(path, "utf-8").tolist() == ["x\x1fy", "caf\ufffd"]


def test_read_lines_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "empty"
    path.write_bytes(b"")
    assert len(read_lines(path)) == 0


def test_split_fields_counts_and_pads() -> None:
    lines = pd.Series(["1::2::3", "4::5", " 6 :: 7 ::8::9", ""], dtype=str)
    parts, nfields = split_fields(lines, "::", 3)
    assert nfields.tolist() == [3, 2, 4, 1]
    assert parts[0].tolist() == ["1", "4", "6", ""]
    assert parts[1].tolist()[:3] == ["2", "5", "7"]
    assert pd.isna(parts[2].iloc[1]) and parts[2].iloc[2] == "8"


def test_row_checker_reports_each_row_once() -> None:
    report = BadRowReport()
    check = RowChecker("f", np.array([10, 11, 12]), report)
    values = pd.Series(["1", "x", "007"], dtype=str)
    ids = check.int_ids(values, "item_id")
    check.flag(np.array([False, True, True]), "other", "second problem")
    assert [(r.line, r.column) for r in report.rows] == [(11, "item_id"), (12, "other")]
    assert ids.tolist()[0] == "1" and ids.tolist()[2] == "7"
    floats = RowChecker("g", np.array([1, 2, 3]), report).floats(
        pd.Series(["1.5", "inf", None], dtype=str), "weight", allow_missing=True
    )
    assert floats[0] == 1.5 and np.isnan(floats[2])
    assert report.rows[-1].line == 2 and "finite" in report.rows[-1].reason
