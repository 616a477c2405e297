"""benchmarks.train_memory: the peak RSS of the product's own ``recsys train`` command, one
process per size (the figures themselves are benchmark results, not asserted here)."""

import json
from pathlib import Path

from benchmarks import train_memory


def test_one_size_measures_recsys_train_itself(tmp_path: Path) -> None:
    run = train_memory.measure_one(users=150, items=200, interactions=3000, epochs=1, keep_log=tmp_path / "run.log")
    assert run["interactions"] == 3000 and run["epochs"] == 1
    assert 200 * 2**20 < run["peak_rss_bytes"] < 16 * 2**30  # a TensorFlow process's, not this test's counter at 0
    assert run["examples_per_second"] and run["examples_per_second"] > 0  # read from the run's own log
    rows, rest = divmod(run["table_bytes"], 64 * 4 * 3)  # (known users + known items + 2 OOV rows) x dim x 4 B x 3
    assert rest == 0 and 100 < rows <= 150 + 200 + 2
    assert "examples/s" in (tmp_path / "run.log").read_text() and len(run["peak_time_utc"]) == 8  # HH:MM:SS
    assert run["peak_during"]  # a line of its log: the run logs from its start, the peak comes after TF's import


def test_the_command_is_recsys_train_on_the_generated_storefront(tmp_path: Path) -> None:
    cmd = train_memory.train_command(10, 20, 300, 1, tmp_path)
    assert Path(cmd[0]).name == "recsys" and Path(cmd[0]).exists() and cmd[1] == "train"
    flags = dict(zip(cmd[2::2], cmd[3::2], strict=False))
    assert flags["--data"] == "synthetic" and flags["--interactions"] == "300" and flags["--epochs"] == "1"
    assert "--allow-low-recall" in cmd and json.dumps(cmd)


def test_the_peak_is_placed_after_the_last_line_written_before_it() -> None:
    text = "[18:01] a\n\n  [18:02] b  \n[18:03] c\n"
    assert train_memory._line_before(text, len(text)) == "[18:03] c"
    assert train_memory._line_before(text, len(text) - 3) == "[18:02] b"  # "[18:03] c" was half written
    assert train_memory._line_before(text, 3) == ""
