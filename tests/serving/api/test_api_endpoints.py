"""Each endpoint and strategy against the shared app on the trained model."""

import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families


def _ids(body: dict) -> list[str]:
    return [item["item_id"] for item in body["items"]]


def test_known_user_is_personal_and_carries_metadata(client, truth) -> None:
    r = client.post("/v1/recommendations", json={"user_id": "u000001", "k": 5})
    assert r.status_code == 200
    body = r.json()
    assert body["model_version"] == truth.version
    assert r.headers["x-model-version"] == truth.version
    assert body["strategy"] == "personal" and body["user_id"] == "u000001"
    assert [i["rank"] for i in body["items"]] == [1, 2, 3, 4, 5]
    first = body["items"][0]
    row = truth.item_row(first["item_id"])
    assert first["category"] == truth.items["category"].iloc[row]
    assert first["tags"] == list(truth.items["tags"].iloc[row])
    assert first["popularity"] == int(truth.items["popularity"].iloc[row])
    assert not set(_ids(body)) & {truth.items["item_id"].iloc[r] for r in truth.seen["u000001"]}


def test_default_k_and_exclude_seen_false(client, truth) -> None:
    body = client.post("/v1/recommendations", json={"user_id": "u000002"}).json()
    assert len(body["items"]) == 10
    seen_rows = truth.seen["u000002"]
    k = len(seen_rows) + 5
    with_seen = client.post("/v1/recommendations", json={"user_id": "u000002", "k": k, "exclude_seen": False}).json()
    rows = {truth.item_row(i) for i in _ids(with_seen)}
    q = truth.query_vector("u000002")
    top = set(np.argsort(-(truth.emb @ q), kind="stable")[:k].tolist())
    assert rows == top
    assert seen_rows & rows, "with exclude_seen=false the seen items may come back"


def test_unknown_user_with_features_uses_features(client, truth) -> None:
    feats = {"age": 31, "country": "FR", "segment": "premium"}
    body = client.post("/v1/recommendations", json={"user_id": "stranger-1", "features": feats, "k": 5}).json()
    assert body["strategy"] == "features" and body["user_id"] == "stranger-1"
    q = truth.query_vector("stranger-1", feats)
    scores = truth.emb @ q
    expected = np.sort(scores)[::-1][:5]
    np.testing.assert_allclose([i["score"] for i in body["items"]], expected, rtol=1e-4, atol=1e-4)


def test_features_only_missing_inputs_take_defaults(client, truth) -> None:
    body = client.post("/v1/recommendations", json={"features": {"country": "DE"}, "k": 3}).json()
    assert body["strategy"] == "features" and body["user_id"] is None
    q = truth.query_vector(None, {"country": "DE"})
    np.testing.assert_allclose([i["score"] for i in body["items"]], np.sort(truth.emb @ q)[::-1][:3], rtol=1e-4, atol=1e-4)


def test_known_user_features_override(client, truth) -> None:
    plain = client.post("/v1/recommendations", json={"user_id": "u000003", "k": 5}).json()
    over = client.post(
        "/v1/recommendations", json={"user_id": "u000003", "k": 5, "features": {"age": 90, "segment": "budget"}}
    ).json()
    assert over["strategy"] == "personal"
    q = truth.query_vector("u000003", {"age": 90, "segment": "budget"})
    got = [i["score"] for i in over["items"]]
    for item, score in zip(over["items"], got, strict=True):
        assert score == pytest.approx(float(truth.emb[truth.item_row(item["item_id"])] @ q), abs=1e-4)
    assert [i["score"] for i in plain["items"]] != got


def test_nobody_known_gets_popular(client, truth) -> None:
    for payload in ({"k": 4}, {"user_id": "nobody-knows-me", "k": 4}):
        body = client.post("/v1/recommendations", json=payload).json()
        assert body["strategy"] == "popular"
        pop = truth.items["popularity"].to_numpy()
        order = np.lexsort((np.arange(len(pop)), -pop))[:4]
        assert _ids(body) == truth.items["item_id"].to_numpy()[order].tolist()
        assert [i["score"] for i in body["items"]] == [float(pop[r]) for r in order]


def test_popular_with_filters_and_exclusions(client, truth) -> None:
    pop = truth.items["popularity"].to_numpy()
    order = np.lexsort((np.arange(len(pop)), -pop))
    top_books = [r for r in order if truth.items["category"].iloc[r] == "books"]
    excluded = truth.items["item_id"].iloc[top_books[0]]
    body = client.post(
        "/v1/recommendations", json={"k": 3, "filters": {"category": ["books"]}, "exclude_item_ids": [excluded]}
    ).json()
    assert _ids(body) == [truth.items["item_id"].iloc[r] for r in top_books[1:4]]


def test_filters_category_tags_and_price(client, truth) -> None:
    payload = {"user_id": "u000004", "k": 6, "filters": {"category": ["books", "toys"], "price": {"min": 5, "max": 40}}}
    body = client.post("/v1/recommendations", json=payload).json()
    assert body["items"]
    for item in body["items"]:
        assert item["category"] in ("books", "toys") and 5 <= item["price"] <= 40
    tag = truth.items["tags"].iloc[0][0]
    body = client.post("/v1/recommendations", json={"user_id": "u000004", "k": 50, "filters": {"tags": [tag]}}).json()
    expected = sum(tag in list(t) for t in truth.items["tags"]) - sum(
        tag in list(truth.items["tags"].iloc[r]) for r in truth.seen.get("u000004", ())
    )
    assert len(body["items"]) == min(50, expected)
    assert all(tag in item["tags"] for item in body["items"])


