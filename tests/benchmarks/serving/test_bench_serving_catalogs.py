"""The serving benchmark's catalogs (reused only when current) and the requests it sends."""

import json

from benchmarks.serving.catalogs import ensure_catalog


def test_catalog_is_reused_only_with_the_current_generator_and_index_settings(tmp_path, monkeypatch):
    """A catalog whose index was chosen by the tuning (issue 23) is reused; one
    published by the former size rule (no tuning record) is rebuilt, not
    silently measured."""
    import subprocess
    import types

    from artifact.manifest import SCHEMA_VERSION
    from benchmarks.catalog import GENERATOR_VERSION
    from training.index import index_params

    size = 600_000
    root = tmp_path / f"items-{size}"

    def publish(index: dict, schema_version: int = SCHEMA_VERSION) -> None:
        (root / "7").mkdir(parents=True, exist_ok=True)
        manifest = {
            "schema_version": schema_version,
            "num_items": size,
            "dataset": {"source": "generated-catalog"},
            "index": index,
            "metrics": {"catalog": {"generator": GENERATOR_VERSION}},
        }
        (root / "7" / "manifest.json").write_text(json.dumps(manifest))
        (root / "LATEST").write_text("7")

    builds = []

    def fake_run(cmd, **kw):
        builds.append(cmd)
        return types.SimpleNamespace(stdout=json.dumps({"version": "8", "timings": {}, "index": {}}).encode())

    monkeypatch.setattr(subprocess, "run", fake_run)
    logs = tmp_path / "logs"
    logs.mkdir()
    publish({"kind": "tree_ah", "params": index_params(size)[1], "tuning": {"target_recall": 0.95}})
    assert ensure_catalog(tmp_path, size, logs)["reused"] is True and not builds
    publish({"kind": "tree_ah", "params": index_params(size)[1]})  # the size rule, before the tuning
    out = ensure_catalog(tmp_path, size, logs)
    assert out["reused"] is False and out["version"] == "8" and len(builds) == 1 and "--items" in builds[0]
    # a catalog of the manifest format before this one: the service would refuse it, so it is built again
    publish({"kind": "tree_ah", "params": index_params(size)[1], "tuning": {"target_recall": 0.95}}, schema_version=1)
    assert ensure_catalog(tmp_path, size, logs)["reused"] is False and len(builds) == 2
