"""A generated version the service's own loader accepts, and the in-process compute ceiling on it."""

import json

import numpy as np
import pytest

from benchmarks.catalog import generate_catalog, user_id
from benchmarks.serving.compute import compute_ceiling


@pytest.mark.slow
def test_generated_version_is_accepted_by_the_service_loader(tmp_path):
    """A tree-AH (above 20K items) version, published the real way, loads and answers as generated."""
    import recsys  # noqa: F401  (sets TF_USE_LEGACY_KERAS before anything imports TensorFlow)
    from benchmarks.catalog import publish_catalog
    from serving.retrieval.plan import UserQuery, plan_recommendation
    from serving.retrieval.retriever import rank_jobs
    from serving.version.loader import load_version

    info = publish_catalog(tmp_path, num_items=20_500, num_users=200, dim=64, seed=0)
    assert (tmp_path / "LATEST").read_text().strip() == info["version"]
    manifest = json.loads((tmp_path / info["version"] / "manifest.json").read_text())
    assert manifest["index"]["kind"] == "tree_ah" and manifest["num_items"] == 20_500
    assert set(info["timings"]) >= {"generate_seconds", "towers_seconds", "index_seconds", "publish_seconds", "total_seconds"}
    model = load_version(tmp_path, info["version"])  # every check the server makes before serving
    cat = generate_catalog(20_500, 200, dim=64, seed=0)
    uid = user_id(5)
    q = model.embed(
        {
            "user_id": np.asarray([uid], dtype=object),
            "age": np.asarray([30.0], np.float32),
            "country": np.asarray([""], dtype=object),
            "segment": np.asarray([""], dtype=object),
        }
    )[0]
    q_default = model.embed(
        {
            "user_id": np.asarray([""], dtype=object),
            "age": np.asarray([30.0], np.float32),
            "country": np.asarray([""], dtype=object),
            "segment": np.asarray([""], dtype=object),
        }
    )[0]
    assert np.allclose(q - q_default, cat.user_vectors[5], atol=1e-4)  # the tower reproduces the generated vector

    [items] = rank_jobs([plan_recommendation(model, UserQuery(user_id=uid, k=10))])
    assert len(items) == 10 and [it["rank"] for it in items] == list(range(1, 11))
    # the benchmark's in-process compute ceiling runs on the same version
    ceiling = compute_ceiling(tmp_path, batch_sizes=(1, 4), min_seconds=0.05, repeats=1)
    assert ceiling["num_items"] == 20_500 and set(ceiling["per_batch"]) == {"1", "4"}
    assert all(v["engine_qps"] > 0 and v["tower_plus_scann_qps"] > 0 for v in ceiling["per_batch"].values())
