"""Scratch folders under ``.runs/``: a folder whose owning process was killed is removed by
the next run of this host; a live process's folder, another host's folder and the runs'
own folders (resumable checkpoints, prepared shards) are kept."""

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from training.scratch import scratch_folder, stale_folders

_HOLD = """
import sys, time
from pathlib import Path
from training.scratch import scratch_folder
folder = scratch_folder(Path(sys.argv[1]), "log")
(Path(folder.name) / "part-0.parquet").write_bytes(b"x" * 1000)
print(folder.name, flush=True)
time.sleep(600)
"""


def _holder(runs: Path) -> tuple[subprocess.Popen, Path]:
    """A process that made a log scratch folder in ``runs`` and waits."""
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    child = subprocess.Popen([sys.executable, "-c", _HOLD, str(runs)], stdout=subprocess.PIPE, text=True, env=env)
    assert child.stdout is not None
    return child, Path(child.stdout.readline().strip())


def test_a_killed_processs_folder_is_removed_by_the_next_one_and_a_live_ones_kept(tmp_path):
    runs = tmp_path / ".runs"
    killed, left = _holder(runs)
    live, kept = _holder(runs)
    try:
        killed.send_signal(signal.SIGKILL)
        killed.wait()
        assert left.is_dir() and (left / "part-0.parquet").exists()  # what a SIGKILL leaves
        (runs / "0123abcd").mkdir()  # a run's own folder: resumable, never scratch
        ours = scratch_folder(runs, "export")
        assert not left.exists()
        assert kept.is_dir() and Path(ours.name).is_dir() and (runs / "0123abcd").is_dir()
        assert stale_folders(runs) == []
        ours.cleanup()
        assert not Path(ours.name).exists()
    finally:
        live.kill()
        live.wait()
    time.sleep(0.1)
    assert stale_folders(runs) == [kept]  # once its owner is gone


def test_the_same_pid_started_at_another_time_is_another_owner_and_other_hosts_are_left_alone(tmp_path):
    runs = tmp_path / ".runs"
    held = scratch_folder(runs, "log")
    mine = Path(held.name)
    pid, rest = mine.name.removeprefix("log-").split(".", 1)
    started, tail = rest.split("@", 1)
    restarted = runs / f"log-{pid}.{int(started) - 500}@{tail}"  # a container restarted: same pid, earlier start
    elsewhere = runs / f"log-{pid}.{started}@not-{socket.gethostname()}-abcd1234"
    restarted.mkdir()
    elsewhere.mkdir()
    assert stale_folders(runs) == [restarted]
    assert mine.is_dir()
    held.cleanup()


def test_an_unknown_kind_is_refused(tmp_path):
    with pytest.raises(ValueError, match="unknown scratch folder kind"):
        scratch_folder(tmp_path, "cache")
