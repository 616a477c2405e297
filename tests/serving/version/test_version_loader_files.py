"""What may be in a version folder: files the manifest does not list, symbolic links, special
files and paths that leave the version are refused with a named reason
(serving.version.files, through serving.version.loader.load_version). LATEST's own
limits: tests/artifact/test_artifact_latest.py."""

import json
import os
import shutil
from pathlib import Path

import pytest

from serving.version import files as version_files
from serving.version.errors import LoadError
from serving.version.loader import load_version


def _rechecksum(vdir: Path) -> None:
    from artifact.checksums import tree_checksums

    manifest = json.loads((vdir / "manifest.json").read_text())
    manifest["files"] = tree_checksums(vdir)
    (vdir / "manifest.json").write_text(json.dumps(manifest, indent=2))


def _refusal(root: Path, name: str) -> LoadError:
    with pytest.raises(LoadError) as info:
        load_version(root, name)
    assert info.value.version == name and info.value.detail
    return info.value


def test_the_exporter_lists_every_file_of_a_version(base_dir: Path) -> None:
    """training.export lists every regular file but manifest.json (report.png, metrics.json included)."""
    manifest = json.loads((base_dir / "manifest.json").read_text())
    on_disk = {p.relative_to(base_dir).as_posix() for p in base_dir.rglob("*") if p.is_file() and not p.is_symlink()}
    assert set(manifest["files"]) == on_disk - {"manifest.json"}
    assert {"report.png", "metrics.json", "query_model/saved_model.pb"} <= set(manifest["files"])
    assert any(name.startswith("index/") for name in manifest["files"])


def test_a_clean_clone_loads(versions) -> None:
    name = versions.clone()
    assert load_version(versions.root, name).version == name


@pytest.mark.parametrize(
    "extra", ["extra.bin", "query_model/variables/extra.data", "index/extra.npy", "query_model/assets/vocab.txt"]
)
def test_a_file_the_manifest_does_not_list_is_refused(versions, extra: str) -> None:
    name = versions.clone(corrupt=lambda d: (d / extra).write_bytes(b"not listed"))
    err = _refusal(versions.root, name)
    assert err.reason == "unlisted_file" and extra in err.detail


def test_a_listed_file_replaced_by_a_symlink_is_refused_even_with_the_right_checksum(versions, tmp_path: Path) -> None:
    outside = tmp_path / "outside.parquet"

    def link(vdir: Path) -> None:
        shutil.copy(vdir / "items.parquet", outside)  # the same bytes: the checksum alone would pass
        (vdir / "items.parquet").unlink()
        (vdir / "items.parquet").symlink_to(outside)

    name = versions.clone(corrupt=link)
    err = _refusal(versions.root, name)
    assert err.reason == "symlink" and "items.parquet" in err.detail


def test_a_symlinked_folder_inside_the_version_is_refused(versions, tmp_path: Path) -> None:
    def link(vdir: Path) -> None:
        shutil.move(vdir / "index", tmp_path / "index")
        (vdir / "index").symlink_to(tmp_path / "index", target_is_directory=True)

    name = versions.clone(corrupt=link)
    err = _refusal(versions.root, name)
    assert err.reason == "symlink" and "index" in err.detail


def test_a_symlinked_version_folder_is_refused(versions, tmp_path: Path) -> None:
    real = versions.clone()
    target = tmp_path / "elsewhere"
    shutil.move(versions.root / real, target)
    (versions.root / real).symlink_to(target, target_is_directory=True)
    err = _refusal(versions.root, real)
    assert err.reason == "symlink" and real in err.detail


def test_a_fifo_in_the_version_is_refused(versions) -> None:
    name = versions.clone(corrupt=lambda d: os.mkfifo(d / "index" / "pipe"))
    err = _refusal(versions.root, name)
    assert err.reason == "not_a_regular_file" and "index/pipe" in err.detail


def test_an_index_asset_outside_the_version_is_refused(versions, tmp_path: Path) -> None:
    """ScaNN opens an absolute asset path as it is: the assets list must name files of index/."""

    def point_outside(vdir: Path) -> None:
        assets = vdir / "index" / "scann_assets.pbtxt"
        text = assets.read_text()
        first = text.split('asset_path: "', 1)[1].split('"', 1)[0]
        shutil.copy(vdir / "index" / first, tmp_path / first)
        assets.write_text(text.replace(f'"{first}"', f'"{tmp_path / first}"'))
        _rechecksum(vdir)

    name = versions.clone(corrupt=point_outside)
    err = _refusal(versions.root, name)
    assert err.reason == "path_outside_version" and str(tmp_path) in err.detail


def test_a_file_replaced_during_the_load_is_refused(versions, monkeypatch) -> None:
    """The folder is walked again after loading: a file swapped in meanwhile (same bytes) is noticed."""
    import serving.version.loader

    name = versions.clone()
    vdir = versions.root / name
    original = serving.version.loader.open_index

    def swap_then_open(*args, **kwargs):
        copy = vdir / "seen.parquet.tmp"
        shutil.copy(vdir / "seen.parquet", copy)
        os.replace(copy, vdir / "seen.parquet")  # a new inode with the same content
        return original(*args, **kwargs)

    monkeypatch.setattr(serving.version.loader, "open_index", swap_then_open)
    err = _refusal(versions.root, name)
    assert err.reason == "changed_during_load" and "seen.parquet" in err.detail


def test_a_file_replaced_between_the_walk_and_its_checksum_is_refused(versions) -> None:
    name = versions.clone()
    vdir = versions.root / name
    entries = version_files.scan(vdir)
    files = json.loads((vdir / "manifest.json").read_text())["files"]
    version_files.verify_files(vdir, files, entries)  # as walked: fine
    shutil.copy(vdir / "users.parquet", vdir / "users.tmp")
    os.replace(vdir / "users.tmp", vdir / "users.parquet")
    with pytest.raises(version_files.VersionFileError) as info:
        version_files.verify_files(vdir, files, entries)
    assert info.value.reason == "changed_during_load" and "users.parquet" in info.value.detail
