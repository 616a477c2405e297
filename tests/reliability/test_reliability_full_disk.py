"""Publishing onto a full disk.

The model root is a 2 MiB tmpfs holding one served version (about 1.1 MB); a
filler file leaves just enough room for the new version's files up to a chosen
one, so the disk fills (ENOSPC) while that file is written. The new version is
a real trained artifact written by the real ``training.export.write_version``
through ``training.publish.publish`` (its ``write`` callable is captured from a
real ``run_pipeline``). For every stage at which the disk fills:

* ``publish`` raises :class:`training.publish.PublishError` naming the version
  and the cause (an OSError, or TensorFlow's ResourceExhaustedError or ScaNN's
  RuntimeError for the SavedModels and the index; no other exception type escapes);
* ``LATEST`` still names the old version, whose files all match its manifest;
  no staging folder is left and the space is given back;
* a server watching the root (in-process app, LATEST polled every 0.1 s) keeps
  serving the old version and stays ready, with no reload failure reported.

Where no tmpfs can be mounted (not root), ENOSPC is injected into one write of
``training.export`` instead. A last test runs ``recsys train`` end to end onto
the full disk: exit code 3 and a one-line error, no traceback.
"""

import errno
import json
import os
import shutil
import time
from pathlib import Path

import pytest

from artifact.checksums import tree_checksums
from artifact.latest import list_versions, read_latest
from training.publish import PublishError, publish

pytestmark = pytest.mark.reliability

GOLDEN = {"user_id": "u000011", "k": 5}
# version files in the order write_version writes them
STAGES = ["query_model", "candidate_model", "index", "item_embeddings.npy", "items.parquet", "report.png", "manifest.json"]


@pytest.fixture(scope="module")
def real_write(tmp_path_factory: pytest.TempPathFactory):
    """(write, version dir): the ``write`` callable of a real pipeline's publish, and the
    version it wrote. Calling ``write(dest, name)`` again exports the same trained artifact."""
    import training.pipeline as pipeline
    from training.config import TrainConfig
    from training.data.synthetic import generate_storefront

    captured = {}
    real_publish = pipeline.publish

    def spy(model_root, write, **kw):
        captured["write"] = write
        return real_publish(model_root, write, **kw)

    root = tmp_path_factory.mktemp("full_disk_source")
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(pipeline, "publish", spy)
        data = generate_storefront(items=300, users=200, interactions=6000, seed=3)
        result = pipeline.run_pipeline(data, root, TrainConfig(epochs=1, batch_size=256), verbose=0)
    assert result.version is not None  # published
    return captured["write"], root / result.version


PAGE = 4096


