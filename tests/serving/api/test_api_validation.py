"""Numbers in requests (issue 17, findings 2 and 3): a number that is not finite or does
not fit the type it is used as is a 422 naming the field, on both recommendation
routes; a feature the query tower turns into a vector that cannot be scored is a
422 naming the features, never an answer emptied without a word; repeated filter
values are kept once."""

import dataclasses
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from serving.item_index import LocalIndex
from serving.retrieval.errors import InvalidQuery
from serving.retrieval.plan import plan_recommendation
from serving.retrieval.retriever import rank_jobs
from tests.serving.api.test_api_limits import assert_error

HUGE_INT = "1" + "0" * 309  # valid JSON, past float64's range


def _post(client, path: str, raw: str):
    return client.post(path, content=raw.encode(), headers={"content-type": "application/json"})


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        ('{"k": 5, "filters": {"price": [' + HUGE_INT + "]}}", "filters.price"),
        ('{"k": 5, "filters": {"price": [1, -' + HUGE_INT + "]}}", "filters.price"),
        ('{"k": 5, "filters": {"price": [1e400]}}', "filters.price"),
        ('{"k": 5, "filters": {"price": [NaN]}}', "filters.price"),
        ('{"k": 5, "filters": {"price": {"min": 1e400}}}', "filters.price"),
        ('{"k": 5, "filters": {"price": {"max": -Infinity}}}', "filters.price"),
        ('{"k": 5, "filters": {"price": {"min": ' + HUGE_INT + "}}}", "filters.price"),
        ('{"k": 3, "features": {"age": 1e300}}', "features.age"),
        ('{"k": 3, "features": {"age": -3.5e38}}', "features.age"),
        ('{"k": 3, "features": {"age": ' + HUGE_INT + "}}", "features.age"),
        ('{"k": 3, "features": {"age": Infinity}}', "features.age"),
    ],
)
def test_numbers_that_do_not_fit_are_422_naming_the_field(client, raw, field) -> None:
    error = assert_error(_post(client, "/v1/recommendations", raw), 422, "validation_error")
    assert field in error["message"], error
    batch = '{"requests": [{"k": 2}, ' + raw + "]}"
    error = assert_error(_post(client, "/v1/recommendations/batch", batch), 422, "validation_error")
    assert f"requests.1.{field}" in error["message"], error


def test_large_numbers_that_fit_are_answered_in_full(client) -> None:
    """Finite values at the edge of the ranges: a full answer (min(k, eligible) items)."""
    r = client.post("/v1/recommendations", json={"k": 3, "features": {"age": 3.4e38}})
    assert r.status_code == 200, r.text
    assert len(r.json()["items"]) == 3
    cheap = client.post("/v1/recommendations", json={"k": 4, "filters": {"price": {"min": -1e300, "max": 1e300}}})
    assert cheap.status_code == 200 and len(cheap.json()["items"]) == 4
    none = client.post("/v1/recommendations", json={"k": 4, "filters": {"price": [10**300]}})
    assert none.status_code == 200 and none.json()["items"] == []  # no item costs that much: nothing eligible


def test_openapi_shows_the_feature_range(client) -> None:
    spec = client.get("/openapi.json").json()
    features = spec["components"]["schemas"]["RecommendationRequest"]["properties"]["features"]
    number = next(s for s in features["anyOf"][0]["additionalProperties"]["oneOf"] if s.get("type") == "number")
    assert number["maximum"] == pytest.approx(3.4028234663852886e38) and number["minimum"] == -number["maximum"]


@pytest.fixture
def served(client):
    model = client.app.state.holder.model
    assert model is not None
    return model


def req(**kw) -> SimpleNamespace:
    base: dict[str, Any] = {"user_id": None, "features": None, "k": 10, "exclude_seen": True, "exclude_item_ids": []}
    base.update(filters=None, recent_item_ids=None)
    return SimpleNamespace(**{**base, **kw})


@pytest.mark.parametrize(
    ("kw", "code"),
    [
        ({"filters": {"price": [10**309]}}, "invalid_filter"),
        ({"filters": {"price": [float("nan")]}}, "invalid_filter"),
        ({"filters": {"price": SimpleNamespace(min=float("inf"), max=None)}}, "invalid_filter"),
        ({"filters": {"price": SimpleNamespace(min=None, max=10**309)}}, "invalid_filter"),
        ({"features": {"age": 1e300}}, "invalid_features"),
        ({"features": {"age": 10**309}}, "invalid_features"),
    ],
)
def test_the_engine_checks_numbers_from_any_caller(served, kw, code) -> None:
    """The same rules hold for requests that did not come through the pydantic schema."""
    with pytest.raises(InvalidQuery) as info:
        plan_recommendation(served, req(**kw))
    assert info.value.code == code


