"""The serving benchmark's parts: the HTTP-ceiling app, the generated catalog, the
target check; and (slow) a generated version the service's own loader accepts."""

import json
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))  # the repo root: `benchmarks` is not installed

from benchmarks import serving_load  # noqa: E402
from benchmarks.catalog import generate_catalog, item_id, user_id  # noqa: E402


def test_ceiling_app_is_the_service_stack_without_the_model(monkeypatch):
    from fastapi.testclient import TestClient

    monkeypatch.setenv("RECSYS_MAX_BODY_BYTES", "2048")
    with TestClient(serving_load.ceiling_app()) as client:
        r = client.post("/v1/recommendations", json={"user_id": "u0000001", "k": 10})
        assert r.status_code == 200, r.text
        body = r.json()
        assert len(body["items"]) == 10 and [it["rank"] for it in body["items"]] == list(range(1, 11))
        assert body["user_id"] == "u0000001"
        assert r.headers["x-model-version"] == "0"  # added by the service's GuardMiddleware
        assert client.post("/v1/recommendations", json={"k": 0}).status_code == 422  # the service's schema
        big = {"user_id": "u", "exclude_item_ids": ["x" * 50] * 100}
        assert client.post("/v1/recommendations", json=big).status_code == 413  # the guard's body limit


def test_ceiling_runs_with_the_service_uvicorn_options(monkeypatch):
    import uvicorn

    seen: dict = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: seen.update(kw))
    monkeypatch.setenv("RECSYS_REQUEST_TIMEOUT_S", "7")
    serving_load.serve_ceiling("127.0.0.1", 8123, workers=1)
    assert seen["host"] == "127.0.0.1" and seen["port"] == 8123
    assert seen["access_log"] is False and seen["timeout_graceful_shutdown"] == 14.0
    from serving.main import uvicorn_options
    from serving.settings import ServiceSettings

    assert seen == uvicorn_options(ServiceSettings(host="127.0.0.1", port=8123))


def test_generated_catalog_is_consistent_and_deterministic():
    a = generate_catalog(2_000, 300, dim=16, seed=3)
    b = generate_catalog(2_000, 300, dim=16, seed=3)
    c = generate_catalog(2_000, 300, dim=16, seed=4)
    assert a.item_embeddings.shape == (2_000, 16) and a.item_embeddings.dtype == np.float32
    assert a.user_vectors.shape == (300, 16)
    assert list(a.items.columns) == ["item_id", "popularity", "category", "price"]
    assert a.items["item_id"].iloc[7] == item_id(7) == "i0000007" and a.users["user_id"].iloc[5] == user_id(5)
    assert a.items["item_id"].is_unique and a.users["user_id"].is_unique
    assert (a.items["popularity"] >= 0).all()
    rows = np.concatenate([np.asarray(r) for r in a.seen["item_rows"]])
    assert rows.min() >= 0 and rows.max() < 2_000
    assert set(a.seen["user_id"]) <= set(a.users["user_id"])
    assert np.array_equal(a.item_embeddings, b.item_embeddings) and a.items.equals(b.items)
    assert not np.array_equal(a.item_embeddings, c.item_embeddings)


def _run(rps: float, p99: float, failures: int = 0) -> dict:
    return {
        "rps": rps,
        "latency_ms": {"p50": p99 / 3, "p95": p99 / 1.5, "p99": p99},
        "failures": failures,
        "completed": 1000,
        "client_cpu_s": 0.1,
    }


def test_summaries_take_medians_and_check_targets():
    s = serving_load.summarize([_run(100, 10), _run(300, 30), _run(200, 20, failures=1)])
    assert s["rps"] == 200 and s["p99_ms"] == 20 and s["failures"] == 1 and s["requests"] == 3000
    results = {
        "sizes": {
            "1000000": {
                "workers": [
                    {
                        "workers": 1,
                        "per_concurrency": {
                            "32": {"model": {"rps": 700.0, "p99_ms": 20.0, "failures": 0}, "ratio_to_http_ceiling": 0.7}
                        },
                        "memory_at_end": {"workers_rss": [1.2e9], "max_process_rss": 1.2e9},
                    },
                    {
                        "workers": 2,
                        "per_concurrency": {
                            "32": {"model": {"rps": 500.0, "p99_ms": 40.0, "failures": 3}, "ratio_to_http_ceiling": 0.4}
                        },
                        "memory_at_end": {"workers_rss": [1.6e9, 1.4e9], "max_process_rss": 1.6e9},
                    },
                ],
                "swap": [{"workers": 1, "load": {"failures": 0}, "new_version_answered": True}],
            }
        }
    }
    t = serving_load.check_targets(results)
    assert t["workers=1"] == {
        "ratio_to_http_ceiling": 0.7,
        "ratio_ok": True,
        "p99_ms": 20.0,
        "p99_ok": True,
        "failures": 0,
        "failures_ok": True,
        "max_worker_rss_gib": round(1.2e9 / 2**30, 3),
        "rss_ok": True,
    }
    w2 = t["workers=2"]
    assert not (w2["ratio_ok"] or w2["p99_ok"] or w2["failures_ok"] or w2["rss_ok"])
    assert t["swap workers=1"] == {"failures": 0, "ok": True}


