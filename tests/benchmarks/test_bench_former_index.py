"""The serving benchmark's baseline: a version's copy with the former rule's index
(benchmarks.former_index), and the tuned-against-former change it reports."""

import json
import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from benchmarks import serving_load


@pytest.mark.slow
def test_former_index_copy_loads_with_the_former_parameters_and_leaves_the_source_intact(tmp_path) -> None:
    import recsys  # noqa: F401  (sets TF_USE_LEGACY_KERAS before anything imports TensorFlow)
    from artifact.manifest import parse_manifest
    from benchmarks.catalog import publish_catalog
    from benchmarks.former_index import RULE, former_rule_version
    from serving.version.loader import load_version
    from serving.version.operating_point import check_operating_point
    from training.index import index_params

    source, dest = tmp_path / "tuned", tmp_path / "former"
    info = publish_catalog(source, num_items=20_500, num_users=300, dim=64, seed=0)
    name = info["version"]
    before = (source / name / "manifest.json").read_text()
    index_files = {p.name: p.read_bytes() for p in (source / name / "index").iterdir()}

    out = former_rule_version(source, dest)
    assert out["version"] == name and out["reused"] is False
    kind, params = index_params(20_500)
    manifest = json.loads((dest / name / "manifest.json").read_text())
    assert manifest["index"]["kind"] == kind == "tree_ah" and manifest["index"]["params"] == params
    assert manifest["index"]["rule"] == RULE and 0.5 < manifest["index"]["recall_at_10_vs_exact"] <= 1.0
    # the service loads it under the default floor, searching the former parameters
    model = load_version(dest, name, min_index_recall=0.9)
    assert model.index.rescore_k == params["reorder"]
    check_operating_point(model.index.searcher, parse_manifest(manifest).index)
    # the source is untouched: its manifest and index bytes, and it still loads as it was published
    assert (source / name / "manifest.json").read_text() == before
    assert {p.name: p.read_bytes() for p in (source / name / "index").iterdir()} == index_files
    assert os.path.samefile(source / name / "item_embeddings.npy", dest / name / "item_embeddings.npy")  # hard-linked
    assert load_version(source, name).index.rescore_k == info["index"]["params"]["reorder"]
    # made once: a second call reuses it
    assert former_rule_version(source, dest)["reused"] is True


def test_the_change_compares_the_same_workers_and_concurrency() -> None:
    def measured(rps: float, p99: float, ratio: float) -> dict:
        return {"workers": 1, "per_concurrency": {"32": {"model": {"rps": rps, "p99_ms": p99}, "ratio_to_http_ceiling": ratio}}}

    per = {"workers": [measured(3000.0, 18.0, 0.6)], "former_index": {"workers": [measured(2500.0, 21.0, 0.5)]}}
    change = serving_load.former_change(per)["workers=1 c=32"]
    assert change["rps_change"] == pytest.approx(0.2)
    assert (change["tuned_p99_ms"], change["former_p99_ms"], change["tuned_ratio"], change["former_ratio"]) == (
        18.0,
        21.0,
        0.6,
        0.5,
    )
