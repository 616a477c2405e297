"""recent_item_ids on the session's tiny storefront model (its query tower reads
``recent_item_ids``, the last 50, attention pooling): what the query becomes for
known, unknown and absent users, ignored ids, exclusion, limits, batch = single,
and the fast path left alone."""

from types import SimpleNamespace

import numpy as np
import pytest

from serving.retrieval.plan import plan_recommendation
from serving.retrieval.recent import resolve_recent
from serving.retrieval.strategy import Strategy
from serving.version.loader import load_version
from tests.serving.conftest import edit_manifest
from tests.serving.retrieval.test_retrieval_execute import answered

HISTORY = "recent_item_ids"


def _ids(body: dict) -> list[str]:
    return [i["item_id"] for i in body["items"]]


def _stored(truth, uid: str) -> list[str]:
    row = int(np.flatnonzero(truth.users["user_id"].to_numpy() == uid)[0])
    text = truth.users[HISTORY].iloc[row]
    return [t for t in text.split("|") if t]


def _scores_match(truth, body: dict, query: np.ndarray) -> None:
    for item in body["items"]:
        expected = float(truth.emb[truth.item_row(item["item_id"])] @ query)
        assert item["score"] == pytest.approx(expected, abs=1e-4)


def _top(truth, query: np.ndarray, k: int, exclude: set[int]) -> list[str]:
    scores = truth.emb @ query
    order = [r for r in np.argsort(-scores, kind="stable") if r not in exclude]
    return truth.items["item_id"].to_numpy()[order[:k]].tolist()


def _given(truth, n: int, start: int = 0) -> list[str]:
    return truth.items["item_id"].iloc[start : start + n].tolist()


def test_known_user_recent_items_go_after_the_stored_history(client, truth) -> None:
    uid = "u000005"
    stored = _stored(truth, uid)
    assert stored, "the fixture's user should have a training history"
    given = _given(truth, 3, start=100)
    body = client.post("/v1/recommendations", json={"user_id": uid, "k": 10, "recent_item_ids": given}).json()
    assert body["strategy"] == "personal" and body["ignored_item_ids"] == []
    query = truth.query_vector(uid, {HISTORY: "|".join((stored + given)[-50:])})
    _scores_match(truth, body, query)
    exclude = truth.seen[uid] | {truth.item_row(i) for i in given}
    assert _ids(body) == _top(truth, query, 10, exclude)  # the given items are seen: left out
    plain = client.post("/v1/recommendations", json={"user_id": uid, "k": 10}).json()
    assert "ignored_item_ids" not in plain
    assert [i["score"] for i in plain["items"]] != [i["score"] for i in body["items"]]  # the visit moved the query


def test_the_last_fifty_are_kept_as_training_does(client, truth) -> None:
    uid = "u000011"
    given = _given(truth, 50, start=200)  # as many as the tower keeps: the stored history drops out entirely
    body = client.post(
        "/v1/recommendations", json={"user_id": uid, "k": 5, "recent_item_ids": given, "exclude_seen": False}
    ).json()
    _scores_match(truth, body, truth.query_vector(uid, {HISTORY: "|".join(given)}))
    # and one stored item is still seen when 49 are given
    stored = _stored(truth, uid)
    body = client.post(
        "/v1/recommendations", json={"user_id": uid, "k": 5, "recent_item_ids": given[1:], "exclude_seen": False}
    ).json()
    _scores_match(truth, body, truth.query_vector(uid, {HISTORY: "|".join([stored[-1], *given[1:]])}))


@pytest.mark.parametrize("user_id", [None, "stranger-42"])
def test_without_a_known_user_the_visit_alone_is_the_query(client, truth, user_id) -> None:
    given = _given(truth, 4, start=40)
    request = {"k": 8, "recent_item_ids": given, **({"user_id": user_id} if user_id else {})}
    body = client.post("/v1/recommendations", json=request).json()
    assert body["strategy"] == "session" and body["user_id"] == user_id and body["ignored_item_ids"] == []
    query = truth.query_vector(user_id, {HISTORY: "|".join(given)})
    _scores_match(truth, body, query)
    assert _ids(body) == _top(truth, query, 8, {truth.item_row(i) for i in given})
    # exclude_seen false: the given items may come back, and the best of them does when they top the ranking
    kept = client.post("/v1/recommendations", json={**request, "exclude_seen": False}).json()
    assert _ids(kept) == _top(truth, query, 8, set())


