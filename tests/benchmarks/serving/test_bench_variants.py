"""The gap benchmark's variant servers (each the ceiling, the service's app with its model's work
overridden, plus one part of the service's path); the no-search variant answers what the service answers."""

import gc
import sys
import time

import pytest

from benchmarks.catalog import user_id
from benchmarks.serving.ceiling import CEILING_ITEMS
from benchmarks.serving.variants import variant_app


@pytest.mark.parametrize("variant", ["await", "handoff"])
def test_variants_answer_the_ceiling_body_through_the_same_stack(variant):
    from fastapi.testclient import TestClient

    with TestClient(variant_app(variant)) as client:
        for uid in ("u0000001", "u0000002"):
            r = client.post("/v1/recommendations", json={"user_id": uid, "k": 10})
            assert r.status_code == 200, r.text
            assert r.json() == {"model_version": "0", "user_id": uid, "strategy": "personal", "items": CEILING_ITEMS}
            assert r.headers["x-model-version"] == "0"  # the service's GuardMiddleware
        assert client.post("/v1/recommendations", json={"k": 0}).status_code == 422  # the service's schema


def test_handoff_runs_in_the_batcher_thread_with_the_service_switch_interval(monkeypatch):
    from fastapi.testclient import TestClient

    monkeypatch.setenv("RECSYS_GIL_SWITCH_INTERVAL_MS", "0.5")
    before = sys.getswitchinterval()
    with TestClient(variant_app("handoff")) as client:
        assert abs(sys.getswitchinterval() - 0.0005) < 1e-9
        assert gc.get_freeze_count() > 0  # the heap settled as the service settles it
        assert client.post("/v1/recommendations", json={"user_id": "u1"}).status_code == 200
    assert sys.getswitchinterval() == before


def test_unknown_variant_and_missing_model_root_are_refused():
    with pytest.raises(ValueError, match="unknown variant"):
        variant_app("bogus")
    with pytest.raises(ValueError, match="model-root"):
        variant_app("no-search")


@pytest.mark.slow
def test_no_search_variant_answers_what_the_service_answers(tmp_path, monkeypatch):
    """Same items, scores and order for known users as ``recsys serve``'s app, computed once per user."""
    from fastapi.testclient import TestClient

    import recsys  # noqa: F401  (sets TF_USE_LEGACY_KERAS before anything imports TensorFlow)
    from benchmarks.catalog import publish_catalog
    from serving.app import create_app
    from serving.retrieval import execute
    from serving.settings import ServiceSettings

    publish_catalog(tmp_path, num_items=20_500, num_users=200, dim=16, seed=0)
    monkeypatch.setenv("RECSYS_MODEL_ROOT", str(tmp_path))
    calls = []
    real = execute.execute_batch
    monkeypatch.setattr(execute, "execute_batch", lambda jobs: calls.append(len(jobs)) or real(jobs))
    users = [user_id(i) for i in (1, 7, 42)]
    with TestClient(variant_app("no-search", tmp_path)) as gap:
        deadline = time.time() + 60  # the service's watcher loads the version, as in `recsys serve`
        while gap.get("/readyz").status_code != 200 and time.time() < deadline:
            time.sleep(0.1)
        first = [gap.post("/v1/recommendations", json={"user_id": u, "k": 10}).json() for u in users]
        computed = sum(calls)
        again = [gap.post("/v1/recommendations", json={"user_id": u, "k": 10}).json() for u in users]
    assert computed == len(users) and sum(calls) == computed  # each user's ranking computed once, then reused
    assert first == again
    with TestClient(create_app(ServiceSettings(model_root=tmp_path, poll_interval_s=60))) as service:
        deadline = time.time() + 60
        while service.get("/readyz").status_code != 200 and time.time() < deadline:
            time.sleep(0.1)
        expected = [service.post("/v1/recommendations", json={"user_id": u, "k": 10}).json() for u in users]
    assert first == expected
    assert all(len(a["items"]) == 10 and a["strategy"] == "personal" for a in first)
