"""HTTP-level correctness on a catalog above the brute-force threshold.

Every other HTTP test serves the session's 300-item model, which is indexed
by brute force. Here a version of 40,000 items (twice the size below which
every version is brute force: there brute force costs several times the tree,
so the version gets the product's tree + AH index, checked in the manifest) is
trained and published by the real pipeline (``training.pipeline.run_pipeline``:
one epoch on generated storefront data, just enough to be cheap), and a real
``recsys serve`` answers over HTTP. The truth is
computed independently of the service: query vectors from the exported query
SavedModel on ``users.parquet``, scores against ``item_embeddings.npy``,
eligibility from ``items.parquet`` and ``seen.parquet``.

What is asserted, for hundreds of known users, new visitors and items:

* recall@10 of the answers (their first ten) against exact scoring >= 0.95 (the tree + AH
  candidates, re-scored exactly by the compiled kernel), with and without
  filters and exclusions;
* the rules, exactly: ``min(k, eligible)`` items, ranks 1..n, scores
  non-increasing and equal to the exact scores of the items returned, no seen
  or excluded item, every item passing every filter;
* a filter leaving few items (the service scores every eligible item exactly
  then) gives exactly the exact top-k.
"""

import concurrent.futures
import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest

NUM_ITEMS = 40_000
NUM_USERS = 1_000
INTERACTIONS = 30_000
KNOWN_USERS = 320
MIN_RECALL = 0.95
# the index is built to a higher target than the checks' threshold: what the service answers is
# compared with exact search over a few hundred queries, whose sampling noise is about 0.01, and the
# tuning sample holds no filtered queries (at 0.97 the filtered check read 0.945 in one run of four:
# the operating point is the cheapest one found by timing, so it moves between runs)
INDEX_TARGET = 0.98
SCORE_TOL = 1e-4


@dataclass
class Large:
    root: Path
    version: str
    manifest: dict
    emb: np.ndarray  # item embeddings, row = items.parquet row
    items: pd.DataFrame
    users: pd.DataFrame
    seen: dict[str, np.ndarray]  # user id -> seen item rows
    query_fn: Callable[..., Any]  # the exported query SavedModel's serving signature
    build_seconds: float
    _module: object = None  # the loaded SavedModel, kept alive while query_fn is used

    def item_rows(self, ids: list[str]) -> np.ndarray:
        index = pd.Index(self.items["item_id"])
        rows = index.get_indexer(ids)
        assert (rows >= 0).all(), "the service answered an item that is not in the catalog"
        return rows

    def query_vectors(self, rows: list[dict]) -> np.ndarray:
        """The exported query tower on raw feature rows (missing inputs take the manifest's defaults)."""
        import tensorflow as tf

        tensors = {}
        for qi in self.manifest["query_inputs"]:
            values = [row.get(qi["name"], qi["default"]) for row in rows]
            if qi["dtype"] == "float32":
                tensors[qi["name"]] = tf.constant(np.asarray(values, dtype=np.float32))
            else:
                sep = qi.get("separator") or "|"
                text = [sep.join(v) if isinstance(v, (list, np.ndarray)) else str(v) for v in values]
                tensors[qi["name"]] = tf.constant(text, dtype=tf.string)
        return self.query_fn(**tensors)["embedding"].numpy()

    def user_vectors(self, user_ids: list[str]) -> np.ndarray:
        table = self.users.set_index("user_id", drop=False)
        return self.query_vectors([table.loc[u].to_dict() for u in user_ids])