def test_filter_matching_nothing_gives_empty_list(client) -> None:
    body = client.post("/v1/recommendations", json={"user_id": "u000001", "filters": {"category": ["no-such"]}}).json()
    assert body["items"] == []


def test_batch_answers_each_request(client, truth) -> None:
    reqs = [{"user_id": "u000001", "k": 2}, {"k": 3}, {"features": {"age": 20}, "k": 1}]
    r = client.post("/v1/recommendations/batch", json={"requests": reqs})
    assert r.status_code == 200
    body = r.json()
    assert body["model_version"] == truth.version
    assert [x["strategy"] for x in body["results"]] == ["personal", "popular", "features"]
    assert [len(x["items"]) for x in body["results"]] == [2, 3, 1]
    single = client.post("/v1/recommendations", json=reqs[0]).json()
    assert _ids(single) == _ids(body["results"][0])


def test_user_route(client) -> None:
    r = client.get("/v1/users/u000005/recommendations", params={"k": 7})
    assert r.status_code == 200
    body = r.json()
    assert body["strategy"] == "personal" and len(body["items"]) == 7
    same = client.post("/v1/recommendations", json={"user_id": "u000005", "k": 7}).json()
    assert _ids(body) == _ids(same)
    missing = client.get("/v1/users/not-a-user/recommendations")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "unknown_user"


def test_similar_items(client, truth) -> None:
    r = client.get("/v1/items/i000010/similar", params={"k": 5})
    assert r.status_code == 200
    body = r.json()
    assert body["item_id"] == "i000010" and body["strategy"] == "similar"
    row = truth.item_row("i000010")
    scores = truth.emb @ truth.emb[row]
    scores[row] = -np.inf
    expected = truth.items["item_id"].to_numpy()[np.argsort(-scores, kind="stable")[:5]].tolist()
    assert _ids(body) == expected
    assert "i000010" not in _ids(body)
    all_items = client.get("/v1/items/i000010/similar", params={"k": 1000}).json()
    assert len(all_items["items"]) == len(truth.items) - 1
    unknown = client.get("/v1/items/nope/similar")
    assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "unknown_item"


def test_model_info(client, truth) -> None:
    body = client.get("/v1/model").json()
    assert body["model_version"] == truth.version
    assert body["num_items"] == len(truth.items) and body["embedding_dim"] == truth.emb.shape[1]
    assert "recall_at_10" in body["metrics"]["evaluation"]["model"]
    assert body["filterable"]["tags"] == "list" and body["filterable"]["price"] == "numeric"
    assert body["filterable"]["category"] == "scalar"


def test_probes(client, truth) -> None:
    assert client.get("/healthz").json() == {"status": "alive"}
    ready = client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["status"] == "ready" and ready.json()["model_version"] == truth.version
    assert ready.headers["x-model-version"] == truth.version


def test_metrics_exposes_the_service(client, truth) -> None:
    client.post("/v1/recommendations", json={"user_id": "u000001", "k": 2})
    client.post("/v1/recommendations", json={"k": 2})
    text = client.get("/metrics").text
    assert 'recsys_request_duration_seconds_count{method="POST",route="/v1/recommendations",status="200"}' in text
    assert 'recsys_recommendations_total{strategy="personal"}' in text
    assert 'recsys_recommendations_total{strategy="popular"}' in text
    samples = {s.name: s for fam in text_string_to_metric_families(text) for s in fam.samples}
    assert samples["recsys_model_version"].value == float(truth.version)
    assert samples["recsys_model_info"].labels["version"] == truth.version
    assert 'recsys_model_reloads_total{outcome="success",reason=""} 1.0' in text
    assert "recsys_microbatch_size_count" in text


def test_openapi_has_examples_and_limits(client) -> None:
    spec = client.get("/openapi.json").json()
    paths = spec["paths"]
    for path in (
        "/v1/recommendations",
        "/v1/recommendations/batch",
        "/v1/users/{user_id}/recommendations",
        "/v1/items/{item_id}/similar",
        "/v1/model",
        "/healthz",
        "/readyz",
        "/metrics",
    ):
        assert path in paths
    schemas = spec["components"]["schemas"]
    req = schemas["RecommendationRequest"]
    assert req["properties"]["k"]["maximum"] == 1000
    assert req["examples"]
    ok = paths["/v1/recommendations"]["post"]["responses"]["200"]["content"]["application/json"]["schema"]
    assert ok["$ref"].endswith("/RecommendationResponse")
    assert paths["/v1/recommendations"]["post"]["responses"]["422"]["content"]["application/json"]["schema"]["$ref"].endswith(
        "ErrorResponse"
    )


def _paths(route) -> list[str]:
    """The path templates of one of the app's routes (an included router: all of its routes')."""
    included = getattr(route, "original_router", None)  # FastAPI >= 0.165 keeps included routers whole
    if included is not None:
        return [p for r in included.routes for p in _paths(r)]
    return [route.path] if getattr(route, "path", None) else []


def test_api_routes_are_tried_before_the_documentation_routes(client) -> None:
    groups = [_paths(route) for route in client.app.router.routes]
    api = [i for i, group in enumerate(groups) for p in group if p.startswith("/v1/")]
    assert len(api) >= 6, groups  # every v1 route is found
    paths = [group[0] if len(group) == 1 else None for group in groups]
    docs = [i for i, p in enumerate(paths) if p in ("/openapi.json", "/docs", "/redoc")]
    assert api and docs and max(api) < min(docs)
    assert client.get("/openapi.json").status_code == 200 and client.get("/docs").status_code == 200
