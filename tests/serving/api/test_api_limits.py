"""Every limit and error path: 422 shapes, 413, 401, 404, CORS, docs switch,
overload 503, deadline 504, internal 500, and 503 while no model is loaded."""

import asyncio
import json
import threading
import time
from pathlib import Path
from typing import cast

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from serving.api.deps import Retrieval, get_retrieval
from serving.app import create_app
from serving.retrieval.retriever import Retriever
from serving.settings import ServiceSettings


def assert_error(r: httpx.Response, status: int, code: str) -> dict:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/json")
    body = r.json()
    assert set(body) == {"error"}
    assert body["error"]["code"] == code
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    assert "Traceback" not in r.text and 'File "' not in r.text
    return body["error"]


def metric(client, name: str, **labels: str) -> float:
    for fam in text_string_to_metric_families(client.get("/metrics").text):
        for s in fam.samples:
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                return s.value
    return 0.0


@pytest.mark.parametrize(
    "payload",
    [
        {"k": 0},
        {"k": 1001},
        {"k": "ten"},
        {"k": 2.5},
        {"user_id": ""},
        {"user_id": "u" * 257},
        {"user_id": "bad\x00id"},
        {"user_id": "tab\tid"},
        {"exclude_item_ids": ["i000001"] * 1001},
        {"exclude_item_ids": ["x" * 300]},
        {"filters": {"category": ["books"] * 1001}},
        {"filters": {"category": []}},
        {"filters": {"price": {"min": 5, "max": 1}}},
        {"filters": {"price": {}}},
        {"filters": {"price": {"min": 1, "avg": 3}}},
        {"features": {f"f{i}": 1.0 for i in range(65)}},
        {"surprise": True},
        {"exclude_seen": "maybe"},
        {"exclude_seen": 0},
        {"exclude_seen": "true"},
        {"k": "5"},
        [],
    ],
)
def test_invalid_requests_get_422_in_the_error_shape(client, payload) -> None:
    error = assert_error(client.post("/v1/recommendations", json=payload), 422, "validation_error")
    assert error["details"] and all({"loc", "msg"} <= set(d) for d in error["details"])


def test_model_dependent_checks_are_422_too(client) -> None:
    assert_error(client.post("/v1/recommendations", json={"features": {"shoe_size": 44}}), 422, "invalid_features")
    assert_error(client.post("/v1/recommendations", json={"features": {"age": "old"}}), 422, "invalid_features")
    assert_error(client.post("/v1/recommendations", json={"filters": {"colour": ["red"]}}), 422, "invalid_filter")
    assert_error(client.post("/v1/recommendations", json={"filters": {"brand": {"min": 1}}}), 422, "invalid_filter")
    batch = {"requests": [{"k": 1}, {"filters": {"colour": ["red"]}}]}
    error = assert_error(client.post("/v1/recommendations/batch", json=batch), 422, "invalid_filter")
    assert error["message"].startswith("requests[1]")


def test_malformed_json_and_bounds_on_other_routes(client) -> None:
    r = client.post("/v1/recommendations", content=b'{"k": 3', headers={"content-type": "application/json"})
    assert_error(r, 422, "validation_error")
    assert_error(client.post("/v1/recommendations/batch", json={"requests": []}), 422, "validation_error")
    assert_error(client.post("/v1/recommendations/batch", json={"requests": [{"k": 1}] * 65}), 422, "validation_error")
    assert_error(client.get("/v1/users/u000001/recommendations", params={"k": 0}), 422, "validation_error")
    assert_error(client.get("/v1/items/i000001/similar", params={"k": 1001}), 422, "validation_error")
    assert_error(client.get("/v1/items/" + "x" * 257 + "/similar"), 422, "validation_error")
    assert_error(client.get("/v1/items/nope/similar"), 404, "unknown_item")
    assert_error(client.get("/v1/users/nope/recommendations"), 404, "unknown_user")
    assert_error(client.get("/v1/nothing-here"), 404, "not_found")
    assert_error(client.get("/v1/recommendations"), 405, "method_not_allowed")


