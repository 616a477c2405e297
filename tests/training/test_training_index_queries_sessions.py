"""Session queries in the index tuning sample of a trained version (issue 23): a version whose
query tower reads a history is tuned on session queries too, and those are the vectors the
service computes for a session request (the exported SavedModel fed the manifest's defaults,
and a real app answering ``recent_item_ids`` alone); a version without a history gets none.

Data: 4 taste clusters of 50 items, 240 users, 90% of each user's items in their cluster."""

import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.taste_clusters import USERS, taste_clusters

TUNING_QUERIES = 400  # a quarter of them (100) sessions


def _train(root: Path, spec):
    from training.config import TrainConfig
    from training.pipeline import run_pipeline

    config = TrainConfig(epochs=3, batch_size=256, seed=5, index_tuning_queries=TUNING_QUERIES)
    result = run_pipeline(taste_clusters(11), root, config, spec=spec, verbose=0)
    assert result.version is not None
    manifest = json.loads((root / result.version / "manifest.json").read_text())
    return result, manifest


@pytest.fixture(scope="module")
def with_history(tmp_path_factory):
    from towers.spec import FeatureKind, spec_for_columns, storefront_spec

    spec = spec_for_columns(storefront_spec(32), {"user_id"}, {"item_id"})
    assert [f.kind for f in spec.query.features] == [FeatureKind.ID, FeatureKind.HISTORY]
    root = tmp_path_factory.mktemp("sessions_history")
    return (root, *_train(root, spec))


def test_a_history_version_is_tuned_on_session_queries_too(with_history) -> None:
    from training.index_queries import sample_queries

    root, result, manifest = with_history
    sessions = result.session_queries
    assert sessions is not None and len(sessions.histories) == TUNING_QUERIES // 4 == len(sessions.vectors)
    queries = manifest["index"]["tuning"]["queries"]
    assert queries["sessions"] == TUNING_QUERIES // 4 and queries["users"] == USERS
    assert queries["source"] == "users+sessions" and queries["tuning"] + queries["checking"] == USERS + TUNING_QUERIES // 4
    # the sample the build tuned on holds exactly those vectors beside the known users'
    items = np.load(root / result.version / "item_embeddings.npy")
    sample = sample_queries(
        result.query_embeddings, items, size=TUNING_QUERIES, seed=5, sessions=sessions.vectors, session_share=0.25
    )
    assert sample.describe() == queries
    drawn = {row.tobytes() for row in np.concatenate([sample.tuning, sample.checking])}
    assert all(row.tobytes() in drawn for row in sessions.vectors)
    # visits of 1 to all of a user's stored items: the sample holds short and long ones
    lengths = np.array([len(h.split("|")) for h in sessions.histories])
    assert lengths.min() <= 3 and lengths.max() >= 15


def test_session_vectors_are_the_exported_query_model_fed_the_manifest_defaults(with_history) -> None:
    import tensorflow as tf

    root, result, manifest = with_history
    sessions = result.session_queries
    model = tf.saved_model.load(str(root / result.version / "query_model")).signatures["serving_default"]
    columns = {}
    for qi in manifest["query_inputs"]:  # what the service feeds a request with no known user
        value = sessions.histories if qi["kind"] == "history" else np.full(len(sessions.histories), qi["default"])
        columns[qi["name"]] = tf.constant(np.asarray(value).astype(np.float32 if qi["dtype"] == "float32" else str))
    exported = model(**columns)["embedding"].numpy()
    np.testing.assert_allclose(sessions.vectors, exported, rtol=1e-5, atol=1e-5)


def test_session_vectors_rank_what_the_service_answers_a_session_request(with_history) -> None:
    from fastapi.testclient import TestClient

    from serving.app import create_app
    from serving.settings import ServiceSettings

    root, result, _ = with_history
    sessions = result.session_queries
    items = np.load(root / result.version / "item_embeddings.npy")
    ids = pd.read_parquet(root / result.version / "items.parquet")["item_id"].tolist()
    with TestClient(create_app(ServiceSettings(model_root=root))) as client:
        deadline = time.monotonic() + 120
        while client.get("/readyz").status_code != 200 and time.monotonic() < deadline:
            time.sleep(0.1)
        for n in range(0, len(sessions.histories), 10):
            visit = sessions.histories[n].split("|")
            body = client.post("/v1/recommendations", json={"recent_item_ids": visit, "k": 10, "exclude_seen": False}).json()
            assert body.get("strategy") == "session" and body["ignored_item_ids"] == [], body
            scores = items @ sessions.vectors[n]
            best = np.argsort(-scores, kind="stable")[:10]
            got = [(i["item_id"], i["score"]) for i in body["items"]]
            np.testing.assert_allclose([s for _, s in got], scores[best], rtol=1e-4, atol=1e-4)
            assert {i for i, _ in got} == {ids[r] for r in best} or np.isclose(scores[best[-1]], np.sort(scores)[-11])


def test_a_version_without_history_gets_no_session_queries(tmp_path) -> None:
    from towers.spec import ids_only_spec

    result, manifest = _train(tmp_path, ids_only_spec(32))
    queries = manifest["index"]["tuning"]["queries"]
    assert result.session_queries is None
    assert queries["sessions"] == 0 and queries["users"] == USERS and "sessions" not in queries["source"]
