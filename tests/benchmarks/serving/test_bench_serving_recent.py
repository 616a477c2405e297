"""The serving benchmark's ``--recent-items`` parts: a generated version whose query
tower reads the users' recent items (``benchmarks.catalog --history-length``), and
the requests that carry them."""

import json
from types import SimpleNamespace

import numpy as np
import pandas as pd

from benchmarks.catalog import generate_catalog, item_id, user_id
from benchmarks.serving.catalogs import recent_request_specs, request_specs
from benchmarks.serving.compute import compute_recent
from benchmarks.serving.constants import K


def _req(**kw):
    base = dict(user_id=None, features=None, k=10, exclude_seen=True, exclude_item_ids=[], filters=None, recent_item_ids=[])
    return SimpleNamespace(**{**base, **kw})


def test_generated_version_with_history_runs_the_tower_for_recent_items(tmp_path):

    import recsys  # noqa: F401  (sets TF_USE_LEGACY_KERAS before anything imports TensorFlow)
    from benchmarks.catalog import publish_catalog
    from serving.retrieval.execute import query_columns
    from serving.retrieval.plan import plan_recommendation
    from serving.retrieval.retriever import rank_jobs
    from serving.version.loader import load_version

    info = publish_catalog(tmp_path, num_items=3_000, num_users=300, dim=64, seed=0, history_length=50)
    assert info["history_length"] == 50
    model = load_version(tmp_path, info["version"])
    assert model.history is not None
    qi, length = model.history
    assert qi.name == "recent_item_ids" and length == 50
    cat = generate_catalog(3_000, 300, dim=64, seed=0)
    users = pd.read_parquet(tmp_path / info["version"] / "users.parquet")
    seen = dict(zip(cat.seen["user_id"], cat.seen["item_rows"], strict=True))
    for uid, hist in zip(users["user_id"][:20], users["recent_item_ids"][:20], strict=True):
        assert hist == "|".join(item_id(int(r)) for r in list(seen.get(uid, []))[-50:])

    # the history block of the projection is half the mean of the items' vectors, so
    # recent items move the query by exactly half the change of that mean
    uid = next(u for u in users["user_id"] if len(seen.get(u, [])) >= 3)
    given = [item_id(r) for r in (7, 70, 700)]
    plain, visit = (
        plan_recommendation(model, _req(user_id=uid)),
        plan_recommendation(model, _req(user_id=uid, recent_item_ids=given)),
    )
    assert plain.plan is not None and visit.plan is None and visit.strategy == "personal"
    q_plain, q_visit = model.embed(query_columns(model, [plain, visit]))
    before = [int(r) for r in seen[uid]][-50:]
    after = (before + [7, 70, 700])[-50:]
    emb = cat.item_embeddings
    np.testing.assert_allclose(q_visit - q_plain, 0.5 * (emb[after].mean(0) - emb[before].mean(0)), atol=1e-4)
    np.testing.assert_allclose(q_plain, model.user_vectors[model.users.get(uid)], atol=1e-5)
    a, b = rank_jobs([plain, visit])
    assert len(a) == len(b) == 10 and not {i["item_id"] for i in b} & set(given)

    # the in-process comparison of the inference step with and without recent items runs on it
    timed = compute_recent(tmp_path, recent=20, batch=4, rounds=2)
    assert timed["num_items"] == 3_000 and timed["batch"] == 4
    assert all(timed[kind]["ms_per_batch_p50"] > 0 for kind in ("recent_items", "no_recent_items"))


def test_recent_request_specs_carry_the_recent_items():
    specs = recent_request_specs(1_000_000, 20, num_users=5)
    plain = request_specs(5)
    assert len(specs) == 5
    for spec, same in zip(specs, plain, strict=True):
        body = json.loads(spec.body)
        assert spec.path == "/v1/recommendations" and body["k"] == K
        assert body["user_id"] == json.loads(same.body)["user_id"]  # the same users as the requests without them
        assert len(body["recent_item_ids"]) == 20 and all(
            i.startswith("i") and len(i) == len(item_id(0)) for i in body["recent_item_ids"]
        )
    assert json.loads(specs[0].body)["user_id"] == user_id(0)
    assert specs[0].body == recent_request_specs(1_000_000, 20, num_users=5)[0].body  # seeded