@pytest.fixture(scope="module")
def large(tmp_path_factory) -> Large:
    """A 40,000-item version trained and published by the real pipeline (tree + AH index)."""
    import tensorflow as tf

    from training.config import TrainConfig
    from training.data.synthetic import generate_storefront
    from training.index import BRUTE_FORCE_BELOW
    from training.pipeline import run_pipeline

    assert NUM_ITEMS >= 2 * BRUTE_FORCE_BELOW
    start = time.perf_counter()
    root = tmp_path_factory.mktemp("large_root")
    data = generate_storefront(items=NUM_ITEMS, users=NUM_USERS, interactions=INTERACTIONS, seed=5)
    config = TrainConfig(epochs=1, refit_on_full_train=False, max_eval_queries=500, index_target_recall=INDEX_TARGET)
    result = run_pipeline(data, root, config, publish_version=True, verbose=0)
    assert result.version is not None
    vdir = root / result.version
    manifest = json.loads((vdir / "manifest.json").read_text())
    seen = pd.read_parquet(vdir / "seen.parquet")
    module = tf.saved_model.load(str(vdir / "query_model"))
    large = Large(
        root=root,
        version=result.version,
        manifest=manifest,
        emb=np.load(vdir / "item_embeddings.npy"),
        items=pd.read_parquet(vdir / "items.parquet"),
        users=pd.read_parquet(vdir / "users.parquet"),
        seen={u: np.asarray(r, dtype=np.int64) for u, r in zip(seen["user_id"], seen["item_rows"], strict=True)},
        query_fn=module.signatures["serving_default"],
        build_seconds=0.0,
        _module=module,
    )
    large.build_seconds = time.perf_counter() - start
    print(f"\nlarge fixture ({NUM_ITEMS:,} items): trained and published in {large.build_seconds:.1f} s")
    return large


@pytest.fixture(scope="module")
def server(large: Large, start_server):
    s = start_server(large.root, RECSYS_POLL_INTERVAL_S="30", RECSYS_REQUEST_TIMEOUT_S="60")
    s.wait_ready(timeout=300)
    yield s
    s.stop()


# --------------------------------------------------------------------------- the truth


def passes(large: Large, filters: dict | None) -> np.ndarray:
    """Items passing every filter, from items.parquet: a list of values (any overlap for
    list columns), or an inclusive numeric range over finite values."""
    mask = np.ones(len(large.items), dtype=bool)
    for column, spec in (filters or {}).items():
        values = large.items[column]
        if isinstance(spec, dict):
            v = values.to_numpy(dtype=np.float64)
            m = np.isfinite(v)
            if spec.get("min") is not None:
                m &= v >= spec["min"]
            if spec.get("max") is not None:
                m &= v <= spec["max"]
        elif isinstance(values.iloc[0], (list, np.ndarray)):
            wanted = set(spec)
            m = np.fromiter((bool(wanted & set(v)) for v in values), dtype=bool, count=len(values))
        else:
            m = values.isin(spec).to_numpy()
        mask &= m
    return mask


def eligible_mask(large: Large, user_id: str | None, body: dict) -> np.ndarray:
    mask = passes(large, body.get("filters"))
    if user_id in large.seen and body.get("exclude_seen", True):
        mask[large.seen[user_id]] = False
    known = pd.Index(large.items["item_id"]).get_indexer(body.get("exclude_item_ids", []))
    mask[known[known >= 0]] = False
    return mask


def exact_top(scores: np.ndarray, mask: np.ndarray, k: int) -> np.ndarray:
    rows = np.flatnonzero(mask)
    order = np.argsort(-scores[rows], kind="stable")[:k]
    return rows[order]


@dataclass
class Check:
    """Recall@10 (the first ten answered against the exact ten) over many answers, and
    recall@k (the whole answer against the exact k), which is printed, not a target."""

    recall_hits: int = 0
    recall_total: int = 0
    k_hits: int = 0
    k_total: int = 0
    answers: int = 0

    @property
    def recall(self) -> float:
        return self.recall_hits / max(1, self.recall_total)

    @property
    def recall_at_k(self) -> float:
        return self.k_hits / max(1, self.k_total)


