"""The OpenAPI document is the API's promise: every operation (path, method, operation id,
tag, parameters, request body, responses and their schemas), the schema components, the
bounds taken from the settings, and the API key as a security scheme when one is configured.

The table below is what clients were given before the routes moved into routers
(``serving/api/routes/``); the document is built by ``create_app`` as the service builds it.
"""

from pathlib import Path
from typing import Any

import pytest

from serving.app import create_app
from serving.retrieval.strategy import Strategy
from serving.settings import ServiceSettings

ERRORS = {code: ("application/json", "ErrorResponse") for code in ("401", "413", "422", "503", "504")}
NOT_FOUND = {"404": ("application/json", "ErrorResponse")}

# (method, path) -> (operation id, tags, [(parameter, in, required)], request body schema, {status: (media type, schema)})
OPERATIONS: dict[tuple[str, str], tuple[str, list[str], list[tuple[str, str, bool]], str | None, dict]] = {
    ("GET", "/healthz"): ("healthz_healthz_get", ["probes"], [], None, {"200": ("application/json", "HealthResponse")}),
    ("GET", "/metrics"): ("prometheus_metrics_get", ["probes"], [], None, {"200": (None, None)}),
    ("GET", "/readyz"): (
        "readyz_readyz_get",
        ["probes"],
        [],
        None,
        {"200": ("application/json", "ReadyResponse"), "503": ("application/json", "ReadyResponse")},
    ),
    ("POST", "/v1/recommendations"): (
        "recommend_v1_recommendations_post",
        ["recommendations"],
        [],
        "RecommendationRequest",
        {"200": ("application/json", "RecommendationResponse"), **ERRORS},
    ),
    ("POST", "/v1/recommendations/batch"): (
        "recommend_batch_v1_recommendations_batch_post",
        ["recommendations"],
        [],
        "BatchRequest",
        {"200": ("application/json", "BatchResponse"), **ERRORS},
    ),
    ("GET", "/v1/users/{user_id}/recommendations"): (
        "recommend_for_user_v1_users__user_id__recommendations_get",
        ["recommendations"],
        [("user_id", "path", True), ("k", "query", False), ("exclude_seen", "query", False)],
        None,
        {"200": ("application/json", "RecommendationResponse"), **ERRORS, **NOT_FOUND},
    ),
    ("GET", "/v1/items/{item_id}/similar"): (
        "similar_items_v1_items__item_id__similar_get",
        ["items"],
        [("item_id", "path", True), ("k", "query", False)],
        None,
        {"200": ("application/json", "SimilarItemsResponse"), **ERRORS, **NOT_FOUND},
    ),
    ("GET", "/v1/model"): (
        "model_info_v1_model_get",
        ["model"],
        [],
        None,
        {"200": ("application/json", "ModelResponse"), **ERRORS},
    ),
    ("GET", "/v1/model/report"): (
        "model_report_v1_model_report_get",
        ["model"],
        [],
        None,
        {"200": ("text/html", None), **{code: ("text/html", "ErrorResponse") for code in ERRORS}},
    ),
    ("GET", "/v1/model/report.png"): (
        "model_report_png_v1_model_report_png_get",
        ["model"],
        [],
        None,
        {"200": ("image/png", None), **ERRORS, **NOT_FOUND},
    ),
}
DEMO_OPERATIONS = {
    ("GET", "/v1/users"): (
        "example_users_v1_users_get",
        ["users"],
        [("limit", "query", False)],
        None,
        {"200": ("application/json", "ExampleUsersResponse"), **ERRORS},
    ),
    ("GET", "/v1/users/{user_id}/history"): (
        "user_history_v1_users__user_id__history_get",
        ["users"],
        [("user_id", "path", True), ("limit", "query", False)],
        None,
        {"200": ("application/json", "HistoryResponse"), **ERRORS, **NOT_FOUND},
    ),
}
SCHEMAS = {
    "BatchRequest",
    "BatchResponse",
    "ErrorDetail",
    "ErrorResponse",
    "HealthResponse",
    "IndexInfo",
    "ModelResponse",
    "RangeSpec",
    "ReadyResponse",
    "RecommendationRequest",
    "RecommendationResponse",
    "RecommendedItem",
    "SimilarItemsResponse",
}
DEMO_SCHEMAS = {"ExampleUsersResponse", "HistoryItem", "HistoryResponse"}
PROBES = {"/healthz", "/readyz", "/metrics"}


def document(**settings: Any) -> dict:
    return create_app(ServiceSettings(model_root=Path("/nonexistent"), **settings)).openapi()


