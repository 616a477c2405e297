"""SIGKILL a real ``recsys update-catalog`` process while a service serves the
base version: while embedding, while building the index, and at seeded points
of writing and publishing the new version. After every kill ``LATEST`` still
names the base version, that version passes the service's verification, the
service still answers from it, and the next update cleans the leftovers and
is swapped to."""

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

import recsys  # noqa: F401  (first: TF_USE_LEGACY_KERAS)
from artifact.latest import list_versions, read_latest
from tests.training.catalog_support import copy_root, make_update, trained_base
from training.catalog_base import open_base

pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore:Using `httpx` with `starlette.testclient`")]

REPO = Path(__file__).resolve().parents[2]
CHILD = textwrap.dedent(
    """
    import sys
    sys.path.insert(0, {repo!r})
    import recsys  # noqa: F401  (first: TF_USE_LEGACY_KERAS)
    import training.catalog_update as update
    import training.index as index

    def announce(name, fn):
        def wrapped(*args, **kwargs):
            print(name, flush=True)
            return fn(*args, **kwargs)
        return wrapped

    update.SavedTower.embed = announce("EMBED", update.SavedTower.embed)
    update.build_index = announce("INDEX", update.build_index)
    update.write_version = announce("EXPORT", update.write_version)
    import training.publish as publish
    publish.fsync_tree = announce("FSYNC", publish.fsync_tree)  # the staging folder is written, not yet renamed
    from recsys.cli import app
    app(["update-catalog", "--model-root", sys.argv[1], "--items", sys.argv[2]])
    """
)
# (the line the child prints, seconds to wait after it): embedding and the index take
# a second or more for a 350-item catalog; writing and publishing the version about 0.2 s
KILLS = [("EMBED", 0.0), ("INDEX", 0.0), ("EXPORT", 0.0), ("FSYNC", 0.0)] + [
    ("EXPORT", float(t)) for t in np.random.default_rng(20).uniform(0.0, 0.15, 2)
]


def _start(script: Path, root: Path, items: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "3"}
    return subprocess.Popen(
        [sys.executable, str(script), str(root), str(items)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=env,
    )


def test_sigkill_during_an_update_leaves_latest_and_the_served_version_intact(tmp_path_factory, tmp_path):
    from fastapi.testclient import TestClient

    from serving.app import create_app
    from serving.settings import ServiceSettings

    src, base = trained_base(tmp_path_factory)
    root = copy_root(src, tmp_path / "models")
    items = make_update(root / base).write_csv(tmp_path / "items.csv")
    script = tmp_path / "child.py"
    script.write_text(CHILD.format(repo=str(REPO)))
    with TestClient(create_app(ServiceSettings(model_root=root, poll_interval_s=0.1))) as client:
        deadline = time.monotonic() + 60
        while client.get("/readyz").status_code != 200 and time.monotonic() < deadline:
            time.sleep(0.1)
        killed, served = 0, base
        for line, delay in KILLS:
            proc = _start(script, root, items)
            for said in proc.stdout:
                if said.strip() == line:
                    break
            time.sleep(delay)
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
            proc.wait()
            if proc.returncode == -signal.SIGKILL and read_latest(root) == served:
                killed += 1  # killed before its publish: nothing moved
            elif proc.returncode == -signal.SIGKILL:  # killed after its publish (a slow parent, a fast child): complete
                served = read_latest(root)
            else:  # the update finished before the signal: LATEST moved to a complete version
                assert proc.returncode == 0, (line, delay, proc.returncode)
                served = read_latest(root)
            open_base(root, served)  # every file matches the manifest, nothing unlisted
            deadline = time.monotonic() + 30
            while client.get("/v1/model").json()["model_version"] != served and time.monotonic() < deadline:
                time.sleep(0.1)
            assert client.get("/v1/model").json()["model_version"] == served
            assert client.post("/v1/recommendations", json={"user_id": "u000001", "k": 5}).status_code == 200
            for v in list_versions(root):  # a version folder is never partial
                manifest = json.loads((root / v / "manifest.json").read_text())
                assert manifest["version"] == v
        assert killed >= len(KILLS) - 2, "most kills must land before the update publishes"
        final = _start(script, root, items)
        out, _ = final.communicate(timeout=300)
        assert final.returncode == 0, out[-2000:]
        version = read_latest(root)
        assert version not in (base, served)
        assert not [p.name for p in root.iterdir() if p.name.startswith((".staging-", ".LATEST."))]
        deadline = time.monotonic() + 60
        while client.get("/v1/model").json()["model_version"] != version and time.monotonic() < deadline:
            time.sleep(0.1)
        assert client.get("/v1/model").json()["model_version"] == version
        assert client.get("/v1/items/new0000/similar").status_code == 200