def test_body_over_the_limit_is_413(client) -> None:
    big = {"exclude_item_ids": ["i000001"] * 900, "user_id": "u" * 200, "features": {"title": "x" * 2000}}
    raw = json.dumps({"requests": [big] * 10}).encode()
    assert len(raw) > 64 * 1024
    r = client.post("/v1/recommendations/batch", content=raw, headers={"content-type": "application/json"})
    assert_error(r, 413, "payload_too_large")
    assert metric(client, "recsys_requests_rejected_total", reason="payload_too_large") >= 1


def test_chunked_body_without_content_length_is_counted() -> None:
    """httpx streams an async generator as chunks with no Content-Length; the guard counts what arrives."""
    app = create_app(ServiceSettings(model_root=Path("/nonexistent"), max_body_bytes=2048))

    async def chunks(n: int):
        for _ in range(n):
            yield b" " * 512

    async def go() -> tuple[httpx.Response, httpx.Response]:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
            big = await c.post("/v1/recommendations", content=chunks(8), headers={"content-type": "application/json"})
            small = await c.post("/v1/recommendations", content=chunks(2), headers={"content-type": "application/json"})
            return big, small

    big, small = asyncio.run(go())
    assert "content-length" not in {k.lower() for k in big.request.headers}
    assert_error(big, 413, "payload_too_large")
    assert small.status_code == 422  # accepted by the guard; blank JSON is then invalid


def test_api_key(trained, make_client) -> None:
    root, version = trained
    with make_client(root, api_key="s3cret-key") as c:
        assert_error(c.post("/v1/recommendations", json={"k": 1}), 401, "unauthorized")
        assert_error(c.post("/v1/recommendations", json={"k": 1}, headers={"X-API-Key": "wrong"}), 401, "unauthorized")
        assert_error(c.get("/v1/model", headers={"X-API-Key": "s3cret-key "}), 401, "unauthorized")
        assert_error(c.get("/openapi.json"), 401, "unauthorized")
        ok = c.post("/v1/recommendations", json={"k": 1}, headers={"X-API-Key": "s3cret-key"})
        assert ok.status_code == 200 and ok.json()["model_version"] == version
        for path in ("/healthz", "/readyz", "/metrics"):
            assert c.get(path).status_code == 200
        assert metric(c, "recsys_requests_rejected_total", reason="unauthorized") == 4


def test_cors_only_for_configured_origins(trained, make_client, client) -> None:
    root, _ = trained
    with make_client(root, cors_origins="https://shop.example", wait_ready=False) as c:
        pre = {
            "Origin": "https://shop.example",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type,x-api-key",
        }
        ok = c.options("/v1/recommendations", headers=pre)
        assert ok.status_code == 200 and ok.headers["access-control-allow-origin"] == "https://shop.example"
        bad = c.options("/v1/recommendations", headers={**pre, "Origin": "https://evil.example"})
        assert bad.status_code == 400 and "access-control-allow-origin" not in bad.headers
        simple = c.get("/healthz", headers={"Origin": "https://shop.example"})
        assert simple.headers["access-control-allow-origin"] == "https://shop.example"
        assert "x-model-version" in simple.headers["access-control-expose-headers"].lower()
        other = c.get("/healthz", headers={"Origin": "https://evil.example"})
        assert "access-control-allow-origin" not in other.headers
    # the shared client has no origins configured: no CORS headers at all
    assert "access-control-allow-origin" not in client.get("/healthz", headers={"Origin": "https://shop.example"}).headers


def test_docs_can_be_switched_off(trained, make_client, client) -> None:
    root, _ = trained
    for path in ("/docs", "/redoc", "/openapi.json"):
        assert client.get(path).status_code == 200
    with make_client(root, docs_enabled=False, wait_ready=False) as c:
        for path in ("/docs", "/redoc", "/openapi.json"):
            assert_error(c.get(path), 404, "not_found")


