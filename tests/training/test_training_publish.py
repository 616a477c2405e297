"""Atomic publishing: LATEST, staging clean-up, retention, failures, SIGKILL."""

import errno
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from artifact.checksums import tree_checksums
from artifact.latest import list_versions, read_latest, write_latest
from training.publish import PublishError, clean_stale_staging, prune, publish


def write_small(dest: Path, version: str) -> None:
    (dest / "data.bin").write_bytes(os.urandom(2048))
    (dest / "sub").mkdir()
    (dest / "sub" / "x.txt").write_text(version)
    (dest / "manifest.json").write_text(json.dumps({"version": version, "files": tree_checksums(dest)}))


def assert_complete(root: Path, version: str) -> None:
    manifest = json.loads((root / version / "manifest.json").read_text())
    assert manifest["version"] == version
    assert tree_checksums(root / version) == manifest["files"]


def test_publish_writes_version_then_latest(tmp_path):
    v1 = publish(tmp_path, write_small, clock=lambda: 1000)
    v2 = publish(tmp_path, write_small, clock=lambda: 1000)  # same second -> still increasing
    assert (v1, v2) == ("1000", "1001")
    assert read_latest(tmp_path) == "1001"
    assert_complete(tmp_path, v2)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".staging-")]


def test_failing_writer_leaves_previous_version_and_no_staging(tmp_path):
    publish(tmp_path, write_small, clock=lambda: 10)

    def boom(dest: Path, version: str) -> None:
        (dest / "half").write_text("partial")
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(PublishError, match="No space left"):
        publish(tmp_path, boom, clock=lambda: 20)
    assert read_latest(tmp_path) == "10"
    assert list_versions(tmp_path) == ["10"]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".staging-")]


def test_retention_keeps_newest_and_never_the_one_latest_names(tmp_path):
    for t in range(1, 6):
        publish(tmp_path, write_small, retain=2, clock=lambda t=t: t * 100)
    assert list_versions(tmp_path) == ["400", "500"]
    write_latest(tmp_path, "400")  # e.g. an operator rolled back
    (tmp_path / "600").mkdir()
    (tmp_path / "700").mkdir()
    prune(tmp_path, retain=1)
    assert read_latest(tmp_path) == "400"
    assert list_versions(tmp_path) == ["400", "700"]


def test_stale_staging_of_dead_process_is_removed(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    stale = tmp_path / f".staging-123-{int(dead.stdout)}"
    stale.mkdir()
    mine = tmp_path / f".staging-124-{os.getpid()}"
    mine.mkdir()
    removed = clean_stale_staging(tmp_path)
    assert stale.name in removed and not stale.exists()


KILLER = textwrap.dedent(
    """
    import json, os, sys, time
    sys.path.insert(0, {repo!r})
    from pathlib import Path
    from training.publish import publish
    from artifact.checksums import tree_checksums

    def write(dest, version):
        for i in range(30):
            (dest / f"part{{i}}.bin").write_bytes(os.urandom(4096))
            time.sleep(0.002)
        (dest / "manifest.json").write_text(json.dumps({{"version": version, "files": tree_checksums(dest)}}))

    root = Path(sys.argv[1])
    while True:
        publish(root, write, retain=2)
    """
)


@pytest.mark.slow
def test_sigkill_at_random_points_never_breaks_latest(tmp_path):
    script = tmp_path / "publisher.py"
    script.write_text(KILLER.format(repo=str(Path(__file__).resolve().parents[2])))
    root = tmp_path / "root"
    publish(root, write_small, clock=lambda: 1)
    rng = np.random.default_rng(7)
    for _ in range(20):
        proc = subprocess.Popen([sys.executable, str(script), str(root)])
        time.sleep(float(rng.uniform(0.05, 0.6)))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        latest = read_latest(root)
        assert latest is not None and (root / latest).is_dir()
        manifest = json.loads((root / latest / "manifest.json").read_text())
        assert tree_checksums(root / latest) == manifest["files"]
    # the next publish cleans what the killed ones left behind
    publish(root, write_small)
    assert not [p for p in root.iterdir() if p.name.startswith((".staging-", ".LATEST."))]
