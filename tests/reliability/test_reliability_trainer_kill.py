"""SIGKILL a real trainer at random points of export and publish (issue 5, item 3).

Each round starts ``recsys``'s pipeline in a child process on a tiny generated
dataset, waits until it starts writing the version, then kills it after a
random delay drawn (seeded) over the export window. After every kill, LATEST
must name a complete version whose files all match the manifest's checksums,
and a server-side verifier must accept it; the next run cleans the leftovers.

Slow (about 10 s a round on a quiet machine, 30 s and more on a loaded one): run
with ``scripts/reliability.sh``; its time limit allows for a loaded machine.
"""

import json
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from artifact.checksums import tree_checksums
from artifact.latest import list_versions, read_latest

pytestmark = pytest.mark.reliability

CHILD = textwrap.dedent(
    """
    import sys
    sys.path.insert(0, {repo!r})
    import recsys  # noqa: F401  (first: TF_USE_LEGACY_KERAS)
    import training.export as export
    from training.config import TrainConfig
    from training.data.synthetic import generate_storefront
    from training.pipeline import run_pipeline

    original = export.write_version

    def announced(dest, artifact, version):
        print("EXPORT_START", flush=True)
        return original(dest, artifact, version)

    export.write_version = announced
    import training.pipeline as pipeline
    pipeline.write_version = announced
    data = generate_storefront(items=200, users=150, interactions=4000, seed=int(sys.argv[2]))
    run_pipeline(data, sys.argv[1], TrainConfig(epochs=1, batch_size=256, retain_versions=50), verbose=0)
    print("PUBLISHED", flush=True)
    """
)

ROUNDS = 20


def complete(root: Path, version: str) -> bool:
    manifest = json.loads((root / version / "manifest.json").read_text())
    return manifest["version"] == version and tree_checksums(root / version) == manifest["files"]


@pytest.mark.timeout(1800)
def test_killing_the_trainer_during_export_never_loses_or_breaks_a_version(tmp_path):
    repo = str(Path(__file__).resolve().parents[2])
    script = tmp_path / "child.py"
    script.write_text(CHILD.format(repo=repo))
    root = tmp_path / "models"
    # a first complete version, and the time one export + publish takes
    t0 = time.perf_counter()
    first = subprocess.run([sys.executable, str(script), str(root), "0"], capture_output=True, text=True, timeout=300)
    assert first.returncode == 0, first.stderr[-3000:]
    published = {read_latest(root)}
    rng = np.random.default_rng(2026)
    kills = 0
    for round_ in range(ROUNDS):
        proc = subprocess.Popen(
            [sys.executable, str(script), str(root), str(round_ + 1)],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        line = proc.stdout.readline()
        assert line.strip() == "EXPORT_START", line
        time.sleep(float(rng.uniform(0.0, 4.0)))
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            kills += 1
        proc.wait()
        latest = read_latest(root)
        assert latest is not None and complete(root, latest)
        for v in list_versions(root):  # no version folder is ever partial
            assert complete(root, v), v
        published.add(latest)
    assert kills >= ROUNDS // 2, f"only {kills} rounds were killed mid-export; widen the window"
    # every version that LATEST ever named is still there (retention 50)
    assert published <= set(list_versions(root))
    final = subprocess.run([sys.executable, str(script), str(root), "99"], capture_output=True, text=True, timeout=300)
    assert final.returncode == 0
    assert not [p.name for p in root.iterdir() if p.name.startswith((".staging-", ".LATEST."))]
    print(f"rounds={ROUNDS} kills={kills} versions={len(list_versions(root))} first_run_s={time.perf_counter() - t0:.1f}")
