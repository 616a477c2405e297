"""Work per call is bounded (issue 17, finding 8): the answer items a call may ask for
(``max_items_per_call``), search widths (a wide job never widens the usual jobs'
search), full scans in chunks that stop when the request is no longer wanted."""

import threading

import numpy as np
import pytest

from serving.item_index import LocalIndex
from serving.retrieval.errors import JobAbandoned
from serving.retrieval.execute import Ranked, execute_batch
from serving.retrieval.plan import plan_recommendation
from tests.serving.api.test_api_limits import assert_error
from tests.serving.conftest import wait_until
from tests.serving.retrieval.support import req
from tests.serving.retrieval.test_retrieval_execute import CountingSearcher, answered, only_two, planned, with_searcher

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
    exact = LocalIndex(None, emb, rescore_k=50, group_width=32)
    exact.distances_are_scores = True
    groups = exact.search_groups(np.array([20, 30, 9000, 40, 32, 70, 128, 129, 18]))
    assert [g.tolist() for g in groups] == [[0, 1, 4, 8], [3], [5, 6], [7], [2]]
    assert [g.tolist() for g in exact.search_groups(np.array([5, 31, 32, 17]))] == [[0, 1, 2, 3]]
    # without exact distances every query is searched at least rescore_k wide: that is the common width
    pooled = LocalIndex(None, emb, rescore_k=100, group_width=32)
    assert [g.tolist() for g in pooled.search_groups(np.array([20, 100, 60, 150, 400]))] == [[0, 1, 2], [3], [4]]


def _few_seen(truth, limit: int) -> list[str]:
    return [u for u in truth.users["user_id"] if len(truth.seen.get(u, ())) <= limit]


@pytest.fixture
def counting(client):
    served = client.app.state.holder.model
    return with_searcher(served, CountingSearcher(served.index.searcher), group_width=32)


def test_a_wide_job_does_not_widen_the_usual_jobs_search(counting, truth) -> None:
    users = _few_seen(truth, 10)[:7]
    usual = [plan_recommendation(counting, req(user_id=u, k=5)) for u in users]
    cart = [i for i in truth.items["item_id"][:80] if truth.item_row(i) not in truth.seen[users[0]]][:60]
    wide = plan_recommendation(counting, req(user_id=users[0], k=5, exclude_item_ids=cart))
    jobs = [*usual[:3], wide, *usual[3:]]
    usual_fetch = max(planned(j).fetch for j in usual)
    assert usual_fetch <= 32 < 64 < planned(wide).fetch < 128 and planned(wide).fetch * 2 < 300
    out = answered(jobs)
    # the usual jobs in one call at their own width, the wide one in a call of its own
    assert counting.index.searcher.calls == [(7, usual_fetch), (1, planned(wide).fetch)]
    for job, answer in zip(jobs, out, strict=True):
        counting.index.searcher.calls.clear()
        alone = answered([job])[0]  # the same job in a batch of its own
        assert [i["item_id"] for i in answer] == [i["item_id"] for i in alone] and len(answer) == 5
        np.testing.assert_allclose([i["score"] for i in answer], [i["score"] for i in alone], rtol=1e-6)
    assert not set(truth.item_row(i["item_id"]) for i in out[3]) & {truth.item_row(i) for i in cart}


def test_the_usual_batch_is_one_search_call(client, truth) -> None:
    served = client.app.state.holder.model
    model = with_searcher(served, CountingSearcher(served.index.searcher))  # the default group width
    users = list(truth.users["user_id"][:64])
    jobs = [plan_recommendation(model, req(user_id=u, k=10)) for u in users]
    searched = [planned(j).fetch for j in jobs if not planned(j).full_scan]  # the others are full scans (few items left)
    assert len(searched) > 48 and min(searched) * 2 < max(searched)  # seen items vary: so do the over-fetches
    out = answered(jobs)
    assert model.index.searcher.calls == [(len(searched), max(searched))]
    assert all(len(items) == 10 for items in out)


# --------------------------------------------------------------------------- full scans in chunks