def operations(doc: dict) -> dict[tuple[str, str], tuple]:
    """The document's operations in the shape of :data:`OPERATIONS`."""
    out = {}
    for path, methods in doc["paths"].items():
        for method, op in methods.items():
            params = [(p["name"], p["in"], p.get("required", False)) for p in op.get("parameters", [])]
            body = op.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema", {})
            responses = {}
            for status, response in op["responses"].items():
                content = response.get("content", {})
                media = next(iter(content), None)
                ref = content[media].get("schema", {}).get("$ref") if media else None
                responses[status] = (media, ref.rsplit("/", 1)[-1] if ref else None)
            out[(method.upper(), path)] = (
                op["operationId"],
                op["tags"],
                params,
                body["$ref"].rsplit("/", 1)[-1] if "$ref" in body else None,
                responses,
            )
    return out


@pytest.mark.parametrize("demo", [False, True])
def test_every_operation_is_the_promised_one(demo: bool) -> None:
    doc = document(demo_enabled=demo)
    expected = {**OPERATIONS, **(DEMO_OPERATIONS if demo else {})}
    got = operations(doc)
    assert set(got) == set(expected)
    for key, promised in expected.items():
        assert got[key] == promised, key
    assert set(doc["components"]["schemas"]) == SCHEMAS | (DEMO_SCHEMAS if demo else set())
    assert "securitySchemes" not in doc["components"], "no key configured: no key documented"
    assert not any("security" in op for methods in doc["paths"].values() for op in methods.values())


def test_the_api_key_is_a_documented_security_scheme_on_every_route_but_the_probes() -> None:
    doc = document(demo_enabled=True, api_key="sek")
    assert doc["components"]["securitySchemes"] == {
        "APIKeyHeader": {
            "type": "apiKey",
            "in": "header",
            "name": "X-API-Key",
            "description": "required on every route but the probes when the service has a key",
        }
    }
    for path, methods in doc["paths"].items():
        for method, op in methods.items():
            if path in PROBES:
                assert "security" not in op, (method, path)
            else:
                assert op["security"] == [{"APIKeyHeader": []}], (method, path)
    # apart from the scheme, the document is the one without a key
    bare = document(demo_enabled=True)
    for methods in doc["paths"].values():
        for op in methods.values():
            op.pop("security", None)
    doc["components"].pop("securitySchemes")
    assert doc == bare
    assert "sek" not in str(doc)


def test_the_strategies_are_the_retrieval_paths_enum() -> None:
    schemas = document()["components"]["schemas"]
    assert schemas["RecommendationResponse"]["properties"]["strategy"] == {
        "enum": [s.value for s in Strategy],
        "title": "Strategy",
        "type": "string",
    }
    assert schemas["SimilarItemsResponse"]["properties"]["strategy"]["const"] == Strategy.SIMILAR.value
    assert "Strategy" not in schemas


def test_the_request_models_carry_the_settings_bounds() -> None:
    doc = document(max_k=300, max_items_per_call=200, max_batch=7, max_list_items=11, max_recent_items=5, default_k=4)
    schemas = doc["components"]["schemas"]
    request = schemas["RecommendationRequest"]
    assert set(request["properties"]) == {
        "user_id",
        "features",
        "k",
        "exclude_seen",
        "exclude_item_ids",
        "recent_item_ids",
        "filters",
    }
    assert request["additionalProperties"] is False
    k = request["properties"]["k"]
    assert (k["minimum"], k["maximum"], k["default"]) == (1, 200, 4)  # one request is a call: max_items_per_call
    assert request["properties"]["exclude_item_ids"]["maxItems"] == 11
    assert request["properties"]["recent_item_ids"]["maxItems"] == 5
    batch = schemas["BatchRequest"]["properties"]["requests"]
    assert (batch["minItems"], batch["maxItems"]) == (1, 7)
    assert batch["items"]["$ref"].endswith("/RecommendationRequest")
    for path in ("/v1/users/{user_id}/recommendations", "/v1/items/{item_id}/similar"):
        (param,) = [p for p in doc["paths"][path]["get"]["parameters"] if p["name"] == "k"]
        assert (param["schema"]["maximum"], param["schema"]["default"]) == (200, 4), path
    summary = doc["paths"]["/v1/recommendations/batch"]["post"]["summary"]
    assert summary == "Up to 7 recommendation requests in one call"


def test_two_apps_with_different_bounds_keep_their_own() -> None:
    """The request models are made per app: building a second app changes nothing in the first."""
    first = create_app(ServiceSettings(model_root=Path("/nonexistent"), max_k=50))
    create_app(ServiceSettings(model_root=Path("/nonexistent"), max_k=900))
    k = first.openapi()["components"]["schemas"]["RecommendationRequest"]["properties"]["k"]
    assert k["maximum"] == 50
