"""The planning step (serving/retrieval/plan.py): requests checked against the served version,
errors that name the bad value, the strategy chosen, and the Strategy enum shared with the schema."""

from types import SimpleNamespace

import numpy as np
import pytest

from serving.retrieval.errors import InvalidQuery
from serving.retrieval.plan import UserQuery, plan_recommendation, plan_similar
from serving.retrieval.strategy import QUERY_TOWER_STRATEGIES, Strategy
from tests.serving.retrieval.support import req


@pytest.fixture
def model(client):
    served = client.app.state.holder.model
    assert served is not None
    return served


@pytest.mark.parametrize(
    ("kw", "code", "echoed"),
    [
        ({"features": {"nope": 1.0}}, "invalid_features", "'nope'"),
        ({"features": {"age": "old"}}, "invalid_features", "'old'"),
        ({"features": {"age": float("inf")}}, "invalid_features", "inf"),
        ({"features": {"country": 3.0}}, "invalid_features", "3.0"),
        ({"features": {"user_id": "u000001"}}, "invalid_features", "user_id"),
        ({"filters": {"colour": ["red"]}}, "invalid_filter", "'colour'"),
        ({"filters": {"category": SimpleNamespace(min=1.0, max=2.0)}}, "invalid_filter", "'category'"),
        ({"filters": {"price": ["cheap"]}}, "invalid_filter", "'cheap'"),
        ({"filters": {"price": [1.0, float("nan")]}}, "invalid_filter", "nan"),
        ({"filters": {"price": SimpleNamespace(min=None, max=float("-inf"))}}, "invalid_filter", "-inf"),
    ],
)
def test_request_checked_against_the_version(model, kw, code, echoed) -> None:
    """Each bad request is InvalidQuery with its code, and the message names the bad value."""
    with pytest.raises(InvalidQuery) as info:
        plan_recommendation(model, req(**kw))
    assert info.value.code == code
    assert echoed in info.value.message and str(info.value) == info.value.message


def test_a_long_bad_value_is_shown_cut_short(model) -> None:
    with pytest.raises(InvalidQuery) as info:
        plan_recommendation(model, req(features={"age": "x" * 5000}))
    assert "'xxxx" in info.value.message and "..." in info.value.message and len(info.value.message) < 200


def test_invalid_query_reaches_the_client_as_422_echoing_the_value(client) -> None:
    r = client.post("/v1/recommendations", json={"filters": {"price": ["cheap"]}})
    assert r.status_code == 422
    error = r.json()["error"]
    assert error["code"] == "invalid_filter" and "'cheap'" in error["message"]


@pytest.mark.parametrize(
    ("kw", "strategy"),
    [
        ({"user_id": "u000004"}, Strategy.PERSONAL),
        ({"user_id": "nobody-knows-me"}, Strategy.POPULAR),
        ({"features": {"age": 33.0}}, Strategy.FEATURES),
        ({}, Strategy.POPULAR),
    ],
)
def test_strategy_is_the_enum(model, kw, strategy) -> None:
    job = plan_recommendation(model, req(**kw))
    assert job.strategy is strategy and isinstance(job.strategy, Strategy)


def test_a_known_user_without_features_or_filters_is_planned_on_the_loop(model) -> None:
    known = plan_recommendation(model, UserQuery(user_id="u000004", k=5))
    assert known.plan is not None and known.plan.wanted == 5 and not known.plan.full_scan
    np.testing.assert_array_equal(known.plan.query, model.user_vectors[model.users.get("u000004")])
    filtered = plan_recommendation(model, req(user_id="u000004", k=5, filters={"category": ["books"]}))
    assert filtered.plan is None  # its mask is built in the inference thread
    similar = plan_similar(model, 7, 4)
    assert similar.strategy is Strategy.SIMILAR and similar.exclude.tolist() == [7] and similar.plan is not None


def test_strategy_values_are_the_schemas_list(client) -> None:
    """The answers' ``strategy`` in the OpenAPI document lists exactly the enum's values."""
    schemas = client.get("/openapi.json").json()["components"]["schemas"]

    def values(schema: dict) -> set[str]:
        prop = schema["properties"]["strategy"]
        if "$ref" in prop:  # an Enum field: its own component
            prop = schemas[prop["$ref"].rsplit("/", 1)[1]]
        return {prop["const"]} if "const" in prop else set(prop["enum"])

    assert values(schemas["RecommendationResponse"]) == {s.value for s in Strategy}
    assert values(schemas["SimilarItemsResponse"]) == {Strategy.SIMILAR.value}
    assert {Strategy.PERSONAL, Strategy.FEATURES, Strategy.SESSION} == QUERY_TOWER_STRATEGIES


def test_strategy_members_equal_and_hash_as_their_values() -> None:
    """A member is its value for ``==``, hashing, JSON and metric labels (dict keys by value find it)."""
    import orjson

    by_value = {s.value: s for s in Strategy}
    for member in Strategy:
        assert member == member.value and hash(member) == hash(member.value) and by_value[member] is member
        assert str(member) == member.value and orjson.dumps(member) == orjson.dumps(member.value)
    assert Strategy("session") is Strategy.SESSION
