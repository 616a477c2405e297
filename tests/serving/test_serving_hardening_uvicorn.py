"""Issue 17 findings 2, 3 and 8 against a real ``recsys serve`` process: numbers that do
not fit are 422 naming the field on both recommendation routes, and the per-call
budget (``RECSYS_MAX_ITEMS_PER_CALL``, read from the environment) is a 422 naming
the limit."""

import pytest

HUGE_INT = "1" + "0" * 309  # valid JSON, past float64's range


@pytest.fixture(scope="module")
def server(tmp_path_factory, make_versions, start_server):
    versions = make_versions(tmp_path_factory.mktemp("hardening_root"))
    versions.set_latest(versions.clone())
    process = start_server(versions.root, workers=1, RECSYS_MAX_ITEMS_PER_CALL="100")
    process.wait_ready()
    return process


def _error(r, status: int, code: str) -> str:
    assert r.status_code == status, r.text
    body = r.json()
    assert body["error"]["code"] == code, body
    return body["error"]["message"]


def _post_raw(server, path: str, raw: str):
    return server.post(path, content=raw.encode(), headers={"content-type": "application/json"})


def test_a_huge_integer_filter_is_422_on_both_routes(server) -> None:
    one = '{"k": 5, "filters": {"price": [' + str(HUGE_INT) + "]}}"
    assert "filters.price" in _error(_post_raw(server, "/v1/recommendations", one), 422, "validation_error")
    batch = '{"requests": [{"k": 1}, ' + one + "]}"
    assert "requests.1.filters.price" in _error(_post_raw(server, "/v1/recommendations/batch", batch), 422, "validation_error")
    ranged = '{"k": 5, "filters": {"price": {"min": 1e400}}}'
    assert "filters.price" in _error(_post_raw(server, "/v1/recommendations", ranged), 422, "validation_error")
    assert "Traceback" not in server.log()


def test_a_huge_feature_is_422_not_an_empty_answer(server) -> None:
    message = _error(server.post("/v1/recommendations", json={"features": {"age": 1e300}, "k": 3}), 422, "validation_error")
    assert "features.age" in message
    batch = {"requests": [{"k": 2}, {"features": {"age": 1e300}, "k": 3}]}
    assert "requests.1.features.age" in _error(server.post("/v1/recommendations/batch", json=batch), 422, "validation_error")
    fits = server.post("/v1/recommendations", json={"features": {"age": 3e38}, "k": 3})
    assert fits.status_code == 200 and len(fits.json()["items"]) == 3


def test_the_items_per_call_budget_is_422_naming_the_limit(server) -> None:
    over = {"requests": [{"k": 60}, {"k": 41}]}
    message = _error(server.post("/v1/recommendations/batch", json=over), 422, "validation_error")
    assert "101" in message and "at most 100" in message and "max_items_per_call" in message
    assert _error(server.post("/v1/recommendations", json={"k": 101}), 422, "validation_error")
    ok = server.post("/v1/recommendations/batch", json={"requests": [{"k": 60}, {"k": 40}]})
    assert ok.status_code == 200 and [len(r["items"]) for r in ok.json()["results"]] == [60, 40]