def _size(path: Path) -> int:
    """Bytes a file or folder takes on tmpfs (whole pages per file)."""
    files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
    return sum(-(-p.stat().st_size // PAGE) * PAGE for p in files)


def _free(path: Path) -> int:
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


def _fill_leaving(root: Path, free: int) -> Path:
    filler = root / "filler.bin"  # not a version (name not a number), ignored by readers
    need = _free(root) - free
    assert need >= 0, (need, free)
    with open(filler, "wb") as fh:
        if need:
            os.posix_fallocate(fh.fileno(), 0, need)
    return filler


def _intact(root: Path, version: str) -> bool:
    manifest = json.loads((root / version / "manifest.json").read_text())
    return manifest["version"] == version and tree_checksums(root / version) == manifest["files"]


def _assert_still_serving(client, old: str) -> None:
    time.sleep(1.0)  # about ten polls of LATEST
    ready = client.get("/readyz")
    assert ready.status_code == 200, ready.json()
    body = ready.json()
    assert body["model_version"] == old and body["latest"] == old and body["last_reload_failure"] is None, body
    reply = client.post("/v1/recommendations", json=GOLDEN)
    assert reply.status_code == 200 and reply.headers["x-model-version"] == old


def _attempt(root: Path, write) -> BaseException:
    """Publish onto the full disk; the exception it raised (whatever its type: checked last,
    after the invariants, so that a wrong type is not mistaken for a broken root)."""
    try:
        version = publish(root, write, retain=3)
    except Exception as exc:
        return exc
    raise AssertionError(f"version {version} was published onto a full disk")


def _assert_publish_error(error: BaseException, root: Path) -> None:
    assert isinstance(error, PublishError), (
        f"publish let {type(error).__module__}.{type(error).__name__} escape instead of PublishError: {str(error)[:300]}"
    )
    assert "could not write version" in str(error) and str(root) in str(error)
    # on a real full disk TensorFlow (SavedModel) and ScaNN (index) raise their own
    # types, not OSError: training.publish documents and wraps both
    import tensorflow as tf

    assert isinstance(error.__cause__, (OSError, tf.errors.ResourceExhaustedError, RuntimeError)), repr(error.__cause__)


@pytest.mark.parametrize("stage", STAGES)
def test_publish_onto_a_full_disk_fails_cleanly_and_the_old_version_is_served(
    stage, real_write, small_tmpfs, make_versions, make_client, monkeypatch, tmp_path
) -> None:
    write, version_dir = real_write
    if small_tmpfs is None:
        if stage != "items.parquet":
            pytest.skip("no tmpfs can be mounted here; ENOSPC is injected for one stage only")
        root = tmp_path / "models"
        root.mkdir()
        import training.export as export

        def full(*args, **kwargs):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

        monkeypatch.setattr(export, "_write_parquet", full)
    else:
        root = small_tmpfs
    versions = make_versions(root)
    versions.base = version_dir
    old = versions.publish_clone()
    assert read_latest(root) == old
    sizes = {name: _size(version_dir / name) for name in STAGES}
    before = sum(sizes[name] for name in STAGES[: STAGES.index(stage)])
    if small_tmpfs is not None:
        # room for every earlier file and about half of this one
        _fill_leaving(root, before + sizes[stage] // 2 // PAGE * PAGE)
    free_before = _free(root)

    with make_client(root, poll_interval_s=0.1) as client:
        assert client.get("/readyz").json()["model_version"] == old
        error = _attempt(root, write)
        print(
            f"\nfull-disk [{stage}]: {type(error).__module__}.{type(error).__name__}: {str(error)[:240]!r} "
            f"| cause {type(error.__cause__).__name__}"
        )
        assert read_latest(root) == old
        assert list_versions(root) == [old] and _intact(root, old)
        assert not [p.name for p in root.iterdir() if p.name.startswith((".staging-", ".LATEST."))]
        assert _free(root) >= free_before - 2 * PAGE, "the failed version's space was not given back"
        _assert_still_serving(client, old)
    _assert_publish_error(error, root)


def test_a_publish_after_space_is_freed_succeeds_and_is_served(real_write, small_tmpfs, make_versions, make_client) -> None:
    """After a failed publish, freeing space is all it takes: the next publish goes through and is served."""
    if small_tmpfs is None:
        pytest.skip("no tmpfs can be mounted here")
    write, version_dir = real_write
    root = small_tmpfs
    versions = make_versions(root)
    versions.base = version_dir
    old = versions.publish_clone()
    filler = _fill_leaving(root, 64 * 1024)
    with make_client(root, poll_interval_s=0.1) as client:
        error = _attempt(root, write)
        _assert_still_serving(client, old)
        filler.unlink()
        new = publish(root, write, retain=1)
        assert read_latest(root) == new and _intact(root, new)
        deadline = time.monotonic() + 60
        while client.get("/readyz").json()["model_version"] != new:
            assert time.monotonic() < deadline, client.get("/readyz").json()
            time.sleep(0.1)
        assert client.post("/v1/recommendations", json=GOLDEN).headers["x-model-version"] == new
    print(f"\nfull-disk [recover]: first attempt {type(error).__name__}, then {old} -> {new} served")


def test_recsys_train_onto_a_full_disk_exits_3_without_a_traceback(small_tmpfs, make_versions, base_dir, cli, tmp_path) -> None:
    """End to end: the CLI's exit code and message when the model root is full at publish time.
    (Checkpoints go to ``<root>/.runs``; a symlink puts them on a roomy disk so the disk fills
    at publish, not during training.)"""
    if small_tmpfs is None:
        pytest.skip("no tmpfs can be mounted here")
    root = small_tmpfs
    versions = make_versions(root)
    old = versions.publish_clone()
    runs = tmp_path / "runs"
    runs.mkdir()
    (root / ".runs").symlink_to(runs)
    _fill_leaving(root, 64 * 1024)
    done = cli.run(
        "train",
        "--data",
        "synthetic",
        "--items",
        "300",
        "--users",
        "200",
        "--interactions",
        "6000",
        "--epochs",
        "1",
        "--batch-size",
        "256",
        "--model-root",
        str(root),
        timeout=600,
    )
    output = done.stdout + done.stderr
    print(
        f"\nfull-disk [recsys train]: exit {done.returncode}; last stderr line: {done.stderr.strip().splitlines()[-1:]}; "
        f"traceback shown: {'Traceback' in output}"
    )
    assert read_latest(root) == old and list_versions(root) == [old] and _intact(root, old)
    assert not [p.name for p in root.iterdir() if p.name.startswith((".staging-", ".LATEST."))]
    shutil.rmtree(runs, ignore_errors=True)
    assert "Traceback" not in output, output[-3000:]
    assert done.returncode == 3, output[-3000:]
    assert "could not write version" in done.stderr and "No space left on device" in done.stderr
