"""A real ``recsys serve`` process: versions with an unlisted file, a symbolic link or an oversized
LATEST are refused with their reason on /readyz while the served version keeps answering."""

import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path

import pytest

GOLDEN = {"user_id": "u000011", "k": 5}


def _wait(predicate: Callable[[], bool], timeout: float = 60.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return predicate()


@pytest.fixture(scope="module")
def served(tmp_path_factory, make_versions, start_server):
    versions = make_versions(tmp_path_factory.mktemp("loader_files_root"))
    good = versions.clone()
    versions.set_latest(good)
    server = start_server(versions.root)
    server.wait_ready()
    golden = server.post("/v1/recommendations", json=GOLDEN)
    assert golden.status_code == 200 and golden.json()["model_version"] == good
    yield versions, server, good, golden.json()["items"]
    server.stop()


def _symlinked_items(outside: Path) -> Callable[[Path], None]:
    def corrupt(vdir: Path) -> None:
        shutil.copy(vdir / "items.parquet", outside)
        (vdir / "items.parquet").unlink()
        (vdir / "items.parquet").symlink_to(outside)

    return corrupt


@pytest.mark.parametrize("case", ["unlisted_file", "symlink_inside", "symlinked_folder", "latest_too_large"])
def test_bad_version_is_refused_and_the_served_one_keeps_answering(served, tmp_path: Path, case: str) -> None:
    versions, server, good, items = served
    if case == "unlisted_file":
        bad = versions.clone(corrupt=lambda d: (d / "query_model" / "stray.bin").write_bytes(b"x"))
        reason, latest = "unlisted_file", bad
    elif case == "symlink_inside":
        bad = versions.clone(corrupt=_symlinked_items(tmp_path / "items.parquet"))
        reason, latest = "symlink", bad
    elif case == "symlinked_folder":
        bad = versions.clone()
        shutil.move(versions.root / bad, tmp_path / "real")
        os.symlink(tmp_path / "real", versions.root / bad, target_is_directory=True)
        reason, latest = "symlink", bad
    else:
        bad = versions.clone()
        latest = None  # LATEST is not read, so it names nothing new
        (versions.root / "LATEST").write_text(bad + "\n" + " " * 4096)
        reason = "latest_too_large"

    if latest is not None:
        versions.set_latest(latest)

    def refused() -> bool:
        failure = server.get("/readyz").json()["last_reload_failure"]
        return bool(failure) and failure["reason"] == reason and (latest is None or failure["version"] == latest)

    assert _wait(refused), (server.get("/readyz").json(), server.log())
    ready = server.get("/readyz")
    assert ready.status_code == 200 and ready.json()["model_version"] == good
    assert ready.json()["last_reload_failure"]["detail"]
    for _ in range(5):
        r = server.post("/v1/recommendations", json=GOLDEN)
        assert r.status_code == 200 and r.headers["x-model-version"] == good and r.json()["items"] == items
    assert f"({reason})" in server.log()  # the refusal is logged with its reason
    versions.set_latest(good)  # the next case starts from a LATEST that names the served version
