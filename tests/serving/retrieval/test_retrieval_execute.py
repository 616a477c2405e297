"""The inference-thread step directly (serving/retrieval/execute.py): one model call per batch,
ScaNN over-fetch, a full scan when filters leave too few items or the index's candidates run short."""

import dataclasses
from typing import Any

import numpy as np
import pytest

from serving.retrieval.execute import Ranked, Searched, execute_batch
from serving.retrieval.job import Job, SearchPlan
from serving.retrieval.plan import plan_recommendation, plan_similar
from serving.retrieval.retriever import rank_jobs
from tests.serving.retrieval.support import req

AnswerItems = list[dict[str, Any]]


def answered(jobs: list[Job]) -> list[AnswerItems]:
    """``rank_jobs`` for jobs that must all be answered: an exception in an answer's place is raised."""
    out = rank_jobs(jobs)
    for answer in out:
        if isinstance(answer, BaseException):
            raise answer
    return [answer for answer in out if not isinstance(answer, BaseException)]


def planned(job: Job) -> SearchPlan:
    """The job's search plan made on the event loop (the test fails when there is none)."""
    assert job.plan is not None, "the job was not planned on the event loop"
    return job.plan


class CountingSearcher:
    def __init__(self, inner, mangle=None) -> None:
        self.inner = inner
        self.calls: list[tuple[int, int]] = []
        self.mangle = mangle

    def search_batched(self, queries, final_num_neighbors, **kw):
        self.calls.append((len(queries), final_num_neighbors))
        idx, dist = self.inner.search_batched(queries, final_num_neighbors=final_num_neighbors, **kw)
        return self.mangle(idx, dist) if self.mangle else (idx, dist)


class CountingQuery:
    def __init__(self, fn) -> None:
        self.fn = fn
        self.batches: list[int] = []

    def __call__(self, **tensors):
        self.batches.append(int(next(iter(tensors.values())).shape[0]))
        return self.fn(**tensors)


def with_searcher(model, searcher, **settings):
    """``model`` answering from ``searcher`` (a LocalIndex over the same item vectors); ``settings``
    overrides rescore_k, group_width, scan_chunk_rows, distances_are_scores."""
    from serving.item_index import LocalIndex

    base = model.index
    index = LocalIndex(
        searcher,
        model.item_embeddings,
        rescore_k=settings.get("rescore_k", base.rescore_k),
        group_width=settings.get("group_width", base.group_width),
        scan_chunk_rows=settings.get("scan_chunk_rows", base.scan_chunk_rows),
    )
    index.distances_are_scores = settings.get("distances_are_scores", base.distances_are_scores)
    return dataclasses.replace(model, index=index)


def only_two(idx, dist):
    """The index "finds" two items only (every query)."""
    dist = dist.copy()
    dist[:, 2:] = np.nan
    return idx, dist


@pytest.fixture
def model(client):
    served = client.app.state.holder.model
    assert served is not None
    return dataclasses.replace(
        with_searcher(served, CountingSearcher(served.index.searcher)), query_fn=CountingQuery(served.query_fn)
    )


def test_one_query_call_and_one_search_per_batch(model, truth) -> None:
    def batch(m):
        jobs = [plan_recommendation(m, req(user_id=f"u{i:06d}", k=5)) for i in range(6)]
        jobs.append(plan_recommendation(m, req(features={"age": 40.0}, k=5)))
        jobs.append(plan_recommendation(m, req(k=5)))  # popular: no model call
        jobs.append(plan_similar(m, 3, 5))
        return jobs

    out = answered(batch(model))
    assert model.user_vectors is not None  # known users' vectors were precomputed at load
    assert model.query_fn.batches == [1]  # only the features-only request runs the tower
    assert len(model.index.searcher.calls) == 1 and model.index.searcher.calls[0][0] == 8
    assert all(len(r) == 5 for r in out)
    q = truth.query_vector("u000000")
    expected = np.sort(truth.emb[[r for r in range(300) if r not in truth.seen["u000000"]]] @ q)[::-1][:5]
    np.testing.assert_allclose([i["score"] for i in out[0]], expected, rtol=1e-4, atol=1e-4)

    uncached = dataclasses.replace(model, user_vectors=None, query_fn=CountingQuery(model.query_fn.fn))
    again = answered(batch(uncached))
    assert uncached.query_fn.batches == [7]  # without precomputed vectors: one tower call for all seven
    for a, b in zip(out, again, strict=True):
        assert [i["item_id"] for i in a] == [i["item_id"] for i in b]
        np.testing.assert_allclose([i["score"] for i in a], [i["score"] for i in b], rtol=1e-5, atol=1e-5)


