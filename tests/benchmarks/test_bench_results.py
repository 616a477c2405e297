"""The result writer, the machine description and the small shared helpers."""

import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest

from benchmarks import common
from benchmarks.common import (
    fmt_table,
    machine_description,
    median,
    movielens_missing_message,
    require_movielens,
    write_results,
)


def test_machine_description_names_the_machine():
    m = machine_description()
    assert isinstance(m["cpu_model"], str) and m["cpu_model"]
    assert m["logical_cores"] >= 1 and m["usable_cores"] >= 1
    assert m["memory_bytes"] > 2**20 and m["memory_gib"] > 0
    assert m["python"].count(".") == 2
    for lib in ("tensorflow", "tensorflow-recommenders", "scann", "numpy"):
        assert lib in m["libraries"]
    assert m["libraries"]["numpy"] == np.__version__
    json.dumps(m)  # plain JSON


def test_write_results_json_and_summary(tmp_path):
    results = {
        "figure": np.float32(0.25),
        "count": np.int64(3),
        "array": np.arange(3),
        "missing": float("nan"),
        "path": tmp_path,
        "nested": {"t": (1, 2.5)},
    }
    machine = {"cpu_model": "test cpu", "usable_cores": 2, "memory_gib": 1.0, "python": "3.11.0", "libraries": {}}
    json_path, md_path = write_results(
        "unit", results, "## hello\n", out_dir=tmp_path, command=["python", "-m", "benchmarks.unit"], machine=machine, started=0.0
    )
    assert json_path == tmp_path / "unit.json" and md_path == tmp_path / "unit.md"
    doc = json.loads(json_path.read_text())
    assert doc["benchmark"] == "unit"
    assert doc["command"] == "python -m benchmarks.unit"
    assert doc["machine"]["cpu_model"] == "test cpu"
    assert doc["created_at"].endswith("+00:00")
    assert doc["wall_seconds"] >= 0
    r = doc["results"]
    assert r["figure"] == 0.25 and r["count"] == 3 and r["array"] == [0, 1, 2]
    assert r["missing"] is None and r["path"] == str(tmp_path) and r["nested"] == {"t": [1, 2.5]}
    md = md_path.read_text()
    assert "python -m benchmarks.unit" in md and "test cpu" in md and "## hello" in md
    assert not list(tmp_path.glob("*.tmp"))  # written atomically, nothing left behind


def test_write_results_describes_the_machine_by_default(tmp_path):
    json_path, _ = write_results("unit2", {"x": 1}, "s", out_dir=tmp_path)
    doc = json.loads(json_path.read_text())
    assert doc["machine"]["cpu_model"] and doc["command"].startswith("python -m benchmarks.unit2")


def test_the_command_names_the_module_that_ran_not_the_result_name(tmp_path, monkeypatch):
    """``python -m benchmarks.serving_load --out serving_load_1m_c32`` must not be recorded as
    ``python -m benchmarks.serving_load_1m_c32`` (no such module)."""
    import types

    main = types.ModuleType("__main__")
    main.__spec__ = types.SimpleNamespace(name="benchmarks.serving_load")
    monkeypatch.setitem(sys.modules, "__main__", main)
    monkeypatch.setattr(sys, "argv", ["serving_load.py", "--out", "serving_load_1m_c32"])
    json_path, md_path = write_results("serving_load_1m_c32", {"x": 1}, "s", out_dir=tmp_path, machine={"libraries": {}})
    expected = "python -m benchmarks.serving_load --out serving_load_1m_c32"
    assert json.loads(json_path.read_text())["command"] == expected
    assert f"`{expected}`" in md_path.read_text()
    main.__spec__ = None  # not run with -m: the result name stands in
    json_path, _ = write_results("unit3", {"x": 1}, "s", out_dir=tmp_path, machine={"libraries": {}})
    assert json.loads(json_path.read_text())["command"].startswith("python -m benchmarks.unit3")


def test_missing_movielens_is_a_clear_skip(tmp_path, capsys):
    msg = movielens_missing_message(tmp_path / "nowhere")
    assert msg.startswith("SKIPPED") and "nowhere" in msg
    with pytest.raises(SystemExit) as exc:
        require_movielens(tmp_path / "nowhere")
    assert exc.value.code == 0
    assert "SKIPPED" in capsys.readouterr().err
    (tmp_path / "u.data").write_text("")
    (tmp_path / "u.item").write_text("")
    assert movielens_missing_message(tmp_path) is None


def test_movielens_dir_prefers_argument_then_env(monkeypatch, tmp_path):
    monkeypatch.setenv(common.MOVIELENS_ENV, str(tmp_path))
    assert common.movielens_dir("/x") == Path("/x")
    assert common.movielens_dir(None) == tmp_path
    monkeypatch.delenv(common.MOVIELENS_ENV)
    assert common.movielens_dir(None) == common.DEFAULT_MOVIELENS


def test_median_and_table():
    assert median([3, 1, 2]) == 2 and median([4, 1, 2, 3]) == 2.5 and math.isnan(median([]))
    table = fmt_table(["a", "b"], [["x", 0.123456], ["y", None]])
    assert table.splitlines()[0] == "| a | b |" and "0.1235" in table and "| y | — |" in table


def test_a_package_run_with_dash_m_is_named_by_its_package(tmp_path, monkeypatch):
    """``python -m benchmarks.quality`` runs ``benchmarks/quality/__main__.py``: the recorded
    command names the package, the command a reader types."""
    import types

    main = types.ModuleType("__main__")
    main.__spec__ = types.SimpleNamespace(name="benchmarks.quality.__main__")
    monkeypatch.setitem(sys.modules, "__main__", main)
    monkeypatch.setattr(sys, "argv", ["__main__.py", "--quick"])
    json_path, _ = write_results("quality", {"x": 1}, "s", out_dir=tmp_path, machine={"libraries": {}})
    assert json.loads(json_path.read_text())["command"] == "python -m benchmarks.quality --quick"
