"""Hot swap in process: new versions replace the served one; corrupt ones never do."""

import json
import shutil
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.serving.conftest import wait_until


def _edit_manifest(vdir: Path, **changes: object) -> None:
    manifest = json.loads((vdir / "manifest.json").read_text())
    manifest.update(changes)
    (vdir / "manifest.json").write_text(json.dumps(manifest, indent=2))


def _rechecksum(vdir: Path) -> None:
    from artifact.checksums import tree_checksums

    manifest = json.loads((vdir / "manifest.json").read_text())
    manifest["files"] = tree_checksums(vdir)
    (vdir / "manifest.json").write_text(json.dumps(manifest, indent=2))


def _truncate(path: Path) -> None:
    size = path.stat().st_size
    with open(path, "r+b") as fh:
        fh.truncate(size // 2)


def _corrupt_query_width(vdir: Path) -> None:
    """A consistent 32-d catalog (manifest, embeddings, index) whose query tower still outputs 64."""
    import scann

    emb = np.load(vdir / "item_embeddings.npy")[:, :32].copy()
    np.save(vdir / "item_embeddings.npy", emb)
    shutil.rmtree(vdir / "index")
    (vdir / "index").mkdir()
    searcher = scann.scann_ops_pybind.builder(emb, 10, "dot_product").score_brute_force().build()
    searcher.serialize(str(vdir / "index"), relative_path=True)
    _edit_manifest(vdir, embedding_dim=32)
    _rechecksum(vdir)


def _corrupt_items_length(vdir: Path) -> None:
    items = pd.read_parquet(vdir / "items.parquet")
    items.iloc[:-1].to_parquet(vdir / "items.parquet", index=False)
    _rechecksum(vdir)


def _corrupt_embedding_dim(vdir: Path) -> None:
    emb = np.load(vdir / "item_embeddings.npy")
    np.save(vdir / "item_embeddings.npy", emb[:, :-1].copy())
    _rechecksum(vdir)


def _flip_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def _truncated_and_rechecksummed(rel: str) -> Callable[[Path], None]:
    """A listed file cut in half, the manifest's sha256 rewritten to match (only loading it can tell)."""

    def corrupt(vdir: Path) -> None:
        _truncate(vdir / rel)
        _rechecksum(vdir)

    return corrupt


CORRUPTIONS: dict[str, tuple[Callable[[Path], object], str]] = {
    # name: (change to a clone, reason the service must give)
    "missing_manifest": (lambda d: (d / "manifest.json").unlink(), "manifest_missing"),
    "checksum_mismatch": (lambda d: _flip_byte(d / "items.parquet"), "checksum_mismatch"),
    "truncated_index_unlisted": (lambda d: _truncate(d / "index" / "dataset.npy"), "checksum_mismatch"),
    "truncated_index": (_truncated_and_rechecksummed("index/dataset.npy"), "index_unloadable"),
    "truncated_variables": (
        _truncated_and_rechecksummed("query_model/variables/variables.data-00000-of-00001"),
        "query_model_unloadable",
    ),
    "embedding_dim_mismatch": (_corrupt_embedding_dim, "shape_mismatch"),
    "manifest_dim_mismatch": (lambda d: _edit_manifest(d, embedding_dim=32), "shape_mismatch"),
    "query_width_mismatch": (_corrupt_query_width, "shape_mismatch"),
    "items_length_mismatch": (_corrupt_items_length, "shape_mismatch"),
    "old_format": (lambda d: _edit_manifest(d, schema_version=1), "unsupported_format"),
    "malformed_manifest": (lambda d: _edit_manifest(d, num_items=-3), "manifest_invalid"),
    "version_mismatch": (lambda d: _edit_manifest(d, version="1"), "version_mismatch"),
    "missing_file": (lambda d: (d / "seen.parquet").unlink(), "file_missing"),
}


GOLDEN = {"user_id": "u000011", "k": 8, "exclude_item_ids": ["i000005"], "filters": {"price": {"max": 60}}}


def metric(client, name: str, **labels: str) -> float:
    for fam in text_string_to_metric_families(client.get("/metrics").text):
        for s in fam.samples:
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                return s.value
    return 0.0


def served_version(client) -> str | None:
    return client.get("/readyz").json().get("model_version")


@pytest.fixture(scope="module")
def swap_env(tmp_path_factory, make_versions, make_client):
    """One app on a root of its own, serving a good clone; tests point LATEST elsewhere."""
    versions = make_versions(tmp_path_factory.mktemp("swap_root"))
    root = versions.root
    good = versions.clone()
    versions.set_latest(good)
    with make_client(root, poll_interval_s=0.05) as client:
        golden = client.post("/v1/recommendations", json=GOLDEN)
        assert golden.status_code == 200 and golden.json()["model_version"] == good
        yield versions, client, good, golden.content


def _refused(client, name: str) -> dict | None:
    failure = client.get("/readyz").json()["last_reload_failure"]
    return failure if failure and failure["version"] == name else None


@pytest.mark.parametrize("corruption", sorted(CORRUPTIONS))
def test_corrupt_version_is_never_served(swap_env, corruption) -> None:
    versions, client, good, golden = swap_env
    bad = versions.clone(corrupt=CORRUPTIONS[corruption][0])
    versions.set_latest(bad)
    assert wait_until(lambda: _refused(client, bad) is not None, timeout=30), client.get("/readyz").json()
    failure = _refused(client, bad)
    reason = CORRUPTIONS[corruption][1]
    assert failure is not None and failure["reason"] == reason and failure["detail"]
    ready = client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["model_version"] == good and ready.json()["latest"] == bad
    r = client.post("/v1/recommendations", json=GOLDEN)
    assert r.status_code == 200 and r.content == golden and r.headers["x-model-version"] == good
    assert metric(client, "recsys_model_reloads_total", outcome="failure", reason=reason) >= 1
    before = metric(client, "recsys_model_reloads_total", outcome="failure", reason=reason)
    time.sleep(0.3)  # several polls: a refused version is not retried while nothing changes
    assert metric(client, "recsys_model_reloads_total", outcome="failure", reason=reason) == before


@pytest.mark.parametrize(
    ("latest", "reason"),
    [
        ("999999999999", "missing_version_dir"),
        (".staging-1795000000-123", "invalid_version_name"),
        ("../trained_root0/1", "invalid_version_name"),
        ("/etc", "invalid_version_name"),
    ],
)
def test_latest_naming_no_version_is_refused(swap_env, latest, reason) -> None:
    versions, client, good, golden = swap_env
    if latest.startswith(".staging-"):
        versions.clone(name="1795000000", dirname=latest)  # a complete-looking staging folder
    versions.set_latest(latest)
    assert wait_until(lambda: _refused(client, latest) is not None, timeout=10)
    failure = _refused(client, latest)
    assert failure is not None and failure["reason"] == reason
    r = client.post("/v1/recommendations", json=GOLDEN)
    assert r.content == golden and served_version(client) == good


def test_good_version_after_failures_is_served_and_rollback_works(swap_env) -> None:
    versions, client, good, golden = swap_env
    newer = versions.publish_clone()
    assert wait_until(lambda: served_version(client) == newer, timeout=30)
    r = client.post("/v1/recommendations", json=GOLDEN).json()
    assert r["model_version"] == newer
    assert r["items"] == json.loads(golden)["items"]  # a clone: same weights, same items
    versions.set_latest(good)  # roll back: LATEST is the authority
    assert wait_until(lambda: served_version(client) == good, timeout=30)
    assert client.post("/v1/recommendations", json=GOLDEN).content == golden


def test_readyz_503_until_first_version_then_swaps_in(versions, make_client) -> None:
    with make_client(versions.root, wait_ready=False) as client:
        time.sleep(0.3)
        r = client.get("/readyz")
        assert r.status_code == 503 and r.json()["reason"] == "model_not_loaded"
        assert client.post("/v1/recommendations", json={"k": 1}).json()["error"]["code"] == "model_not_loaded"
        first = versions.publish_clone()
        assert wait_until(lambda: client.get("/readyz").status_code == 200, timeout=30)
        assert client.post("/v1/recommendations", json={"k": 1}).json()["model_version"] == first


def test_startup_with_only_a_corrupt_version_is_not_ready(versions, make_client) -> None:
    bad = versions.clone(corrupt=CORRUPTIONS["checksum_mismatch"][0])
    versions.set_latest(bad)
    with make_client(versions.root, wait_ready=False) as client:
        assert wait_until(lambda: client.get("/readyz").json()["last_reload_failure"] is not None, timeout=30)
        r = client.get("/readyz")
        assert r.status_code == 503
        assert r.json()["reason"] == "model_not_loaded" and "checksum_mismatch" in r.json()["detail"]
        assert client.get("/v1/model").json()["error"]["code"] == "model_not_loaded"


def test_in_flight_request_finishes_on_the_old_version(versions, make_client) -> None:
    from serving.retrieval.execute import execute_batch

    release = threading.Event()
    entered = threading.Event()

    def held_execute_batch(jobs):  # the inference thread waits until the swap is done
        entered.set()
        release.wait(30)
        return execute_batch(jobs)

    old = versions.clone()
    versions.set_latest(old)
    with make_client(versions.root, request_timeout_s=60, execute=held_execute_batch) as client:
        result: list = []
        t = threading.Thread(target=lambda: result.append(client.post("/v1/recommendations", json=GOLDEN)))
        t.start()
        try:
            assert entered.wait(10)
            new = versions.publish_clone()
            assert wait_until(lambda: client.get("/v1/model").json()["model_version"] == new, timeout=30)
        finally:
            release.set()
            t.join()
        answer = result[0]
        assert answer.status_code == 200
        assert answer.json()["model_version"] == old and answer.headers["x-model-version"] == old
        fresh = client.post("/v1/recommendations", json=GOLDEN)
        assert fresh.json()["model_version"] == new and fresh.headers["x-model-version"] == new
        assert metric(client, "recsys_model_reloads_total", outcome="success", reason="") == 2


# --------------------------------------------------------------------------- a swap yields to serving


def _tracked(obj: object) -> bool:
    """Whether ``obj`` is in a collector generation (``gc.get_objects`` leaves frozen objects out)."""
    import gc

    return any(o is obj for o in gc.get_objects())


def test_a_swap_loads_at_lowered_priority_in_a_thread_of_its_own(versions, make_client, monkeypatch) -> None:
    """The first load runs at normal priority (TensorFlow starts its thread pools there); a load
    while a version serves runs in a new thread whose nice value is LOADER_NICE higher, and
    no pooled thread keeps that priority afterwards."""
    import asyncio
    import os

    import serving.version.watcher
    from serving.version.loader import load_version
    from serving.version.loader_thread import LOADER_NICE, Pacer

    seen: list[tuple[str, int, int]] = []
    pauses: list[object] = []

    def recording_load(*args, **kwargs):
        tid = threading.get_native_id()
        seen.append((threading.current_thread().name, os.getpriority(os.PRIO_PROCESS, tid), tid))
        pauses.append(kwargs.get("pause"))
        return load_version(*args, **kwargs)

    monkeypatch.setattr(serving.version.watcher, "load_version", recording_load)
    base = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    first = versions.clone()
    versions.set_latest(first)
    with make_client(versions.root) as client:
        newer = versions.publish_clone()
        assert wait_until(lambda: served_version(client) == newer, timeout=60)
        pooled = client.portal.call(lambda: asyncio.to_thread(lambda: os.getpriority(os.PRIO_PROCESS, threading.get_native_id())))
    assert len(seen) == 2, seen
    (_, first_nice, _), (swap_thread, swap_nice, swap_tid) = seen
    assert first_nice == base
    assert swap_thread == "recsys-loader" and swap_nice == min(19, base + LOADER_NICE)
    assert pooled == base and swap_tid != threading.get_native_id()
    # and only the swap pauses between its steps
    assert pauses[0] is None and isinstance(pauses[1], Pacer) and pauses[1].paused_s > 0


def test_loading_pauses_between_its_steps(versions) -> None:
    from serving.version.loader import load_version

    calls: list[int] = []
    name = versions.clone()
    load_version(versions.root, name, pause=lambda: calls.append(1))
    assert len(calls) >= 12  # every table, the index, the query tower, the user vectors, each file hashed


def test_the_pacer_keeps_loading_to_its_share_of_the_wall_time() -> None:
    from serving.version.loader_thread import Pacer

    now = [100.0]
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(round(seconds, 6))
        now[0] += seconds

    pacer = Pacer(duty=0.25, max_pause_s=1.0, clock=lambda: now[0], sleep=sleep)
    pacer()  # starts the clock: no pause
    now[0] += 0.1
    pacer()  # 0.1 s of work at a quarter of the time: 0.3 s of pause
    now[0] += 2.0
    pacer()  # a long step: one pause of at most max_pause_s
    pacer()  # no work since: no pause
    assert slept == [0.3, 1.0] and round(pacer.paused_s, 6) == 1.3
    with pytest.raises(ValueError):
        Pacer(duty=0)


def test_libraries_stay_frozen_and_a_swap_collects_only_the_versions(versions, make_client) -> None:
    """The heap settle after a swap walks the versions only: the libraries were frozen once,
    before the first load, and are never unfrozen; the versions are never frozen, so the old
    one is reclaimed by that collection."""
    import gc
    import sys
    import weakref

    first = versions.clone()
    versions.set_latest(first)
    with make_client(versions.root) as client:
        holder = client.app.state.holder
        old = weakref.ref(holder.model.query_module)
        frozen = gc.get_freeze_count()
        assert frozen > 100_000 and not _tracked(sys.modules["tensorflow"])  # the libraries: frozen
        assert _tracked(holder.model.query_module)  # the version: not frozen
        newer = versions.publish_clone()
        assert wait_until(lambda: served_version(client) == newer, timeout=60)
        assert wait_until(lambda: old() is None, timeout=10)  # the old version's cycles are gone
        assert gc.get_freeze_count() == frozen and not _tracked(sys.modules["tensorflow"])
        assert _tracked(holder.model.query_module)
