"""Every error path of ``recsys update-catalog``: nothing is published, the exit
code is the documented one and the message says where the problem is; and the
inputs it accepts besides CSV (Parquet, a YAML column mapping)."""

import json
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

import recsys  # noqa: F401  (first: TF_USE_LEGACY_KERAS)
from artifact.latest import list_versions, read_latest
from recsys.cli import app
from tests.training.catalog_support import copy_root, make_update, trained_base


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    src, version = trained_base(tmp_path_factory)
    tmp = tmp_path_factory.mktemp("catalog_cli")
    root = copy_root(src, tmp / "models")
    return {"root": root, "base": version, "tmp": tmp, "update": make_update(root / version), "src": src}


def run(root: Path, items: Path, *extra: str):
    return CliRunner().invoke(app, ["update-catalog", "--model-root", str(root), "--items", str(items), *extra])


def refused(setup, items: Path, code: int, *extra: str, root: Path | None = None) -> str:
    root = root or setup["root"]
    before = (read_latest(root), list_versions(root))
    result = run(root, items, *extra)
    assert result.exit_code == code, result.output
    assert (read_latest(root), list_versions(root)) == before  # nothing published
    assert not [p.name for p in root.iterdir() if p.name.startswith(".staging-")]
    return " ".join(result.output.split())  # rich/typer may wrap long lines


def csv(setup, name: str, frame: pd.DataFrame | None = None) -> Path:
    frame = setup["update"].frame if frame is None else frame
    out = frame.copy()
    out["tags"] = out["tags"].map("|".join)
    path = setup["tmp"] / name
    out.to_csv(path, index=False)
    return path


def test_a_missing_tower_column_is_named(setup):
    path = csv(setup, "no_brand.csv", setup["update"].frame.drop(columns=["brand"]))
    message = refused(setup, path, 2)
    assert "brand" in message and "candidate tower" in message


def test_duplicate_ids_name_their_lines(setup):
    frame = setup["update"].frame
    path = csv(setup, "dup.csv", pd.concat([frame, frame.iloc[[3]]]))
    message = refused(setup, path, 2)
    assert f"duplicate item_id {frame['item_id'].iloc[3]!r}" in message and f"lines 5, {len(frame) + 2}" in message


def test_empty_tables_are_refused(setup):
    header_only = setup["tmp"] / "header.csv"
    header_only.write_text("item_id,title,category,tags,price,brand\n")
    assert "empty" in refused(setup, header_only, 2)
    nothing = setup["tmp"] / "nothing.csv"
    nothing.write_text("")
    assert "empty" in refused(setup, nothing, 2)
    assert "not found" in refused(setup, setup["tmp"] / "absent.csv", 2)


def test_unparseable_rows_are_located_and_counted_against_max_bad_rows(setup, tmp_path):
    path = csv(setup, "bad.csv")
    lines = path.read_text().splitlines()
    fields = lines[7].split(",")
    fields[4] = "twelve"  # price of the item on line 8
    lines[7] = ",".join(fields)
    lines[9] = lines[9] + ",surplus,fields"  # a line pandas cannot split
    path.write_text("\n".join(lines) + "\n")
    message = refused(setup, path, 2)
    assert f"{path}:8: column 'price'" in message and "'twelve' is not a finite number" in message
    assert f"{path}:10" in message
    assert "2 bad row(s)" in message and "limit of 0" in message
    root = copy_root(setup["root"], tmp_path / "models")
    result = run(root, path, "--max-bad-rows", "2")
    assert result.exit_code == 0, result.output
    assert read_latest(root) != setup["base"]
    items = pd.read_parquet(root / read_latest(root) / "items.parquet")
    assert len(items) == len(setup["update"].frame) - 2


def test_an_id_holding_the_history_separator_is_a_bad_row(setup):
    frame = setup["update"].frame.copy()
    frame.loc[0, "item_id"] = "a|b"
    message = refused(setup, csv(setup, "sep.csv", frame), 2)
    assert "column 'item_id'" in message and "separator" in message


def test_retiring_more_than_half_the_catalog_needs_allow_large_change(setup, tmp_path):
    frame = setup["update"].frame
    path = csv(setup, "small.csv", frame.iloc[:100])
    message = refused(setup, path, 7)
    assert "--allow-large-change" in message
    root = copy_root(setup["root"], tmp_path / "models")
    result = run(root, path, "--allow-large-change")
    assert result.exit_code == 0, result.output
    manifest = json.loads((root / read_latest(root) / "manifest.json").read_text())
    assert manifest["metrics"]["catalog_update"]["retired"] > 150 and manifest["num_items"] == 100