class HeldRetriever:
    """The app's retriever, with every ranking held ``delay_s`` first (the request stays in flight
    meanwhile); put in through ``app.dependency_overrides``."""

    def __init__(self, inner: Retriever, delay_s: float) -> None:
        self.inner = inner
        self.delay_s = delay_s

    def plan(self, model, query):
        return self.inner.plan(model, query)

    def plan_similar(self, model, item_row, k):
        return self.inner.plan_similar(model, item_row, k)

    async def rank(self, job):
        await asyncio.sleep(self.delay_s)
        return await self.inner.rank(job)


def hold_rankings(client, delay_s: float) -> None:
    held = HeldRetriever(client.app.state.retriever, delay_s)
    retriever = cast(Retriever, held)  # duck-typed: the plan/plan_similar/rank the routes call
    client.app.dependency_overrides[get_retrieval] = lambda: Retrieval(client.app.state.holder.model, retriever)


def test_overload_is_503_fast(trained, make_client) -> None:
    root, _ = trained
    with make_client(root, max_concurrency=1) as c:
        hold_rankings(c, 0.8)  # holds the one allowed request in flight
        slow: list[httpx.Response] = []
        t = threading.Thread(target=lambda: slow.append(c.post("/v1/recommendations", json={"user_id": "u000001"})))
        t.start()
        try:
            assert_wait = time.monotonic() + 5
            while metric(c, "recsys_requests_in_flight") < 1 and time.monotonic() < assert_wait:
                time.sleep(0.01)
            start = time.perf_counter()
            r = c.post("/v1/recommendations", json={"k": 1})
            elapsed = time.perf_counter() - start
        finally:
            t.join()
        assert_error(r, 503, "overloaded")
        assert r.headers["retry-after"] == "1"
        assert elapsed < 0.5
        assert slow[0].status_code == 200
        assert metric(c, "recsys_requests_rejected_total", reason="overloaded") == 1


def test_deadline_is_504(trained, make_client) -> None:
    root, _ = trained
    with make_client(root, request_timeout_s=0.05) as c:
        hold_rankings(c, 0.6)
        assert_error(c.post("/v1/recommendations", json={"user_id": "u000001"}), 504, "timeout")
        assert c.get("/healthz").status_code == 200
        assert metric(c, "recsys_requests_rejected_total", reason="timeout") == 1


class FailingRetriever:
    def plan(self, model, query):
        raise RuntimeError("secret internals /etc/passwd")

    async def rank(self, job):
        raise AssertionError("not reached: planning failed")


def test_unexpected_errors_are_500_without_details(client, caplog) -> None:
    failing = cast(Retriever, FailingRetriever())  # duck-typed: only plan and rank are reached
    client.app.dependency_overrides[get_retrieval] = lambda: Retrieval(client.app.state.holder.model, failing)
    try:
        with caplog.at_level("ERROR", logger="serving"):
            r = client.post("/v1/recommendations", json={"k": 1})
    finally:
        del client.app.dependency_overrides[get_retrieval]
    error = assert_error(r, 500, "internal_error")
    assert "secret" not in r.text and "RuntimeError" not in r.text
    assert error["message"] == "internal server error"
    assert any("secret internals" in (rec.exc_text or str(rec.exc_info)) for rec in caplog.records)


def test_no_model_means_alive_but_not_ready(tmp_path, make_client) -> None:
    with make_client(tmp_path, wait_ready=False) as c:
        time.sleep(0.3)
        assert c.get("/healthz").status_code == 200
        ready = c.get("/readyz")
        assert ready.status_code == 503
        body = ready.json()
        assert body["status"] == "not_ready" and body["reason"] == "model_not_loaded"
        assert "LATEST" in body["detail"]
        assert "x-model-version" not in ready.headers
        for r in (
            c.post("/v1/recommendations", json={"k": 1}),
            c.get("/v1/model"),
            c.get("/v1/items/i000001/similar"),
            c.get("/v1/users/u000001/recommendations"),
            c.post("/v1/recommendations/batch", json={"requests": [{"k": 1}]}),
        ):
            assert_error(r, 503, "model_not_loaded")
