"""Work per call is bounded (issue 17, finding 8): the answer items a call may ask for
(``max_items_per_call``), search widths (a wide job never widens the usual jobs'
search), exact scoring in chunks that stop when the request is no longer wanted."""

import threading
from types import SimpleNamespace

import numpy as np
import pytest

from serving.engine import JobAbandoned, build_job, compute_jobs, exact_rerun, run_jobs
from serving.item_index import LocalIndex
from tests.serving.conftest import wait_until
from tests.serving.test_serving_engine import CountingSearcher, with_searcher
from tests.serving.test_serving_limits import assert_error


def req(**kw) -> SimpleNamespace:
    base = {"user_id": None, "features": None, "k": 10, "exclude_seen": True, "exclude_item_ids": [], "filters": None}
    return SimpleNamespace(**{**base, **kw})


# --------------------------------------------------------------------------- the per-call budget


def test_answer_items_per_call_are_bounded_by_the_setting(client) -> None:
    over = {"requests": [{"k": 1000}, {"k": 1000}, {"k": 1}]}  # 2001 items, the default limit is 2000
    error = assert_error(client.post("/v1/recommendations/batch", json=over), 422, "validation_error")
    assert "2001" in error["message"] and "2000" in error["message"] and "max_items_per_call" in error["message"]
    at = client.post("/v1/recommendations/batch", json={"requests": [{"k": 1000}, {"k": 1000}]})
    assert at.status_code == 200, at.text
    # k left out counts as default_k (10): 64 of them are 640 items
    assert client.post("/v1/recommendations/batch", json={"requests": [{}] * 64}).status_code == 200


def test_a_lower_budget_bounds_single_requests_and_batches(trained, make_client) -> None:
    root, _ = trained
    with make_client(root, max_items_per_call=50) as c:
        assert_error(c.post("/v1/recommendations", json={"k": 51}), 422, "validation_error")
        assert c.post("/v1/recommendations", json={"k": 50}).status_code == 200
        error = assert_error(
            c.post("/v1/recommendations/batch", json={"requests": [{"k": 30}, {"k": 21}]}), 422, "validation_error"
        )
        assert "at most 50" in error["message"]
        ok = c.post("/v1/recommendations/batch", json={"requests": [{"k": 30}, {"k": 20}]})
        assert ok.status_code == 200 and [len(r["items"]) for r in ok.json()["results"]] == [30, 20]
        spec = c.get("/openapi.json").json()["components"]["schemas"]["RecommendationRequest"]["properties"]["k"]
        assert spec["maximum"] == 50


# --------------------------------------------------------------------------- search widths


def test_search_groups_keep_the_usual_widths_in_one_call() -> None:
    emb = np.zeros((10_000, 2), dtype=np.float32)
    exact = LocalIndex(None, emb, reorder_k=0, rescore_k=50, group_width=32)
    exact.exact_scores = True
    groups = exact.search_groups(np.array([20, 30, 9000, 40, 32, 70, 128, 129, 18]))
    assert [g.tolist() for g in groups] == [[0, 1, 4, 8], [3], [5, 6], [7], [2]]
    assert [g.tolist() for g in exact.search_groups(np.array([5, 31, 32, 17]))] == [[0, 1, 2, 3]]
    # without exact distances every query is searched at least rescore_k wide: that is the common width
    pooled = LocalIndex(None, emb, reorder_k=0, rescore_k=100, group_width=32)
    assert [g.tolist() for g in pooled.search_groups(np.array([20, 100, 60, 150, 400]))] == [[0, 1, 2], [3], [4]]


def _few_seen(truth, limit: int) -> list[str]:
    return [u for u in truth.users["user_id"] if len(truth.seen.get(u, ())) <= limit]


@pytest.fixture
def counting(client):
    served = client.app.state.holder.model
    return with_searcher(served, CountingSearcher(served.index.searcher), group_width=32)


