"""The gap benchmark's variant servers (each the ceiling's stack plus one part of the
service's path) and its summary; the no-search variant answers what the service answers."""

import gc
import os
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))  # the repo root: `benchmarks` is not installed

from benchmarks import serving_gap  # noqa: E402
from benchmarks.catalog import user_id  # noqa: E402


@pytest.mark.parametrize("variant", ["await", "handoff"])
def test_variants_answer_the_ceiling_body_through_the_same_stack(variant):
    from fastapi.testclient import TestClient

    from benchmarks.serving_load import CEILING_ITEMS

    with TestClient(serving_gap.variant_app(variant)) as client:
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
    with TestClient(serving_gap.variant_app("handoff")) as client:
        assert abs(sys.getswitchinterval() - 0.0005) < 1e-9
        assert gc.get_freeze_count() > 0  # the heap settled as the service settles it
        assert client.post("/v1/recommendations", json={"user_id": "u1"}).status_code == 200
    assert sys.getswitchinterval() == before


def test_unknown_variant_and_missing_model_root_are_refused():
    with pytest.raises(ValueError, match="unknown variant"):
        serving_gap.variant_app("bogus")
    with pytest.raises(ValueError, match="model-root"):
        serving_gap.variant_app("no-search")


@pytest.mark.slow
def test_no_search_variant_answers_what_the_service_answers(tmp_path, monkeypatch):
    """Same items, scores and order for known users as ``recsys serve``'s app, computed once per user."""
    from fastapi.testclient import TestClient

    import recsys  # noqa: F401
    from benchmarks.catalog import publish_catalog
    from serving import engine
    from serving.app import create_app
    from serving.settings import ServiceSettings

    publish_catalog(tmp_path, num_items=20_500, num_users=200, dim=16, seed=0)
    monkeypatch.setenv("RECSYS_MODEL_ROOT", str(tmp_path))
    calls = []
    real = engine.compute_jobs
    monkeypatch.setattr(engine, "compute_jobs", lambda jobs: calls.append(len(jobs)) or real(jobs))
    users = [user_id(i) for i in (1, 7, 42)]
    with TestClient(serving_gap.variant_app("no-search", tmp_path)) as gap:
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


def test_summary_ratios_are_per_round_against_the_ceiling():
    def run(rps: float) -> dict:
        return {
            "rps": rps,
            "p99_ms": 10.0,
            "failures": 0,
            "loop_cpu_us_per_request": 200.0,
            "other_threads_cpu_us_per_request": 0.0,
            "loop_on_core": 0.9,
            "loop_run_queue": 0.02,
            "loop_blocked": 0.08,
        }

    rounds = {"ceiling": [run(4000), run(5000), run(2000)], "service": [run(2000), run(3000), run(1800)]}
    summary = serving_gap.summarize(rounds)
    assert summary["ceiling"]["ratio"] == 1.0
    assert summary["service"]["ratio_per_round"] == [0.5, 0.6, 0.9]
    assert summary["service"]["ratio"] == 0.6  # median of the per-round ratios, not of the rps medians (2000/4000)
    assert summary["service"]["rps"] == 2000
    md = serving_gap.summary_md(
        summary, {"items": 1000, "concurrency": 32, "rounds": 3, "duration_s": 6.0, "load_before": [0.1], "load_after": [0.2]}
    )
    assert "| service | 2,000 | 0.60 (0.50, 0.60, 0.90)" in md


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_thread_times_reads_this_process():
    t = serving_gap.thread_times(os.getpid())
    assert t["main_s"] > 0 and t["on_core_ns"] > 0 and t["run_queue_ns"] >= 0