def check_answer(
    large: Large, answer: dict, query: np.ndarray, mask: np.ndarray, k: int, check: Check, exact: bool = False
) -> None:
    """The rules, exactly, and recall@10 (and @k) against exact scoring over the eligible items."""
    ids = [item["item_id"] for item in answer["items"]]
    served_scores = np.asarray([item["score"] for item in answer["items"]], dtype=np.float64)
    scores = large.emb @ query
    n = min(k, int(mask.sum()))
    assert len(ids) == n, (len(ids), n)
    assert [item["rank"] for item in answer["items"]] == list(range(1, n + 1))
    assert len(set(ids)) == n, "an item came back twice"
    rows = large.item_rows(ids)
    assert mask[rows].all(), [i for i, r in zip(ids, rows, strict=True) if not mask[r]]  # filters, seen, exclusions
    assert np.all(np.diff(served_scores) <= 0), served_scores
    np.testing.assert_allclose(served_scores, scores[rows], atol=SCORE_TOL, rtol=1e-5)  # re-scored exactly
    top = exact_top(scores, mask, n)
    if exact:  # exactly the exact top-k (up to ties: the same scores, position by position)
        np.testing.assert_allclose(scores[rows], scores[top], atol=SCORE_TOL, rtol=1e-5)
    ten = min(10, n)
    check.recall_hits += len(set(rows[:ten].tolist()) & set(top[:ten].tolist()))
    check.recall_total += ten
    check.k_hits += len(set(rows.tolist()) & set(top.tolist()))
    check.k_total += n
    check.answers += 1


def post_batch(server, requests: list[dict]) -> list[dict]:
    out = []
    for start in range(0, len(requests), 50):
        chunk = requests[start : start + 50]
        r = httpx.post(server.url + "/v1/recommendations/batch", json={"requests": chunk}, timeout=120)
        assert r.status_code == 200, r.text[:500]
        out += r.json()["results"]
    return out


def post_each(server, requests: list[dict], threads: int = 8) -> list[dict]:
    """One request each, several at once (they meet in the server's micro-batches)."""

    def one(body: dict) -> dict:
        r = httpx.post(server.url + "/v1/recommendations", json=body, timeout=120)
        assert r.status_code == 200, (body, r.text[:500])
        return r.json()

    with concurrent.futures.ThreadPoolExecutor(threads) as pool:
        return list(pool.map(one, requests))


def known_users(large: Large, n: int) -> list[str]:
    with_history = [u for u in large.users["user_id"] if len(large.seen.get(u, ())) > 0]
    assert len(with_history) >= n
    return with_history[:n]


# --------------------------------------------------------------------------- tests


def test_the_version_is_indexed_by_tree_ah(large: Large, server) -> None:
    assert large.manifest["num_items"] == len(large.items) == len(large.emb) >= NUM_ITEMS
    assert large.manifest["index"]["kind"] == "tree_ah", large.manifest["index"]
    model = server.get("/v1/model").json()
    assert model["model_version"] == large.version and model["num_items"] == NUM_ITEMS
    assert model["index"]["kind"] == "tree_ah"
    index = large.manifest["index"]
    print(
        f"\nlarge fixture: {large.build_seconds:.1f} s; index {index['params']}, trainer's "
        f"recall@10 vs exact: users {index['recall_at_10_vs_exact']}, similar items {index['similar_recall_at_10_vs_exact']}"
    )
    # tuned to the fixture's target on both kinds of query the service answers
    assert index["tuning"]["target_recall_at_10"] == INDEX_TARGET and index["meets_target"] is True
    assert index["recall_at_10_vs_exact"] >= INDEX_TARGET and index["similar_recall_at_10_vs_exact"] >= INDEX_TARGET
    assert index["tuning"]["queries"]["similar"]["checking"] > 0


def test_known_users_match_exact_top_k(large: Large, server) -> None:
    users = known_users(large, KNOWN_USERS)
    vectors = large.user_vectors(users)
    batch = post_batch(server, [{"user_id": u, "k": 10} for u in users])
    single = post_each(server, [{"user_id": u, "k": 10} for u in users[:120]])
    check = Check()
    for answers in (batch, single):
        for uid, q, answer in zip(users, vectors, answers, strict=False):
            assert answer["strategy"] == "personal" and answer["user_id"] == uid
            check_answer(large, answer, q, eligible_mask(large, uid, {}), 10, check)
    assert check.answers == KNOWN_USERS + 120
    recorded = large.manifest["index"]["recall_at_10_vs_exact"]  # the trainer's, on its checking half of known users
    print(f"\nknown users: recall@10 vs exact {check.recall:.4f} over {check.answers} answers (manifest: {recorded})")
    assert check.recall >= MIN_RECALL
    assert abs(check.recall - recorded) <= 0.03, (check.recall, recorded)  # the service searches as the trainer measured

    # k = 100 through the user route: the rules exactly, and recall@10 of its first ten
    check = Check()
    for uid, q in zip(users[:200], vectors[:200], strict=True):
        r = server.get(f"/v1/users/{uid}/recommendations", params={"k": 100})
        assert r.status_code == 200
        check_answer(large, r.json(), q, eligible_mask(large, uid, {}), 100, check)
    print(f"k=100: recall@10 {check.recall:.4f}, recall@100 {check.recall_at_k:.4f}")
    assert check.recall >= MIN_RECALL