def test_repeated_filter_values_are_kept_once(served) -> None:
    job = plan_recommendation(
        served,
        req(
            filters={
                "category": ["books"] * 900 + ["toys", "books"],
                "tags": ["a", "a"],
                "price": [5, 5.0, 7, 5],
                "brand": [7, "7", True, "true"],
            }
        ),
    )
    assert dict(job.filters) == {"category": ("books", "toys"), "tags": ("a",), "price": (5.0, 7.0), "brand": ("7", "true")}


class OverflowingTower:
    """The real query tower, whose output is multiplied by ``scale`` for ages over 1000: a
    tower that, like a real one with an unbounded numeric input, leaves float32's range."""

    def __init__(self, fn, scale: float) -> None:
        self.fn = fn
        self.scale = scale

    def __call__(self, **tensors):
        import tensorflow as tf

        out = self.fn(**tensors)["embedding"]
        factor = tf.where(tensors["age"] > 1000.0, tf.constant(self.scale, tf.float32), tf.constant(1.0, tf.float32))
        return {"embedding": out * factor[:, None]}


@pytest.mark.parametrize("scale", [1e38, 1e37])  # vectors with inf entries; finite vectors whose scores overflow
def test_features_the_tower_cannot_score_are_422_naming_them(served, scale) -> None:
    model = dataclasses.replace(served, query_fn=OverflowingTower(served.query_fn, scale))
    jobs = [
        plan_recommendation(model, req(features={"age": 5000.0, "country": "FR"}, k=3)),
        plan_recommendation(model, req(features={"age": 40.0}, k=3)),
        plan_recommendation(model, req(user_id="u000003", features={"age": 2000.0}, k=3)),
        plan_recommendation(model, req(user_id="u000003", k=3)),
    ]
    out = rank_jobs(jobs)
    for bad in (out[0], out[2]):
        assert isinstance(bad, InvalidQuery) and bad.code == "invalid_features"
        assert "age" in bad.message and "country" not in bad.message
    mates = [out[1], out[3]]
    assert all(isinstance(items, list) and len(items) == 3 for items in mates)  # their batch mates are answered in full
    assert all(np.isfinite(item["score"]) for items in mates if isinstance(items, list) for item in items)


def test_unscorable_features_are_422_on_both_routes(trained, make_client) -> None:
    root, _ = trained
    with make_client(root) as c:
        served = c.app.state.holder.model
        c.app.state.holder.swap(dataclasses.replace(served, query_fn=OverflowingTower(served.query_fn, 1e38)))
        error = assert_error(c.post("/v1/recommendations", json={"k": 3, "features": {"age": 5000}}), 422, "invalid_features")
        assert "age" in error["message"]
        batch = {"requests": [{"k": 2, "features": {"age": 30}}, {"k": 3, "features": {"age": 5000}}]}
        error = assert_error(c.post("/v1/recommendations/batch", json=batch), 422, "invalid_features")
        assert error["message"].startswith("requests[1]: features age")
        fine = c.post("/v1/recommendations", json={"k": 3, "features": {"age": 30}})
        assert fine.status_code == 200 and len(fine.json()["items"]) == 3


def test_usable_queries_bound_every_score() -> None:
    emb = np.array([[3.0, 4.0], [1.0, 0.0]], dtype=np.float32)  # longest item: norm 5
    index = LocalIndex(None, emb, rescore_k=2)
    assert index.max_item_norm == pytest.approx(5.0)
    # along the longest item: norms 6e37 (score 3e38, fits) and 7e37 (score 3.5e38, overflows)
    queries = np.array(
        [[1.0, 2.0], [np.inf, 0.0], [np.nan, 0.0], [3.6e37, 4.8e37], [4.2e37, 5.6e37], [3e38, 3e38]], dtype=np.float32
    )
    assert index.usable_queries(queries).tolist() == [True, False, False, True, False, False]
    with np.errstate(over="ignore"):
        assert np.isfinite(emb @ queries[3]).all() and not np.isfinite(emb @ queries[4]).all()
