"""``recsys update-catalog`` end to end (issue 20): a trained version → an item
table with 100 new, 50 retired and 10 changed items → a published catalog
update → a running service swaps to it and answers with the new catalog."""

import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

import recsys  # noqa: F401  (first: TF_USE_LEGACY_KERAS)
from artifact.latest import list_versions, read_latest
from recsys.cli import app
from tests.training.catalog_support import CLONES, USERS_WITH_CLONES, copy_root, make_update, trained_base
from training.saved_tower import SavedTower

pytestmark = pytest.mark.filterwarnings("ignore:Using `httpx` with `starlette.testclient`")


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A running service on a copy of the trained root; the update published while it serves."""
    from fastapi.testclient import TestClient

    from serving.app import create_app
    from serving.settings import ServiceSettings

    src, base_version = trained_base(tmp_path_factory)
    tmp = tmp_path_factory.mktemp("catalog_update")
    root = copy_root(src, tmp / "models")
    update = make_update(root / base_version)
    table = update.write_csv(tmp / "items.csv")
    app_ = create_app(ServiceSettings(model_root=root, poll_interval_s=0.1))
    with TestClient(app_) as client:
        deadline = time.monotonic() + 60
        while client.get("/readyz").status_code != 200 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert client.get("/v1/model").json()["model_version"] == base_version
        result = CliRunner().invoke(app, ["update-catalog", "--model-root", str(root), "--items", str(table)])
        assert result.exit_code == 0, result.output
        summary = json.loads(result.stdout[result.stdout.index("{") :])
        version = summary["version"]
        deadline = time.monotonic() + 60
        while client.get("/v1/model").json()["model_version"] != version and time.monotonic() < deadline:
            time.sleep(0.1)
        yield {"root": root, "base": base_version, "version": version, "update": update, "client": client, "summary": summary}


def _manifest(root: Path, version: str) -> dict:
    return json.loads((root / version / "manifest.json").read_text())


def test_the_update_is_published_as_a_catalog_update_of_the_base(world):
    root, base, version = world["root"], world["base"], world["version"]
    assert read_latest(root) == version and list_versions(root) == [base, version]
    manifest, parent = _manifest(root, version), _manifest(root, base)
    assert (manifest["kind"], manifest["parent_version"]) == ("catalog_update", base)
    assert (parent["kind"], parent["parent_version"]) == ("training", None)
    assert manifest["index"]["kind"] in ("brute_force", "tree_ah")  # the index's own kind stays inside "index"
    counts = {k: manifest["metrics"]["catalog_update"][k] for k in ("items", "new", "retired", "changed", "unchanged")}
    assert counts == {"items": 350, "new": 100, "retired": 50, "changed": 10, "unchanged": 240}
    assert world["summary"]["new"] == 100 and world["summary"]["retired"] == 50
    assert manifest["metrics"]["index"]["recall_at_10_vs_exact"] >= 0.95 and manifest["index"]["meets_target"]
    assert manifest["num_items"] == 350 and manifest["num_users"] == parent["num_users"]
    for name in ("query_inputs", "candidate_inputs", "feature_spec", "embedding_dim"):
        assert manifest[name] == parent[name]
    for tower in ("query_model", "candidate_model"):  # the towers are the parent's, byte for byte
        assert {k: v for k, v in manifest["files"].items() if k.startswith(tower)} == {
            k: v for k, v in parent["files"].items() if k.startswith(tower)
        }
    assert manifest["metrics"]["evaluation"] == parent["metrics"]["evaluation"]
    assert manifest["metrics"]["evaluated_version"] == base


def test_the_update_tunes_its_index_on_session_queries_as_training_does(world):
    """Issue 23: every command that builds an index tunes it on the version's own queries; with a
    history input (the storefront's default spec) those include session queries (recent items only)."""
    root, base, version = world["root"], world["base"], world["version"]
    parent = _manifest(root, base)["index"]["tuning"]["queries"]
    update = _manifest(root, version)["index"]["tuning"]["queries"]
    assert parent["sessions"] > 0 and "sessions" in parent["source"]
    assert update["sessions"] > 0 and update["users"] > 0 and update["source"] == parent["source"]


def test_known_items_keep_their_vectors_and_new_or_changed_ones_are_embedded_by_the_candidate_tower(world):
    root, base, version, update = world["root"], world["base"], world["version"], world["update"]
    old_items, new_items = pd.read_parquet(root / base / "items.parquet"), pd.read_parquet(root / version / "items.parquet")
    old_emb, new_emb = np.load(root / base / "item_embeddings.npy"), np.load(root / version / "item_embeddings.npy")
    old_row = {i: r for r, i in enumerate(old_items["item_id"])}
    unchanged = [r for r, i in enumerate(new_items["item_id"]) if i in old_row and i not in update.changed]
    assert len(unchanged) == 240
    assert np.array_equal(new_emb[unchanged], old_emb[[old_row[i] for i in new_items["item_id"].iloc[unchanged]]])
    manifest = _manifest(root, version)
    tower = SavedTower(root / version / "candidate_model", manifest["candidate_inputs"])
    fresh = [r for r, i in enumerate(new_items["item_id"]) if i not in old_row or i in update.changed]
    expected = tower.embed(tower.columns(new_items), np.array(fresh))
    np.testing.assert_allclose(new_emb[fresh], expected, rtol=1e-5, atol=1e-6)
    changed = [r for r, i in enumerate(new_items["item_id"]) if i in update.changed]
    assert not np.allclose(new_emb[changed], old_emb[[old_row[i] for i in new_items["item_id"].iloc[changed]]])
    popularity = dict(zip(old_items["item_id"], old_items["popularity"], strict=True))
    assert [popularity.get(i, 0) for i in new_items["item_id"]] == new_items["popularity"].tolist()
    assert set(new_items["item_id"]) == set(update.frame["item_id"])


def test_histories_and_seen_lists_drop_retired_items_and_point_at_the_same_items(world):
    root, base, version, retired = world["root"], world["base"], world["version"], set(world["update"].retired)
    ids = {v: pd.read_parquet(root / v / "items.parquet")["item_id"].to_numpy() for v in (base, version)}
    seen = {v: pd.read_parquet(root / v / "seen.parquet") for v in (base, version)}
    before = {u: [ids[base][r] for r in rows] for u, rows in zip(seen[base]["user_id"], seen[base]["item_rows"], strict=True)}
    after = {
        u: [ids[version][r] for r in rows] for u, rows in zip(seen[version]["user_id"], seen[version]["item_rows"], strict=True)
    }
    expected = {u: sorted(i for i in items if i not in retired) for u, items in before.items()}
    assert {u: sorted(v) for u, v in after.items()} == {u: v for u, v in expected.items() if v}
    assert any(set(items) & retired for items in before.values())  # the update did remove some seen items
    users = {v: pd.read_parquet(root / v / "users.parquet") for v in (base, version)}
    for old, new in zip(users[base]["recent_item_ids"], users[version]["recent_item_ids"], strict=True):
        assert (new.split("|") if new else []) == [i for i in old.split("|") if i and i not in retired]
    assert (users[base]["user_id"] == users[version]["user_id"]).all()


def test_the_running_service_answers_from_the_new_catalog_and_never_with_retired_items(world):
    client, update = world["client"], world["update"]
    assert client.get("/v1/model").json()["model_version"] == world["version"]
    retired = set(update.retired)
    answered_new = set()
    for item_id in update.new_ids:
        r = client.get(f"/v1/items/{item_id}/similar", params={"k": 20})
        assert r.status_code == 200, r.text
        got = [it["item_id"] for it in r.json()["items"]]
        assert len(got) == 20 and item_id not in got and not retired & set(got)
        answered_new |= set(got) & set(update.new_ids)
    assert len(answered_new) >= 10  # new items are found as similar items of others
    for item_id in update.retired:
        assert client.get(f"/v1/items/{item_id}/similar").status_code == 404
    users = pd.read_parquet(world["root"] / world["version"] / "users.parquet")["user_id"].tolist()
    for i in range(0, len(users), 50):
        body = {"requests": [{"user_id": u, "k": 40} for u in users[i : i + 50]]}
        r = client.post("/v1/recommendations/batch", json=body)
        assert r.status_code == 200, r.text
        for answer in r.json()["results"]:
            assert not retired & {it["item_id"] for it in answer["items"]}


def test_new_items_reach_the_users_whose_tastes_match_their_metadata(world):
    """Each of 10 users got 5 new items copying the metadata of their best-scored
    items and 5 copying their worst; the first kind must reach their top 50 far more."""
    client, update = world["client"], world["update"]
    k, catalog = 50, 350
    top = bottom = 0
    for user in sorted(set(update.owner.values())):
        r = client.post("/v1/recommendations", json={"user_id": user, "k": k})
        assert r.status_code == 200, r.text
        got = {it["item_id"] for it in r.json()["items"]}
        top += sum(1 for i in update.new_ids if update.owner[i] == user and update.group[i] == "top" and i in got)
        bottom += sum(1 for i in update.new_ids if update.owner[i] == user and update.group[i] == "bottom" and i in got)
    uniform = USERS_WITH_CLONES * CLONES * k / catalog  # expected count if new items landed at random places
    assert top >= 2 * uniform, (top, bottom, uniform)
    assert bottom <= top / 4, (top, bottom)


def test_the_next_training_is_gated_and_compared_against_the_served_catalog_update(world):
    """The quality gate and `recsys compare` read the served version's evaluation: a catalog
    update carries its parent's, so the weekly retrain is compared with the model that serves."""
    from training.quality_gate import quality_gate

    root, base, version = world["root"], world["base"], world["version"]
    evaluation = _manifest(root, base)["metrics"]["evaluation"]
    worse = json.loads(json.dumps(evaluation))
    worse["model"]["recall_at_10"] -= 0.05
    gate = quality_gate(root, {"evaluation": worse}, max_drop=0.01)
    assert not gate.passed and f"served {version}" in gate.message
    assert quality_gate(root, {"evaluation": evaluation}, max_drop=0.01).passed
    result = CliRunner().invoke(app, ["compare", "--model-root", str(root)])
    assert result.exit_code == 0, result.output
    assert base in result.output and version in result.output