def test_chunked_full_scan_equals_scoring_at_once() -> None:
    rng = np.random.default_rng(5)
    emb = np.round(rng.standard_normal((500, 4)), 1).astype(np.float32)  # rounded: many tied scores
    query = np.array([1.0, -0.5, 0.0, 2.0], dtype=np.float32)
    eligible = rng.random(500) < 0.7
    whole = LocalIndex(None, emb, rescore_k=10).scan(query, eligible, 40)
    asked: list[int] = []

    def wanted() -> bool:
        asked.append(1)
        return True

    chunked = LocalIndex(None, emb, rescore_k=10, scan_chunk_rows=16).scan(query, eligible, 40, wanted)
    assert chunked is not None and whole is not None
    assert chunked[0].tolist() == whole[0].tolist()
    np.testing.assert_array_equal(chunked[1], whole[1])
    assert len(asked) == -(-int(eligible.sum()) // 16)  # asked before every chunk


def test_chunked_full_scan_stops_when_no_longer_wanted() -> None:
    emb = np.random.default_rng(6).standard_normal((400, 4)).astype(np.float32)
    index = LocalIndex(None, emb, rescore_k=10, scan_chunk_rows=50)
    asked: list[int] = []

    def wanted() -> bool:
        asked.append(1)
        return len(asked) <= 3  # the request gives up while the third chunk is scored

    assert index.scan(emb[0], np.ones(400, dtype=bool), 5, wanted) is None
    assert len(asked) == 4  # three chunks scored of eight, then it stopped


def test_an_abandoned_job_is_not_scanned(client) -> None:
    """A job whose candidates ran short is scanned in the thread step, unless its request gave up."""
    served = client.app.state.holder.model
    model = with_searcher(served, CountingSearcher(served.index.searcher, mangle=only_two))
    job = plan_recommendation(model, req(user_id="u000001", k=5))
    job.abandoned = True
    live = plan_recommendation(model, req(user_id="u000002", k=5))
    out = execute_batch([job, live])
    assert model.index.searcher.calls == [(2, max(planned(job).fetch, planned(live).fetch))]  # both searched, both short
    assert isinstance(out[0], JobAbandoned)
    assert isinstance(out[1], Ranked) and len(out[1].rows) == 5


def test_a_full_scan_in_chunks_stops_between_chunks_when_abandoned(client) -> None:
    """The fallback scan of a short job asks, before every chunk, whether the request still waits."""
    served = client.app.state.holder.model
    model = with_searcher(served, CountingSearcher(served.index.searcher, mangle=only_two), scan_chunk_rows=40)
    job = plan_recommendation(model, req(user_id="u000001", k=5))
    asked: list[int] = []
    real_scan = model.index.scan

    def scan(query, eligible, n, still_wanted):
        def wanted() -> bool:
            asked.append(1)
            job.abandoned = len(asked) >= 2  # the request gives up while the first chunk is scored
            return still_wanted()

        return real_scan(query, eligible, n, wanted)

    model.index.scan = scan
    (out,) = execute_batch([job])
    assert isinstance(out, JobAbandoned) and len(asked) == 2  # one chunk of many scored, then it stopped


def test_a_request_past_its_deadline_marks_its_full_scan_abandoned(trained, make_client) -> None:
    """The 504 deadline cancels the request; the job the inference thread holds is marked
    abandoned, and its full scan (here planned: a narrow filter) is skipped."""

    seen: list = []
    finished = threading.Event()

    def held(jobs):
        try:
            wait_until(lambda: all(j.abandoned for j in jobs), timeout=30)  # until the deadline has passed
            results = execute_batch(jobs)
            seen.append(([j.abandoned for j in jobs], results))
            return results
        finally:
            finished.set()

    root, _ = trained
    with make_client(root, request_timeout_s=0.2, execute=held) as c:
        r = c.post("/v1/recommendations", json={"user_id": "u000001", "k": 5, "filters": {"category": ["books"]}})
        assert_error(r, 504, "timeout")
        assert finished.wait(30)
    ((flags, results),) = seen
    assert flags == [True] and isinstance(results[0], JobAbandoned)