@pytest.mark.slow
def test_generated_version_is_accepted_by_the_service_loader(tmp_path):
    """A tree-AH (above 20K items) version, published the real way, loads and answers as generated."""
    import recsys  # noqa: F401
    from benchmarks.catalog import publish_catalog
    from serving.engine import build_job, run_jobs
    from serving.model import load_version

    info = publish_catalog(tmp_path, num_items=20_500, num_users=200, dim=64, seed=0)
    assert (tmp_path / "LATEST").read_text().strip() == info["version"]
    manifest = json.loads((tmp_path / info["version"] / "manifest.json").read_text())
    assert manifest["index"]["kind"] == "tree_ah" and manifest["num_items"] == 20_500
    assert set(info["timings"]) >= {"generate_seconds", "towers_seconds", "index_seconds", "publish_seconds", "total_seconds"}
    model = load_version(tmp_path, info["version"])  # every check the server makes before serving
    cat = generate_catalog(20_500, 200, dim=64, seed=0)
    uid = user_id(5)
    q = model.embed(
        {
            "user_id": np.asarray([uid], dtype=object),
            "age": np.asarray([30.0], np.float32),
            "country": np.asarray([""], dtype=object),
            "segment": np.asarray([""], dtype=object),
        }
    )[0]
    q_default = model.embed(
        {
            "user_id": np.asarray([""], dtype=object),
            "age": np.asarray([30.0], np.float32),
            "country": np.asarray([""], dtype=object),
            "segment": np.asarray([""], dtype=object),
        }
    )[0]
    assert np.allclose(q - q_default, cat.user_vectors[5], atol=1e-4)  # the tower reproduces the generated vector

    class Req:
        user_id, features, k, exclude_seen, exclude_item_ids, filters = uid, None, 10, True, [], None

    [items] = run_jobs([build_job(model, Req())])
    assert len(items) == 10 and [it["rank"] for it in items] == list(range(1, 11))
    # the benchmark's in-process compute ceiling runs on the same version
    ceiling = serving_load.compute_ceiling(tmp_path, batch_sizes=(1, 4), min_seconds=0.05, repeats=1)
    assert ceiling["num_items"] == 20_500 and set(ceiling["per_batch"]) == {"1", "4"}
    assert all(v["engine_qps"] > 0 and v["tower_plus_scann_qps"] > 0 for v in ceiling["per_batch"].values())


def test_catalog_is_reused_only_with_the_current_generator_and_index_settings(tmp_path, monkeypatch):
    """A catalog whose index was chosen by the tuning (issue 23) is reused; one
    published by the former size rule (no tuning record) is rebuilt, not
    silently measured."""
    import subprocess
    import types

    from benchmarks.catalog import GENERATOR_VERSION
    from training.index import index_params

    size = 600_000
    root = tmp_path / f"items-{size}"

    def publish(index: dict) -> None:
        (root / "7").mkdir(parents=True, exist_ok=True)
        manifest = {
            "num_items": size,
            "dataset": {"source": "generated-catalog"},
            "index": index,
            "metrics": {"catalog": {"generator": GENERATOR_VERSION}},
        }
        (root / "7" / "manifest.json").write_text(json.dumps(manifest))
        (root / "LATEST").write_text("7")

    builds = []

    def fake_run(cmd, **kw):
        builds.append(cmd)
        return types.SimpleNamespace(stdout=json.dumps({"version": "8", "timings": {}, "index": {}}).encode())

    monkeypatch.setattr(subprocess, "run", fake_run)
    logs = tmp_path / "logs"
    logs.mkdir()
    publish({"kind": "tree_ah", "params": index_params(size)[1], "tuning": {"target_recall": 0.95}})
    assert serving_load.ensure_catalog(tmp_path, size, logs)["reused"] is True and not builds
    publish({"kind": "tree_ah", "params": index_params(size)[1]})  # the size rule, before the tuning
    out = serving_load.ensure_catalog(tmp_path, size, logs)
    assert out["reused"] is False and out["version"] == "8" and len(builds) == 1 and "--items" in builds[0]