def test_unknown_ids_are_ignored_and_reported_in_order(client, truth) -> None:
    given = _given(truth, 2, start=10)
    mixed = ["i-retired-1", given[0], "i-retired-2", given[1], "with|separator"]
    body = client.post("/v1/recommendations", json={"k": 5, "recent_item_ids": mixed}).json()
    assert body["ignored_item_ids"] == ["i-retired-1", "i-retired-2", "with|separator"]
    clean = client.post("/v1/recommendations", json={"k": 5, "recent_item_ids": given}).json()
    assert body["strategy"] == clean["strategy"] == "session"
    assert body["items"] == clean["items"]
    # nothing usable: answered as if no recent items were given, the ids still reported
    none = client.post("/v1/recommendations", json={"k": 5, "recent_item_ids": ["i-gone"]}).json()
    assert none["strategy"] == "popular" and none["ignored_item_ids"] == ["i-gone"]
    assert none["items"] == client.post("/v1/recommendations", json={"k": 5}).json()["items"]
    known = client.post("/v1/recommendations", json={"user_id": "u000003", "k": 5, "recent_item_ids": ["i-gone"]}).json()
    assert known["strategy"] == "personal" and known["ignored_item_ids"] == ["i-gone"]
    assert known["items"] == client.post("/v1/recommendations", json={"user_id": "u000003", "k": 5}).json()["items"]


def test_features_and_recent_items_together(client, truth) -> None:
    given = _given(truth, 3, start=60)
    features = {"country": "FR", "age": 33.0}
    body = client.post("/v1/recommendations", json={"k": 6, "features": features, "recent_item_ids": given}).json()
    assert body["strategy"] == "session"
    _scores_match(truth, body, truth.query_vector(None, {**features, HISTORY: "|".join(given)}))
    twice = client.post("/v1/recommendations", json={"k": 6, "features": {HISTORY: given[0]}, "recent_item_ids": given})
    assert twice.status_code == 422 and twice.json()["error"]["code"] == "invalid_features"
    assert "recent_item_ids" in twice.json()["error"]["message"]


def test_limits_are_enforced(trained, make_client, client, truth) -> None:
    ids = truth.items["item_id"].tolist()
    ok = client.post("/v1/recommendations", json={"k": 3, "recent_item_ids": ids[:50]})
    assert ok.status_code == 200
    over = client.post("/v1/recommendations", json={"k": 3, "recent_item_ids": ids[:51]})
    assert over.status_code == 422
    error = over.json()["error"]
    assert "recent_item_ids" in error["message"] and "50" in error["message"]
    for bad in ([""], ["a\x00b"], ["x" * 257], "i000001", [1, 2]):
        r = client.post("/v1/recommendations", json={"k": 3, "recent_item_ids": bad})
        assert r.status_code == 422, bad
    batch = client.post("/v1/recommendations/batch", json={"requests": [{"k": 1}, {"k": 1, "recent_item_ids": ids[:51]}]})
    assert batch.status_code == 422 and "requests" in batch.json()["error"]["message"]
    root, _ = trained
    with make_client(root, poll_interval_s=30, max_recent_items=3) as small:
        assert small.post("/v1/recommendations", json={"k": 3, "recent_item_ids": ids[:3]}).status_code == 200
        r = small.post("/v1/recommendations", json={"k": 3, "recent_item_ids": ids[:4]})
        assert r.status_code == 422 and "3" in r.json()["error"]["message"]
        schema = small.get("/openapi.json").json()["components"]["schemas"]["RecommendationRequest"]
        assert schema["properties"]["recent_item_ids"]["maxItems"] == 3


