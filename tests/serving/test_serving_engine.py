"""The ranking engine directly: one model call per batch, ScaNN over-fetch,
exact scoring when filters leave too few candidates."""

import dataclasses
from types import SimpleNamespace

import numpy as np
import pytest

from serving.engine import build_job, run_jobs, similar_job
from serving.errors import ApiError


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
    overrides reorder_k, rescore_k, group_width, exact_chunk_rows, exact_scores."""
    from serving.item_index import LocalIndex

    base = model.index
    index = LocalIndex(
        searcher,
        model.item_embeddings,
        reorder_k=settings.get("reorder_k", base.reorder_k),
        rescore_k=settings.get("rescore_k", base.rescore_k),
        group_width=settings.get("group_width", base.group_width),
        exact_chunk_rows=settings.get("exact_chunk_rows", base.exact_chunk_rows),
    )
    index.exact_scores = settings.get("exact_scores", base.exact_scores)
    return dataclasses.replace(model, index=index)


def req(**kw) -> SimpleNamespace:
    base = {"user_id": None, "features": None, "k": 10, "exclude_seen": True, "exclude_item_ids": [], "filters": None}
    return SimpleNamespace(**{**base, **kw})


@pytest.fixture
def model(client):
    served = client.app.state.holder.model
    assert served is not None
    return dataclasses.replace(
        with_searcher(served, CountingSearcher(served.index.searcher)), query_fn=CountingQuery(served.query_fn)
    )


def test_one_query_call_and_one_search_per_batch(model, truth) -> None:
    def batch(m):
        jobs = [build_job(m, req(user_id=f"u{i:06d}", k=5)) for i in range(6)]
        jobs.append(build_job(m, req(features={"age": 40.0}, k=5)))
        jobs.append(build_job(m, req(k=5)))  # popular: no model call
        jobs.append(similar_job(m, 3, 5))
        return jobs

    out = run_jobs(batch(model))
    assert model.user_vectors is not None  # known users' vectors were precomputed at load
    assert model.query_fn.batches == [1]  # only the features-only request runs the tower
    assert len(model.index.searcher.calls) == 1 and model.index.searcher.calls[0][0] == 8
    assert all(len(r) == 5 for r in out)
    q = truth.query_vector("u000000")
    expected = np.sort(truth.emb[[r for r in range(300) if r not in truth.seen["u000000"]]] @ q)[::-1][:5]
    np.testing.assert_allclose([i["score"] for i in out[0]], expected, rtol=1e-4, atol=1e-4)

    uncached = dataclasses.replace(model, user_vectors=None, query_fn=CountingQuery(model.query_fn.fn))
    again = run_jobs(batch(uncached))
    assert uncached.query_fn.batches == [7]  # without precomputed vectors: one tower call for all seven
    for a, b in zip(out, again, strict=True):
        assert [i["item_id"] for i in a] == [i["item_id"] for i in b]
        np.testing.assert_allclose([i["score"] for i in a], [i["score"] for i in b], rtol=1e-5, atol=1e-5)


def test_precomputed_user_vectors_are_the_tower_output(model, truth) -> None:
    rows = [model.users.get(f"u{i:06d}") for i in range(0, 200, 7)]
    for row in rows:
        uid = model.users.id_of(row)
        np.testing.assert_allclose(model.user_vectors[row], truth.query_vector(uid, None), rtol=1e-5, atol=1e-5)


def test_feature_overrides_bypass_the_precomputed_vector(model, truth) -> None:
    job = build_job(model, req(user_id="u000007", features={"country": "IT"}, k=5, exclude_seen=False))
    out = run_jobs([job])[0]
    assert model.query_fn.batches == [1]
    q = truth.query_vector("u000007", {"country": "IT"})
    np.testing.assert_allclose([i["score"] for i in out], np.sort(truth.emb @ q)[::-1][:5], rtol=1e-4, atol=1e-4)


def test_overfetch_covers_exclusions(model, truth) -> None:
    seen = len(truth.seen["u000007"])
    job = build_job(model, req(user_id="u000007", k=10, exclude_item_ids=["i000001", "i000002"]))
    run_jobs([job])
    ((_, fetch),) = model.index.searcher.calls
    assert fetch >= 10 + len(job.exclude) and len(job.exclude) >= seen


def test_narrow_filter_scores_exactly_without_the_index(model) -> None:
    out = run_jobs([build_job(model, req(user_id="u000001", k=5, filters={"category": ["books"]}))])[0]
    assert model.index.searcher.calls == []
    assert len(out) == 5 and all(i["category"] == "books" for i in out)


def test_falls_back_to_exact_when_candidates_run_short(client, truth) -> None:
    served = client.app.state.holder.model

    def only_two(idx, dist):  # the index "finds" two items only
        dist = dist.copy()
        dist[:, 2:] = np.nan
        return idx, dist

    model = with_searcher(served, CountingSearcher(served.index.searcher, mangle=only_two))
    out = run_jobs([build_job(model, req(user_id="u000001", k=20))])[0]
    assert model.index.searcher.calls, "the index was asked first"
    q = truth.query_vector("u000001")
    eligible = [r for r in range(300) if r not in truth.seen["u000001"]]
    np.testing.assert_allclose([i["score"] for i in out], np.sort(truth.emb[eligible] @ q)[::-1][:20], rtol=1e-4, atol=1e-4)


def test_short_candidates_go_back_to_the_thread_for_exact_scoring(trained, make_client, truth) -> None:
    from serving.engine import EXACT_NEEDED, compute_jobs, finish_jobs

    def only_two(idx, dist):
        dist = dist.copy()
        dist[:, 2:] = np.nan
        return idx, dist

    root, _ = trained
    with make_client(root) as c:
        served = c.app.state.holder.model
        mangled = with_searcher(served, CountingSearcher(served.index.searcher, mangle=only_two))
        job = build_job(mangled, req(user_id="u000001", k=20))
        assert finish_jobs([job], compute_jobs([job])) == [EXACT_NEEDED]
        c.app.state.holder.swap(mangled)
        r = c.post("/v1/recommendations", json={"user_id": "u000001", "k": 20})
        assert r.status_code == 200, r.text
        assert len(mangled.index.searcher.calls) == 2  # the warm first call above, then the request's
        q = truth.query_vector("u000001")
        eligible = [r for r in range(300) if r not in truth.seen["u000001"]]
        expected = np.sort(truth.emb[eligible] @ q)[::-1][:20]
        np.testing.assert_allclose([i["score"] for i in r.json()["items"]], expected, rtol=1e-4, atol=1e-4)


def test_only_the_job_whose_candidates_ran_short_needs_exact_scoring(model, truth) -> None:
    from serving.engine import EXACT_NEEDED, compute_jobs, finish_jobs

    def first_row_finds_two(idx, dist):
        dist = dist.copy()
        dist[0, 2:] = np.nan
        return idx, dist

    mangled = with_searcher(model, CountingSearcher(model.index.searcher.inner, mangle=first_row_finds_two))
    jobs = [build_job(mangled, req(k=4)), *(build_job(mangled, req(user_id=f"u{i:06d}", k=3 + i)) for i in range(3))]
    out = finish_jobs(jobs, compute_jobs(jobs))
    assert len(mangled.index.searcher.calls) == 1
    assert len(out[0]) == 4 and [i["rank"] for i in out[0]] == [1, 2, 3, 4]  # popular, not searched
    assert out[1] is EXACT_NEEDED  # u000000 is the search's first row
    for i, answer in zip((1, 2), out[2:], strict=True):
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
    out = run_jobs([build_job(broken, req(user_id="u000001")), build_job(served, req(user_id="u000001"))])
    assert isinstance(out[0], RuntimeError)
    assert isinstance(out[1], list) and len(out[1]) == 10


@pytest.mark.parametrize(
    ("kw", "code"),
    [
        ({"features": {"nope": 1.0}}, "invalid_features"),
        ({"features": {"age": "old"}}, "invalid_features"),
        ({"features": {"country": 3.0}}, "invalid_features"),
        ({"features": {"user_id": "u000001"}}, "invalid_features"),
        ({"filters": {"colour": ["red"]}}, "invalid_filter"),
        ({"filters": {"category": SimpleNamespace(min=1.0, max=2.0)}}, "invalid_filter"),
        ({"filters": {"price": ["cheap"]}}, "invalid_filter"),
    ],
)
def test_request_checked_against_the_version(model, kw, code) -> None:
    with pytest.raises(ApiError) as info:
        build_job(model, req(**kw))
    assert info.value.status == 422 and info.value.code == code


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
    """A tree + AH searcher re-orders only ``reorder_k`` candidates unless told otherwise; asking for
    more neighbours than that must still return them (not silently fall back to exact scoring)."""
    served = client.app.state.holder.model
    model = with_searcher(served, CountingSearcher(tree_ah_searcher(truth.emb, reorder=20)), reorder_k=20)
    exact_calls = []
    real_exact = model.index.exact
    monkeypatch.setattr(model.index, "exact", lambda *a: exact_calls.append(1) or real_exact(*a))
    out = run_jobs([build_job(model, req(user_id="u000009", k=60))])[0]
    assert model.index.searcher.calls and model.index.searcher.calls[0][1] > 60
    assert exact_calls == [], "the index returned too few candidates"
    q = truth.query_vector("u000009")
    eligible = [r for r in range(300) if r not in truth.seen["u000009"]]
    np.testing.assert_allclose([i["score"] for i in out], np.sort(truth.emb[eligible] @ q)[::-1][:60], rtol=1e-4, atol=1e-4)


def test_index_distances_and_re_scoring_agree(model) -> None:
    assert model.index.exact_scores  # brute force: load verified that the index returns exact dot products
    users = [f"u{i:06d}" for i in range(0, 60, 3)]
    direct = run_jobs([build_job(model, req(user_id=u, k=7)) for u in users])
    rescoring = with_searcher(model, model.index.searcher, exact_scores=False)
    again = run_jobs([build_job(rescoring, req(user_id=u, k=7)) for u in users])
    for a, b in zip(direct, again, strict=True):
        assert [i["item_id"] for i in a] == [i["item_id"] for i in b]
        np.testing.assert_allclose([i["score"] for i in a], [i["score"] for i in b], rtol=1e-5, atol=1e-5)


def test_index_without_float_vectors_has_its_pool_re_scored_exactly(client, truth) -> None:
    """A tree + AH index built without its own reorder step (as training builds it) returns
    approximate distances: the service asks it for ``rescore_k`` candidates per query and
    re-scores them against the item embeddings, so answers carry exact dot products."""
    served = client.app.state.holder.model
    searcher = CountingSearcher(tree_ah_searcher(truth.emb))
    model = with_searcher(served, searcher, reorder_k=0, rescore_k=120, exact_scores=False)
    users = ["u000009", "u000010", "u000011"]
    out = run_jobs([build_job(model, req(user_id=u, k=8)) for u in users])
    assert model.index.searcher.calls == [(3, 120)]  # one search for the batch, a pool of 120 each
    for u, items in zip(users, out, strict=True):
        q = truth.query_vector(u)
        rows = [truth.item_row(i["item_id"]) for i in items]
        assert not set(rows) & set(truth.seen[u])
        np.testing.assert_allclose([i["score"] for i in items], truth.emb[rows] @ q, rtol=1e-5, atol=1e-5)
        # every leaf searched, a pool of 120 of 300 items: the exact top 8 of the eligible items
        eligible = [r for r in range(len(truth.emb)) if r not in truth.seen[u]]
        np.testing.assert_allclose([i["score"] for i in items], np.sort(truth.emb[eligible] @ q)[::-1][:8], rtol=1e-4, atol=1e-4)