def test_precomputed_user_vectors_are_the_tower_output(model, truth) -> None:
    rows = [model.users.get(f"u{i:06d}") for i in range(0, 200, 7)]
    for row in rows:
        (uid,) = model.users.ids([row])
        np.testing.assert_allclose(model.user_vectors[row], truth.query_vector(uid, None), rtol=1e-5, atol=1e-5)


def test_feature_overrides_bypass_the_precomputed_vector(model, truth) -> None:
    job = plan_recommendation(model, req(user_id="u000007", features={"country": "IT"}, k=5, exclude_seen=False))
    out = answered([job])[0]
    assert model.query_fn.batches == [1]
    q = truth.query_vector("u000007", {"country": "IT"})
    np.testing.assert_allclose([i["score"] for i in out], np.sort(truth.emb @ q)[::-1][:5], rtol=1e-4, atol=1e-4)


def test_overfetch_covers_exclusions(model, truth) -> None:
    seen = len(truth.seen["u000007"])
    job = plan_recommendation(model, req(user_id="u000007", k=10, exclude_item_ids=["i000001", "i000002"]))
    answered([job])
    ((_, fetch),) = model.index.searcher.calls
    assert fetch >= 10 + len(job.exclude) and len(job.exclude) >= seen


def test_narrow_filter_is_a_full_scan_without_the_index(model) -> None:
    out = answered([plan_recommendation(model, req(user_id="u000001", k=5, filters={"category": ["books"]}))])[0]
    assert model.index.searcher.calls == []
    assert len(out) == 5 and all(i["category"] == "books" for i in out)


def test_falls_back_to_a_full_scan_when_candidates_run_short(client, truth) -> None:
    served = client.app.state.holder.model
    model = with_searcher(served, CountingSearcher(served.index.searcher, mangle=only_two))
    out = answered([plan_recommendation(model, req(user_id="u000001", k=20))])[0]
    assert model.index.searcher.calls, "the index was asked first"
    q = truth.query_vector("u000001")
    eligible = [r for r in range(300) if r not in truth.seen["u000001"]]
    np.testing.assert_allclose([i["score"] for i in out], np.sort(truth.emb[eligible] @ q)[::-1][:20], rtol=1e-4, atol=1e-4)


def test_short_candidates_are_scanned_in_the_same_thread_step(trained, make_client, truth) -> None:
    """The full scan of a job whose candidates ran short happens inside the inference-thread step:
    the result leaving the thread is final, and a request is one submission to the batcher."""

    executed: list[list] = []

    def counted(jobs):
        results = execute_batch(jobs)
        executed.append(results)
        return results

    root, _ = trained
    with make_client(root, execute=counted) as c:
        served = c.app.state.holder.model
        mangled = with_searcher(served, CountingSearcher(served.index.searcher, mangle=only_two))
        job = plan_recommendation(mangled, req(user_id="u000001", k=20))
        (direct,) = execute_batch([job])
        assert isinstance(direct, Ranked) and len(direct.rows) == 20  # final, not a short Searched
        assert len(mangled.index.searcher.calls) == 1
        c.app.state.holder.swap(mangled)
        r = c.post("/v1/recommendations", json={"user_id": "u000001", "k": 20})
        assert r.status_code == 200, r.text
        assert len(mangled.index.searcher.calls) == 2  # the direct call above, then the request's: no second round
        request_batches = [results for results in executed if len(results) == 1 and isinstance(results[0], Ranked)]
        assert len(executed) == 1 and len(request_batches) == 1  # one submission for the request
        q = truth.query_vector("u000001")
        eligible = [r for r in range(300) if r not in truth.seen["u000001"]]
        expected = np.sort(truth.emb[eligible] @ q)[::-1][:20]
        np.testing.assert_allclose([i["score"] for i in r.json()["items"]], expected, rtol=1e-4, atol=1e-4)


