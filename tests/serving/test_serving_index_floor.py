"""The index's operating point in the service (issue 23): the recall floor, the parameters
searched with, and how ``/v1/model`` and the report page show them.

The versions here are the session's trained model with a real tree + AH index
built over its item vectors, searching 2 of 8 leaves and re-scoring a pool of
40: a genuinely low-recall index, whose recall@10 against exact search is
measured (as training measures it: the version's known users' query vectors,
the pool re-scored) and recorded in its manifest beside the measured points.
"""

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.serving.conftest import Versions, edit_manifest, wait_until

FLOOR = 0.9
PARAMS: dict[str, Any] = {  # training.index.build_searcher's tree + AH parameters (ints and a float)
    "num_leaves": 8,
    "num_leaves_to_search": 2,
    "training_sample_size": 300,
    "dimensions_per_block": 2,
    "anisotropic_quantization_threshold": 0.2,
    "reorder": 40,
}


def _rechecksum(vdir: Path) -> None:
    from artifact.checksums import tree_checksums

    manifest = json.loads((vdir / "manifest.json").read_text())
    manifest["files"] = tree_checksums(vdir)
    (vdir / "manifest.json").write_text(json.dumps(manifest, indent=2))


def _similar_recall(searcher, items: np.ndarray, rows: np.ndarray, pool: int, leaves: int | None = None) -> float:
    """recall@10 of similar-items answers (the item's own vector, itself left out), pool re-scored."""
    from training.index import search_rescored

    got, _ = search_rescored(searcher, items, items[rows], 11, pool, leaves_to_search=leaves)
    scores = items[rows] @ items.T
    scores[np.arange(len(rows)), rows] = -np.inf
    exact = np.argsort(-scores, axis=1, kind="stable")[:, :10]
    return float(
        np.mean([len(set([r for r in g if r != own][:10]) & set(e)) / 10 for g, e, own in zip(got, exact, rows, strict=True)])
    )


@dataclass
class Narrow:
    """The tree + AH index over the trained version's items, and what was measured on it."""

    searcher: object
    items: np.ndarray
    users: np.ndarray  # the known users' query vectors, users.parquet order
    user_ids: list[str]
    recall: float  # recall@10 vs exact, known users, PARAMS
    similar_recall: float
    index: dict  # the manifest's index section

    def write(self, versions: Versions, **manifest: object) -> str:
        """A clone of the trained version with this index and its record in the manifest."""
        from training.index import save_searcher

        def swap_index(vdir: Path) -> None:
            shutil.rmtree(vdir / "index")
            save_searcher(self.searcher, vdir / "index")
            edit_manifest(vdir, index=json.loads(json.dumps(self.index)), **manifest)
            _rechecksum(vdir)

        return versions.clone(corrupt=swap_index)


def _users_recall(searcher, items: np.ndarray, users: np.ndarray, leaves: int | None = None) -> float:
    """recall@10 of known users' answers against exact search, the pool re-scored (what training records)."""
    from training.index import search_rescored
    from training.metrics import recall_vs_exact, top_k_indices

    approx, _ = search_rescored(searcher, items, users, 10, PARAMS["reorder"], leaves_to_search=leaves)
    return recall_vs_exact(approx, top_k_indices(users @ items.T, 10))


@pytest.fixture(scope="module")
def narrow(base_dir: Path) -> Narrow:
    from serving.version.loader import load_version
    from training.index import build_searcher

    served = load_version(base_dir.parent, base_dir.name, min_index_recall=0)  # the service's own query vectors
    items, users = np.asarray(served.item_embeddings), np.asarray(served.user_vectors)
    searcher = build_searcher(items, "tree_ah", PARAMS)
    recall = _users_recall(searcher, items, users)  # the serialised default: 2 leaves
    similar = _similar_recall(searcher, items, np.arange(0, len(items), 3), PARAMS["reorder"])
    # the points a tuning would have tried on this tree, measured (us per query: not measured, 0)
    frontier = [
        {
            "tree": 0,
            "leaves_to_search": leaves,
            "reorder": PARAMS["reorder"],
            "pareto": True,
            "us_per_query": 0.0,
            "recall_at_10": round(_users_recall(searcher, items, users, leaves), 4),
        }
        for leaves in (1, 2, 4, 8)
    ]
    index = {
        "kind": "tree_ah",
        "params": PARAMS,
        "recall_at_10_vs_exact": recall,
        "similar_recall_at_10_vs_exact": similar,
        "meets_target": False,
        "tuning": {
            "target_recall_at_10": 0.95,
            "max_us_per_query": 1000.0,
            "reason": "a narrow tree on purpose (test)",
            "chosen": "size rule",
            "trees": [{"shape": "size rule", **PARAMS}],
            "frontier": frontier,
        },
    }
    return Narrow(searcher, items, users, list(served.users), recall, similar, index)


def _samples(text: str) -> dict:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value for fam in text_string_to_metric_families(text) for s in fam.samples
    }


# --------------------------------------------------------------------------- the floor