def test_batch_and_single_answers_match(client, truth) -> None:
    given = _given(truth, 5, start=120)
    requests = [
        {"user_id": "u000002", "k": 4, "recent_item_ids": given},
        {"k": 5, "recent_item_ids": given[:2] + ["i-nope"]},
        {"user_id": "stranger", "k": 3, "recent_item_ids": given[3:]},
        {"user_id": "u000002", "k": 4},
        {"k": 2},
    ]
    batch = client.post("/v1/recommendations/batch", json={"requests": requests}).json()
    assert [r["strategy"] for r in batch["results"]] == ["personal", "session", "session", "personal", "popular"]
    for request, result in zip(requests, batch["results"], strict=True):
        single = client.post("/v1/recommendations", json=request).json()
        # the same items in the same order; scores equal up to float32 rounding (the tower ran on a batch of another size)
        assert _ids(result) == _ids(single)
        assert {k: v for k, v in result.items() if k != "items"} == {k: v for k, v in single.items() if k != "items"}
        np.testing.assert_allclose(
            [i["score"] for i in result["items"]], [i["score"] for i in single["items"]], rtol=1e-5, atol=1e-5
        )


def test_openapi_has_an_example_for_each_case(client) -> None:
    doc = client.get("/openapi.json").json()["components"]["schemas"]
    examples = doc["RecommendationRequest"]["examples"]
    with_recent = [e for e in examples if "recent_item_ids" in e]
    assert any("user_id" in e and e["user_id"].startswith("u0") for e in with_recent)  # known user
    assert any("user_id" not in e for e in with_recent)  # no user: session
    assert any(e.get("user_id", "").startswith("stranger") for e in with_recent)  # unknown user, an unknown id
    answer = doc["RecommendationResponse"]
    assert "ignored_item_ids" in answer["properties"]
    assert any(e.get("strategy") == "session" and e.get("ignored_item_ids") for e in answer["examples"])
    assert "session" in answer["properties"]["strategy"]["enum"]


def _req(**kw):
    base = dict(user_id=None, features=None, k=5, exclude_seen=True, exclude_item_ids=[], filters=None, recent_item_ids=[])
    return SimpleNamespace(**{**base, **kw})


def test_requests_without_recent_items_keep_the_precomputed_fast_path(base_dir, truth) -> None:
    model = load_version(base_dir.parent, base_dir.name)
    assert model.user_vectors is not None
    plain = plan_recommendation(model, _req(user_id="u000004"))
    assert plain.plan is not None and plain.ignored is None  # planned on the event loop from the precomputed vector
    visit = plan_recommendation(model, _req(user_id="u000004", recent_item_ids=_given(truth, 2)))
    assert visit.plan is None and visit.overrides and visit.ignored == []  # the query tower runs for this one
    session = plan_recommendation(model, _req(recent_item_ids=_given(truth, 2)))
    assert session.strategy is Strategy.SESSION
    a, b = answered([visit, session])
    assert len(a) == len(b) == 5


def test_a_version_without_a_history_feature_refuses_recent_items(versions, make_client, truth) -> None:
    def no_history(vdir):
        import json

        manifest = json.loads((vdir / "manifest.json").read_text())
        inputs = [dict(q, kind="categorical") if q["name"] == HISTORY else q for q in manifest["query_inputs"]]
        edit_manifest(vdir, query_inputs=inputs)

    name = versions.clone(corrupt=no_history)
    versions.set_latest(name)
    model = load_version(versions.root, name)
    assert model.history is None
    with make_client(versions.root) as c:
        r = c.post("/v1/recommendations", json={"k": 3, "recent_item_ids": _given(truth, 2)})
        assert r.status_code == 422 and r.json()["error"]["code"] == "history_not_supported"
        assert "reads no history" in r.json()["error"]["message"]
        assert c.post("/v1/recommendations", json={"k": 3, "recent_item_ids": []}).status_code == 200  # none given
    with pytest.raises(Exception, match="reads no history"):
        resolve_recent(model, None, ["i000001"])