def test_a_wide_job_does_not_widen_the_usual_jobs_search(counting, truth) -> None:
    users = _few_seen(truth, 10)[:7]
    usual = [build_job(counting, req(user_id=u, k=5)) for u in users]
    cart = [i for i in truth.items["item_id"][:80] if truth.item_row(i) not in truth.seen[users[0]]][:60]
    wide = build_job(counting, req(user_id=users[0], k=5, exclude_item_ids=cart))
    jobs = [*usual[:3], wide, *usual[3:]]
    usual_fetch = max(j.plan.fetch for j in usual)
    assert usual_fetch <= 32 < 64 < wide.plan.fetch < 128 and wide.plan.fetch * 2 < 300
    out = run_jobs(jobs)
    # the usual jobs in one call at their own width, the wide one in a call of its own
    assert counting.index.searcher.calls == [(7, usual_fetch), (1, wide.plan.fetch)]
    for job, answer in zip(jobs, out, strict=True):
        counting.index.searcher.calls.clear()
        alone = run_jobs([job])[0]  # the same job in a batch of its own
        assert [i["item_id"] for i in answer] == [i["item_id"] for i in alone] and len(answer) == 5
        np.testing.assert_allclose([i["score"] for i in answer], [i["score"] for i in alone], rtol=1e-6)
    assert not set(truth.item_row(i["item_id"]) for i in out[3]) & {truth.item_row(i) for i in cart}


def test_the_usual_batch_is_one_search_call(client, truth) -> None:
    served = client.app.state.holder.model
    model = with_searcher(served, CountingSearcher(served.index.searcher))  # the default group width
    users = list(truth.users["user_id"][:64])
    jobs = [build_job(model, req(user_id=u, k=10)) for u in users]
    searched = [j.plan.fetch for j in jobs if j.plan.fetch]  # the others are scored exactly (few items left)
    assert len(searched) > 48 and min(searched) * 2 < max(searched)  # seen items vary: so do the over-fetches
    out = run_jobs(jobs)
    assert model.index.searcher.calls == [(len(searched), max(searched))]
    assert all(len(items) == 10 for items in out)


# --------------------------------------------------------------------------- exact scoring in chunks


def test_chunked_exact_scoring_equals_scoring_at_once() -> None:
    rng = np.random.default_rng(5)
    emb = np.round(rng.standard_normal((500, 4)), 1).astype(np.float32)  # rounded: many tied scores
    query = np.array([1.0, -0.5, 0.0, 2.0], dtype=np.float32)
    eligible = rng.random(500) < 0.7
    whole = LocalIndex(None, emb, reorder_k=0, rescore_k=10).exact(query, eligible, 40)
    asked: list[int] = []
    chunked = LocalIndex(None, emb, reorder_k=0, rescore_k=10, exact_chunk_rows=16).exact(
        query, eligible, 40, lambda: asked.append(1) is None
    )
    assert chunked is not None and whole is not None
    assert chunked[0].tolist() == whole[0].tolist()
    np.testing.assert_array_equal(chunked[1], whole[1])
    assert len(asked) == -(-int(eligible.sum()) // 16)  # asked before every chunk


def test_chunked_exact_scoring_stops_when_no_longer_wanted() -> None:
    emb = np.random.default_rng(6).standard_normal((400, 4)).astype(np.float32)
    index = LocalIndex(None, emb, reorder_k=0, rescore_k=10, exact_chunk_rows=50)
    asked: list[int] = []

    def wanted() -> bool:
        asked.append(1)
        return len(asked) <= 3  # the request gives up while the third chunk is scored

    assert index.exact(emb[0], np.ones(400, dtype=bool), 5, wanted) is None
    assert len(asked) == 4  # three chunks scored of eight, then it stopped


def test_an_abandoned_exact_job_is_not_scored(client) -> None:
    served = client.app.state.holder.model
    job = exact_rerun(build_job(served, req(user_id="u000001", k=5)))
    job.abandoned = True
    live = exact_rerun(build_job(served, req(user_id="u000002", k=5)))
    out = compute_jobs([job, live])
    assert isinstance(out[0], JobAbandoned)
    assert len(out[1].rows) == 5


def test_a_request_past_its_deadline_marks_its_exact_work_abandoned(trained, make_client, monkeypatch) -> None:
    """The 504 deadline cancels the request; the job the inference thread holds is marked
    abandoned, and exact scoring (here planned: a narrow filter) is skipped."""
    import serving.app

    seen: list = []
    finished = threading.Event()

    def held(jobs):
        try:
            wait_until(lambda: all(j.abandoned for j in jobs), timeout=30)  # until the deadline has passed
            results = compute_jobs(jobs)
            seen.append(([j.abandoned for j in jobs], results))
            return results
        finally:
            finished.set()

    monkeypatch.setattr(serving.app, "compute_jobs", held)
    root, _ = trained
    with make_client(root, request_timeout_s=0.2) as c:
        r = c.post("/v1/recommendations", json={"user_id": "u000001", "k": 5, "filters": {"category": ["books"]}})
        assert_error(r, 504, "timeout")
        assert finished.wait(30)
    ((flags, results),) = seen
    assert flags == [True] and isinstance(results[0], JobAbandoned)