def test_a_version_below_the_floor_is_refused_naming_both_numbers_and_the_served_one_keeps_answering(
    narrow: Narrow, versions: Versions, start_server
) -> None:
    assert 0.2 < narrow.recall < FLOOR  # a real, low-recall index: the premise of the test
    good = versions.clone()
    versions.set_latest(good)
    server = start_server(versions.root, RECSYS_MIN_INDEX_RECALL=str(FLOOR))
    server.wait_ready()
    user = narrow.user_ids[0]
    before = server.post("/v1/recommendations", json={"user_id": user, "k": 10}).json()
    assert before["model_version"] == good

    low = narrow.write(versions)
    versions.set_latest(low)

    def refused() -> bool:
        failure = server.get("/readyz").json()["last_reload_failure"]
        return failure is not None and failure["version"] == low

    assert wait_until(refused, timeout=60), server.log()
    ready = server.get("/readyz")
    assert ready.status_code == 200 and ready.json()["status"] == "ready" and ready.json()["model_version"] == good
    assert ready.json()["latest"] == low
    failure = ready.json()["last_reload_failure"]
    assert failure["reason"] == "index_recall_below_floor"
    assert f"{narrow.recall:.6g}" in failure["detail"] and f"floor {FLOOR:g}" in failure["detail"], failure
    assert "known users' queries" in failure["detail"]
    # the served version keeps answering, the same answer
    after = server.post("/v1/recommendations", json={"user_id": user, "k": 10})
    assert after.status_code == 200 and after.json() == before
    assert server.get("/v1/model").json()["model_version"] == good
    samples = _samples(server.get("/metrics").text)
    assert samples[("recsys_model_reloads_total", (("outcome", "failure"), ("reason", "index_recall_below_floor")))] == 1.0
    assert samples[("recsys_model_version", ())] == float(good)
    assert f"refused model version {low} (index_recall_below_floor)" in server.log()


def test_at_the_floor_the_version_loads_and_is_searched_with_exactly_its_parameters(
    narrow: Narrow, versions: Versions, make_client
) -> None:
    """The floor is inclusive; loaded, the service searches with the manifest's leaves and pool:
    its answers are the training code's search with those parameters, user by user."""
    from training.index import search_rescored

    name = narrow.write(versions)
    versions.set_latest(name)
    floor = min(narrow.recall, narrow.similar_recall)
    with make_client(versions.root, min_index_recall=floor) as client:
        assert client.get("/readyz").json()["model_version"] == name
        body = {"requests": [{"user_id": u, "k": 10, "exclude_seen": False} for u in narrow.user_ids[:50]]}
        answers = client.post("/v1/recommendations/batch", json=body).json()["results"]
        body = {"requests": [{"user_id": u, "k": 10, "exclude_seen": False} for u in narrow.user_ids[50:100]]}
        answers += client.post("/v1/recommendations/batch", json=body).json()["results"]
    ids = pd.read_parquet(versions.root / name / "items.parquet")["item_id"].tolist()
    users = narrow.users[:100]
    expected, _ = search_rescored(narrow.searcher, narrow.items, users, 10, PARAMS["reorder"])
    wider, _ = search_rescored(narrow.searcher, narrow.items, users, 10, PARAMS["reorder"], leaves_to_search=PARAMS["num_leaves"])
    served = [[ids.index(item["item_id"]) for item in answer["items"]] for answer in answers]
    assert all(a["model_version"] == name and a["strategy"] == "personal" for a in answers)
    assert [set(s) for s in served] == [set(e.tolist()) for e in expected]
    # the check can fail: every leaf searched answers differently for some users
    assert [set(s) for s in served] != [set(w.tolist()) for w in wider]


def test_the_similar_items_figure_is_held_to_the_floor_too(narrow: Narrow, versions: Versions) -> None:
    from serving.version.errors import LoadError
    from serving.version.loader import load_version

    index = {**narrow.index, "recall_at_10_vs_exact": 0.97, "similar_recall_at_10_vs_exact": 0.61}
    name = narrow.write(versions)
    edit_manifest(versions.root / name, index=index)  # what a manifest may claim: users' above the floor, similar items' below
    with pytest.raises(LoadError) as err:
        load_version(versions.root, name, min_index_recall=FLOOR)
    assert err.value.reason == "index_recall_below_floor" and "0.61" in err.value.detail and "similar-items" in err.value.detail
    assert load_version(versions.root, name, min_index_recall=0.6).version == name


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (lambda index: index.pop("recall_at_10_vs_exact"), "index_recall_unknown"),
        (lambda index: index.update(recall_at_10_vs_exact="0.99"), "manifest_invalid"),
        (lambda index: index.update(recall_at_10_vs_exact=1.5), "manifest_invalid"),
        (lambda index: index["params"].pop("reorder"), "manifest_invalid"),
        (lambda index: index["params"].update(num_leaves_to_search=3), "index_mismatch"),
        (lambda index: index["params"].update(num_leaves=9), "index_mismatch"),
        (lambda index: index.update(kind="brute_force"), "index_mismatch"),
    ],
    ids=["no-recall", "recall-text", "recall-above-1", "no-pool", "other-leaves-to-search", "other-leaves", "kind"],
)
def test_a_manifest_that_does_not_describe_its_index_is_refused(narrow: Narrow, versions: Versions, change, reason) -> None:
    from serving.version.errors import LoadError
    from serving.version.loader import load_version

    index = json.loads(json.dumps(narrow.index))
    change(index)
    name = narrow.write(versions)
    edit_manifest(versions.root / name, index=index)
    with pytest.raises(LoadError) as err:
        load_version(versions.root, name, min_index_recall=0.1)
    assert err.value.reason == reason, err.value
    if reason == "index_mismatch":
        assert "serialised searcher" in err.value.detail