def test_short_candidates_under_a_filter_answer_min_k_eligible_in_one_rank_call(trained, make_client, truth) -> None:
    """A filter passing most items is searched (not planned as a full scan); the index returns too
    few candidates: one ``rank`` call, one submission, and the answer holds ``min(k, eligible)`` items,
    the exact best of the eligible ones."""
    from serving.retrieval.job import plan_search

    submitted: list[int] = []

    def counted(jobs):
        submitted.append(len(jobs))
        return execute_batch(jobs)

    categories = sorted(set(truth.items["category"]))
    kept = [c for c in categories if c != categories[0]]
    passing = set(np.flatnonzero(truth.items["category"].isin(kept).to_numpy()).tolist())
    root, _ = trained
    with make_client(root, execute=counted) as c:
        served = c.app.state.holder.model
        mangled = with_searcher(served, CountingSearcher(served.index.searcher, mangle=only_two))
        retriever = c.app.state.retriever
        uid, k = "u000003", 12
        job = retriever.plan(mangled, req(user_id=uid, k=k, filters={"category": kept}))
        q = truth.query_vector(uid)
        assert not plan_search(job, q).full_scan  # the index is asked first
        ranking = c.portal.call(retriever.rank, job)  # on the app's event loop, as a route calls it
        assert submitted == [1] and len(mangled.index.searcher.calls) == 1
        eligible = sorted(passing - truth.seen[uid])
        assert len(ranking.items) == min(k, len(eligible))
        np.testing.assert_allclose(
            [i["score"] for i in ranking.items], np.sort(truth.emb[eligible] @ q)[::-1][:k], rtol=1e-4, atol=1e-4
        )
        assert all(i["category"] in kept for i in ranking.items)
        assert ranking.strategy == "personal" and ranking.ignored_item_ids is None


def test_only_the_job_whose_candidates_ran_short_is_scanned(model, truth) -> None:
    def first_row_finds_two(idx, dist):
        dist = dist.copy()
        dist[0, 2:] = np.nan
        return idx, dist

    mangled = with_searcher(model, CountingSearcher(model.index.searcher.inner, mangle=first_row_finds_two))
    jobs = [
        plan_recommendation(mangled, req(k=4)),
        *(plan_recommendation(mangled, req(user_id=f"u{i:06d}", k=3 + i)) for i in range(3)),
    ]
    executed = execute_batch(jobs)
    assert len(mangled.index.searcher.calls) == 1
    assert isinstance(executed[1], Ranked)  # u000000 is the search's first row: scanned in the same step
    assert all(isinstance(e, Searched) for e in executed[2:])  # the others kept their searched candidates
    out = answered(jobs)
    assert len(out[0]) == 4 and [i["rank"] for i in out[0]] == [1, 2, 3, 4]  # popular, not searched
    for i, answer in zip((0, 1, 2), out[1:], strict=True):
        uid = f"u{i:06d}"
        q = truth.query_vector(uid)
        eligible = [r for r in range(300) if r not in truth.seen[uid]]
        np.testing.assert_allclose(
            [a["score"] for a in answer], np.sort(truth.emb[eligible] @ q)[::-1][: 3 + i], rtol=1e-4, atol=1e-4
        )


def test_a_failing_group_fails_only_its_jobs(client) -> None:
    served = client.app.state.holder.model

    def boom(**_):
        raise RuntimeError("tower exploded")

    broken = dataclasses.replace(served, query_fn=boom, user_vectors=None)
    out = rank_jobs([plan_recommendation(broken, req(user_id="u000001")), plan_recommendation(served, req(user_id="u000001"))])
    assert isinstance(out[0], RuntimeError)
    assert isinstance(out[1], list) and len(out[1]) == 10