def test_seen_items_come_back_only_when_asked(large: Large, server) -> None:
    users = known_users(large, 80)
    vectors = large.user_vectors(users)
    answers = post_batch(server, [{"user_id": u, "k": 20, "exclude_seen": False} for u in users])
    check = Check()
    came_back = expected = 0
    for uid, q, answer in zip(users, vectors, answers, strict=True):
        mask = eligible_mask(large, uid, {"exclude_seen": False})
        check_answer(large, answer, q, mask, 20, check)
        seen = set(large.seen[uid].tolist())
        came_back += len(set(large.item_rows([i["item_id"] for i in answer["items"]]).tolist()) & seen)
        expected += len(set(exact_top(large.emb @ q, mask, 20).tolist()) & seen)
    assert check.recall >= MIN_RECALL, check.recall
    assert expected > 0, "the exact top-20 of these users holds seen items"
    assert came_back >= 0.9 * expected, (came_back, expected)


def test_filters_and_exclusions(large: Large, server) -> None:
    filterable = server.get("/v1/model").json()["filterable"]
    assert filterable["category"] == "scalar" and filterable["tags"] == "list" and filterable["price"] == "numeric"
    categories = large.items["category"].value_counts().index.tolist()
    tags = pd.Series([t for ts in large.items["tags"] for t in ts]).value_counts().index.tolist()
    q25, q75 = np.quantile(large.items["price"], [0.25, 0.75]).round(2).tolist()
    choices = [
        {"category": [categories[0]]},
        {"category": [categories[-1], categories[-2]]},
        {"tags": [tags[0]]},
        {"tags": [tags[-1], tags[len(tags) // 2]]},
        {"price": {"min": q25, "max": q75}},
        {"price": {"max": q25}},
        {"category": [categories[1]], "price": {"min": q25}},
        {"category": [categories[0]], "tags": [tags[1], tags[2]]},
    ]
    users = known_users(large, KNOWN_USERS)
    vectors = large.user_vectors(users)
    scores_of = large.emb @ vectors.T
    bodies: list[dict[str, Any]] = []
    for i, uid in enumerate(users):
        body: dict[str, Any] = {"user_id": uid, "k": 10, "filters": choices[i % len(choices)]}
        if i % 3 == 0:  # leave out the exact top 5 of the filtered catalog, and an unknown id
            mask = eligible_mask(large, uid, body)
            best = exact_top(scores_of[:, i], mask, 5)
            body["exclude_item_ids"] = [*large.items["item_id"].iloc[best].tolist(), "no-such-item"]
        if i % 4 == 1:
            body["exclude_seen"] = False
        bodies.append(body)
    answers = post_batch(server, bodies)
    check = Check()
    for i, (body, answer) in enumerate(zip(bodies, answers, strict=True)):
        uid = body["user_id"]
        mask = eligible_mask(large, uid, body)
        check_answer(large, answer, vectors[i], mask, 10, check)
        got = set(i["item_id"] for i in answer["items"])
        assert not got & set(body.get("exclude_item_ids", [])), body
        for item in answer["items"]:  # the filters, read back from the answer's metadata too
            for column, spec in body["filters"].items():
                value = item[column]
                if isinstance(spec, dict):
                    assert spec.get("min", -math.inf) <= value <= spec.get("max", math.inf), (column, value)
                elif isinstance(value, list):
                    assert set(value) & set(spec), (column, value)
                else:
                    assert value in spec, (column, value)
    print(f"\nfilters and exclusions: recall@10 vs exact {check.recall:.4f} over {check.answers} answers")
    assert check.recall >= MIN_RECALL


def _narrow_filters(large: Large) -> list[dict]:
    """Filters each leaving between 12 and 30 items: a price window alone, and with a
    brand, and with a category and a tag (scalar, list and numeric columns)."""

    def window(base: dict, n: int = 20) -> dict:
        prices = np.sort(large.items["price"].to_numpy()[passes(large, base)])
        lo = len(prices) // 3
        return {**base, "price": {"min": float(prices[lo]), "max": float(prices[lo + n - 1])}}

    brand = large.items["brand"].value_counts().index[0]
    category = large.items["category"].value_counts().index[0]
    in_category = large.items[large.items["category"] == category]
    tag = pd.Series([t for ts in in_category["tags"] for t in ts]).value_counts().index[0]
    out = [window({}), window({"brand": [brand]}), window({"category": [category], "tags": [tag]})]
    for f in out:
        assert 12 <= passes(large, f).sum() <= 30, f
    return out


def test_a_filter_leaving_few_items_gives_exactly_the_exact_top_k(large: Large, server) -> None:
    filterable = server.get("/v1/model").json()["filterable"]
    narrow = _narrow_filters(large)
    assert all(column in filterable for f in narrow for column in f)
    users = known_users(large, 60)
    vectors = large.user_vectors(users)
    bodies: list[dict[str, Any]] = [
        {"user_id": u, "k": k, "filters": narrow[i % len(narrow)]} for i, u in enumerate(users) for k in (5, 10, 50)
    ]
    answers = post_batch(server, bodies)
    check = Check()
    for body, answer in zip(bodies, answers, strict=True):
        i = users.index(body["user_id"])
        mask = eligible_mask(large, body["user_id"], body)
        check_answer(large, answer, vectors[i], mask, body["k"], check, exact=True)
    assert check.recall >= 0.999, check.recall
    # a new visitor described by features, the same narrow filters
    visitors = [
        {"age": 20.0 + i, "country": c, "segment": s}
        for i, (c, s) in enumerate([("DE", "premium"), ("FR", "student"), ("US", "budget"), ("GB", "family")])
    ]
    q = large.query_vectors(visitors)
    for v, vec in zip(visitors, q, strict=True):
        for f in narrow:
            body = {"features": v, "k": 10, "filters": f}
            answer = post_each(server, [body])[0]
            assert answer["strategy"] == "features"
            check_answer(large, answer, vec, eligible_mask(large, None, body), 10, Check(), exact=True)


def test_new_visitors_match_exact_top_k(large: Large, server) -> None:
    countries = sorted(set(large.users["country"]))
    segments = sorted(set(large.users["segment"]))
    visitors = [
        {"age": float(18 + (i * 7) % 60), "country": countries[i % len(countries)], "segment": segments[(i // 3) % len(segments)]}
        for i in range(60)
    ]
    vectors = large.query_vectors(visitors)
    answers = post_each(server, [{"user_id": f"visitor-{i}", "features": v, "k": 10} for i, v in enumerate(visitors)])
    check = Check()
    for q, answer in zip(vectors, answers, strict=True):
        assert answer["strategy"] == "features"
        check_answer(large, answer, q, np.ones(len(large.items), dtype=bool), 10, check)
    print(f"\nnew visitors: recall@10 vs exact {check.recall:.4f}")
    assert check.recall >= MIN_RECALL


def test_similar_items_match_exact_top_k(large: Large, server) -> None:
    """Item-to-item: the item's own vector is the query, the item itself left out."""
    rng = np.random.default_rng(0)
    check = Check()
    for row in rng.choice(len(large.items), 80, replace=False):
        item_id = large.items["item_id"].iloc[row]
        r = server.get(f"/v1/items/{item_id}/similar", params={"k": 10})
        assert r.status_code == 200
        mask = np.ones(len(large.items), dtype=bool)
        mask[row] = False
        check_answer(large, r.json(), large.emb[row], mask, 10, check)
    print(
        f"similar items: recall@10 vs exact {check.recall:.4f} "
        f"(manifest: {large.manifest['index']['similar_recall_at_10_vs_exact']})"
    )
    assert check.recall >= MIN_RECALL