def test_without_a_floor_a_low_recall_version_loads_and_brute_force_needs_no_figure(narrow: Narrow, versions: Versions) -> None:
    from serving.version.loader import load_version

    assert load_version(versions.root, narrow.write(versions), min_index_recall=0).index.rescore_k == PARAMS["reorder"]

    def no_figures(vdir: Path) -> None:
        index = json.loads((vdir / "manifest.json").read_text())["index"]
        assert index["kind"] == "brute_force"  # the trained 300-item version
        edit_manifest(vdir, index={k: v for k, v in index.items() if "recall" not in k})

    name = versions.clone(corrupt=no_figures)
    assert load_version(versions.root, name, min_index_recall=1.0).version == name


def test_the_floor_setting(monkeypatch) -> None:
    from pydantic import ValidationError

    from serving.settings import ServiceSettings

    assert ServiceSettings().min_index_recall == FLOOR
    monkeypatch.setenv("RECSYS_MIN_INDEX_RECALL", "0.97")
    assert ServiceSettings().min_index_recall == 0.97
    assert ServiceSettings().to_env()["RECSYS_MIN_INDEX_RECALL"] == "0.97"  # handed to worker processes
    for bad in ("1.5", "-0.1", "high"):
        monkeypatch.setenv("RECSYS_MIN_INDEX_RECALL", bad)
        with pytest.raises(ValidationError):
            ServiceSettings()


# --------------------------------------------------------------------------- what /v1/model and the report show


def test_model_info_and_report_show_the_index_and_how_the_version_was_made(
    narrow: Narrow, versions: Versions, make_client, base_dir: Path
) -> None:
    name = narrow.write(versions, kind="catalog_update", parent_version=base_dir.name)
    versions.set_latest(name)
    with make_client(versions.root, min_index_recall=0) as client:
        body = client.get("/v1/model").json()
        page = client.get("/v1/model/report").text
    assert body["kind"] == "catalog_update" and body["parent_version"] == base_dir.name
    index = body["index"]
    assert index["kind"] == "tree_ah" and index["params"] == PARAMS
    assert index["recall_at_10_vs_exact"] == narrow.recall and index["similar_recall_at_10_vs_exact"] == narrow.similar_recall
    assert index["meets_target"] is False
    assert index["tuning"]["target_recall_at_10"] == 0.95 and index["tuning"]["frontier_tried"] == 4
    assert "frontier" not in index["tuning"] and index["tuning"]["trees_tried"] == 1
    assert f'data-figure="scann-recall">{narrow.recall:.4f}<' in page
    assert f'data-figure="scann-similar-recall">{narrow.similar_recall:.4f}<' in page
    assert 'data-figure="scann-params">num_leaves=8, num_leaves_to_search=2' in page
    assert 'data-figure="version-kind">catalog_update<' in page and f'data-figure="parent-version">{base_dir.name}<' in page
    for point in narrow.index["tuning"]["frontier"]:  # the frontier, one row per point
        assert f"<td>{point['recall_at_10']:.4f}</td>" in page


def test_versions_without_kind_or_parent_show_null_and_bad_ones_are_refused(versions: Versions, make_client) -> None:
    from serving.version.errors import LoadError
    from serving.version.loader import load_version

    def strip(vdir: Path) -> None:
        manifest = json.loads((vdir / "manifest.json").read_text())
        manifest.pop("kind", None)
        manifest.pop("parent_version", None)
        (vdir / "manifest.json").write_text(json.dumps(manifest))

    name = versions.clone(corrupt=strip)
    versions.set_latest(name)
    with make_client(versions.root) as client:
        body = client.get("/v1/model").json()
        assert body["kind"] is None and body["parent_version"] is None
        assert "made by" not in client.get("/v1/model/report").text
        schemas = client.get("/openapi.json").json()["components"]["schemas"]
    model = schemas["ModelResponse"]["properties"]
    assert {"kind", "parent_version", "index"} <= set(model)
    info = schemas["IndexInfo"]["properties"]
    assert {"params", "recall_at_10_vs_exact", "recall_at_100_vs_exact", "us_per_query"} <= set(info)
    changes: list[dict[str, object]] = [{"parent_version": "../1"}, {"parent_version": 17}, {"kind": ""}, {"kind": ["training"]}]
    for change in changes:

        def corrupt(vdir: Path, change: dict[str, object] = change) -> None:
            edit_manifest(vdir, **change)

        bad = versions.clone(corrupt=corrupt)
        with pytest.raises(LoadError) as err:
            load_version(versions.root, bad)
        assert err.value.reason == "manifest_invalid" and next(iter(change)) in err.value.detail