def tree_ah_searcher(emb: np.ndarray, reorder: int | None = None):
    """A small tree + AH searcher over ``emb`` visiting every leaf; ``reorder`` adds ScaNN's own exact re-ordering."""
    import scann

    builder = (
        scann.scann_ops_pybind.builder(np.ascontiguousarray(emb), 10, "dot_product")
        .tree(num_leaves=8, num_leaves_to_search=8, training_sample_size=len(emb))
        .score_ah(2, anisotropic_quantization_threshold=0.2)
    )
    return (builder.reorder(reorder) if reorder else builder).build()


def test_reordering_index_is_asked_for_a_pool_as_big_as_the_over_fetch(client, truth, monkeypatch) -> None:
    """A tree + AH searcher with ScaNN's own re-ordering step (exact distances) re-orders only its
    configured 20 candidates unless told otherwise; asking for more neighbours than that must still
    return them (the pool asked for is as big as the over-fetch, no fallback to a full scan)."""
    served = client.app.state.holder.model
    model = with_searcher(served, CountingSearcher(tree_ah_searcher(truth.emb, reorder=20)))
    scans: list[int] = []
    real_scan = model.index.scan

    def counted_scan(*args: Any) -> Any:
        scans.append(1)
        return real_scan(*args)

    monkeypatch.setattr(model.index, "scan", counted_scan)
    out = answered([plan_recommendation(model, req(user_id="u000009", k=60))])[0]
    assert model.index.searcher.calls and model.index.searcher.calls[0][1] > 60
    assert scans == [], "the index returned too few candidates"
    q = truth.query_vector("u000009")
    eligible = [r for r in range(300) if r not in truth.seen["u000009"]]
    np.testing.assert_allclose([i["score"] for i in out], np.sort(truth.emb[eligible] @ q)[::-1][:60], rtol=1e-4, atol=1e-4)


def test_index_distances_and_re_scoring_agree(model) -> None:
    assert model.index.distances_are_scores  # brute force: load verified that the index returns exact dot products
    users = [f"u{i:06d}" for i in range(0, 60, 3)]
    direct = answered([plan_recommendation(model, req(user_id=u, k=7)) for u in users])
    rescoring = with_searcher(model, model.index.searcher, distances_are_scores=False)
    again = answered([plan_recommendation(rescoring, req(user_id=u, k=7)) for u in users])
    for a, b in zip(direct, again, strict=True):
        assert [i["item_id"] for i in a] == [i["item_id"] for i in b]
        np.testing.assert_allclose([i["score"] for i in a], [i["score"] for i in b], rtol=1e-5, atol=1e-5)


def test_index_without_float_vectors_has_its_pool_re_scored_exactly(client, truth) -> None:
    """A tree + AH index built without its own reorder step (as training builds it) returns
    approximate distances: the service asks it for ``rescore_k`` candidates per query and
    re-scores them against the item embeddings, so answers carry exact dot products."""
    served = client.app.state.holder.model
    searcher = CountingSearcher(tree_ah_searcher(truth.emb))
    model = with_searcher(served, searcher, rescore_k=120, distances_are_scores=False)
    users = ["u000009", "u000010", "u000011"]
    out = answered([plan_recommendation(model, req(user_id=u, k=8)) for u in users])
    assert model.index.searcher.calls == [(3, 120)]  # one search for the batch, a pool of 120 each
    for u, items in zip(users, out, strict=True):
        q = truth.query_vector(u)
        rows = [truth.item_row(i["item_id"]) for i in items]
        assert not set(rows) & set(truth.seen[u])
        np.testing.assert_allclose([i["score"] for i in items], truth.emb[rows] @ q, rtol=1e-5, atol=1e-5)
        # every leaf searched, a pool of 120 of 300 items: the exact top 8 of the eligible items
        eligible = [r for r in range(len(truth.emb)) if r not in truth.seen[u]]
        np.testing.assert_allclose([i["score"] for i in items], np.sort(truth.emb[eligible] @ q)[::-1][:8], rtol=1e-4, atol=1e-4)