def test_a_base_version_that_fails_verification_is_refused(setup, tmp_path):
    path = csv(setup, "ok.csv")
    root = copy_root(setup["root"], tmp_path / "models")
    emb = root / setup["base"] / "item_embeddings.npy"
    data = bytearray(emb.read_bytes())
    data[-1] ^= 0xFF
    emb.write_bytes(bytes(data))
    assert "item_embeddings.npy does not match its sha256" in refused(setup, path, 6, root=root)
    (root / setup["base"] / "stray.txt").write_text("x")
    emb.unlink()
    assert "fails verification" in refused(setup, path, 6, root=root)
    assert "not a version" in refused(setup, path, 6, "--base", "../x")
    empty = tmp_path / "empty"
    empty.mkdir()
    assert "no published version" in refused(setup, path, 6, root=empty)


def test_a_base_version_of_the_old_manifest_format_or_a_malformed_one_is_refused(setup, tmp_path):
    path = csv(setup, "ok.csv")
    root = copy_root(setup["root"], tmp_path / "models")
    manifest_path = root / setup["base"] / "manifest.json"  # manifest.json is not in its own files list
    manifest = json.loads(manifest_path.read_text())
    manifest_path.write_text(json.dumps({**manifest, "schema_version": 1}))
    message = " ".join(refused(setup, path, 6, root=root).split())
    assert "unsupported_format" in message and f"version {setup['base']}" in message and "publish it again" in message
    manifest_path.write_text(json.dumps({**manifest, "num_items": -3}))
    message = " ".join(refused(setup, path, 6, root=root).split())
    assert "manifest.num_items must be greater than 0, got -3" in message


def test_an_index_that_misses_its_target_is_not_published_without_allow_low_recall(setup, tmp_path):
    """A base trained with a time budget no index fits: the update, held to the same rules, exits 5."""
    path = csv(setup, "ok.csv")
    root = copy_root(setup["root"], tmp_path / "models")
    manifest_path = root / setup["base"] / "manifest.json"
    manifest = json.loads(manifest_path.read_text())  # manifest.json is not in its own files list
    manifest["training"]["index_max_us_per_query"] = 0.001
    manifest_path.write_text(json.dumps(manifest))
    message = refused(setup, path, 5, root=root)
    assert "index gate refused" in message
    result = run(root, path, "--allow-low-recall")
    assert result.exit_code == 0, result.output
    published = json.loads((root / read_latest(root) / "manifest.json").read_text())
    assert published["index"]["meets_target"] is False


def test_a_failed_publish_leaves_latest_alone(setup, monkeypatch):
    import training.catalog_update as catalog_update

    def full_disk(dest, artifact, version):
        (dest / "item_embeddings.npy").write_bytes(b"partial")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(catalog_update, "write_version", full_disk)
    assert "No space left on device" in refused(setup, csv(setup, "ok.csv"), 3)


def test_parquet_tables_and_yaml_column_mappings_are_read(setup, tmp_path):
    frame = setup["update"].frame.rename(columns={"item_id": "sku", "title": "name"})
    frame.to_parquet(tmp_path / "catalog.parquet")
    spec = tmp_path / "catalog.yaml"
    spec.write_text(
        "interactions: {path: events.csv}  # ignored: a training spec serves as it is\n"
        "items: {path: catalog.parquet, columns: {item_id: sku, title: name}}\n"
    )
    root = copy_root(setup["root"], tmp_path / "models")
    result = run(root, spec)
    assert result.exit_code == 0, result.output
    version = read_latest(root)
    manifest = json.loads((root / version / "manifest.json").read_text())
    assert manifest["metrics"]["catalog_update"]["new"] == 100 and manifest["metrics"]["catalog_update"]["changed"] == 10
    bad_spec = tmp_path / "bad.yaml"
    bad_spec.write_text("users: {path: u.csv}\n")
    assert "'items' entry" in refused(setup, bad_spec, 2, root=root)


def test_an_update_does_not_replace_a_version_published_while_it_ran(setup, tmp_path, monkeypatch):
    """A retrain publishes while the update builds its index: the update exits 8 and LATEST keeps the retrain."""
    import shutil

    import training.catalog_update as catalog_update
    from artifact.latest import write_latest

    root = copy_root(setup["root"], tmp_path / "models")
    retrained = str(int(setup["base"]) + 1)
    original = catalog_update.build_index

    def retrain_meanwhile(*args, **kwargs):
        shutil.copytree(root / setup["base"], root / retrained)  # a complete version, as publish leaves one
        manifest = json.loads((root / retrained / "manifest.json").read_text())
        (root / retrained / "manifest.json").write_text(json.dumps({**manifest, "version": retrained}))
        write_latest(root, retrained)
        return original(*args, **kwargs)

    monkeypatch.setattr(catalog_update, "build_index", retrain_meanwhile)
    result = run(root, csv(setup, "ok.csv"))
    assert result.exit_code == 8, result.output
    assert "no longer" in " ".join(result.output.split())
    assert read_latest(root) == retrained and list_versions(root) == [setup["base"], retrained]
