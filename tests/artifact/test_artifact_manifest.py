"""The manifest contract (artifact.manifest): the round trip, fields named with their bad value,
the old format refused with its reason."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from artifact.manifest import SCHEMA_VERSION, Manifest, ManifestError, parse_manifest, read_manifest
from tests.artifact.sample import manifest_dict


def test_a_manifest_round_trips_through_its_json() -> None:
    written = manifest_dict()
    manifest = parse_manifest(written, "1795425276")
    again = json.loads(manifest.model_dump_json(indent=2))
    assert parse_manifest(again, "1795425276") == manifest
    # what a reader sees is what was written: every field, the index's builder parameter and tuning kept
    assert again == written
    assert manifest.index is not None and manifest.index.params.reorder == 20
    assert manifest.query_feature("age") == {"name": "age"} and manifest.query_feature("nope") == {}


def test_a_brute_force_index_writes_no_null_tree_parameters() -> None:
    index = {"kind": "brute_force", "params": {}, "recall_at_10_vs_exact": 1.0}
    dumped = json.loads(parse_manifest(manifest_dict(index=index)).model_dump_json())
    assert dumped["index"]["params"] == {}


def _nested(path: tuple[str | int, ...], value: Any) -> dict[str, Any]:
    data = manifest_dict()
    target: Any = data
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return data


@pytest.mark.parametrize(
    ("path", "value", "named"),
    [
        (("index", "params", "num_leaves"), -3, "manifest.index.params.num_leaves must be greater than 0, got -3"),
        (("embedding_dim",), 0, "manifest.embedding_dim must be greater than 0, got 0"),
        (("num_items",), "many", "manifest.num_items must be a valid integer"),
        (("kind",), "nightly", "manifest.kind must be 'training' or 'catalog_update', got 'nightly'"),
        (("similarity",), "cosine", "manifest.similarity must be 'dot', got 'cosine'"),
        (("parent_version",), "../1", "manifest.parent_version must be a version name (1 to 20 digits), got '../1'"),
        (("files", "items.parquet"), "xyz", "manifest.files.items.parquet must match pattern"),
        (("query_inputs", 1, "dtype"), "int64", "manifest.query_inputs[1].dtype must be 'string' or 'float32', got 'int64'"),
        (("query_inputs", 1, "default"), "old", "default of float32 input 'age' must be a number, got 'old'"),
        (
            ("index", "recall_at_10_vs_exact"),
            1.5,
            "manifest.index.recall_at_10_vs_exact must be less than or equal to 1, got 1.5",
        ),
        (("index", "params", "reorder"), None, "a tree_ah index must name params.reorder"),
        (("query_inputs",), [], "manifest.query_inputs must have at least 1 item"),
        (("colour",), "blue", "manifest.colour is not a field of this manifest format (schema_version 2)"),
    ],
)
def test_a_malformed_manifest_names_the_field_and_its_value(path, value, named) -> None:
    with pytest.raises(ManifestError) as info:
        parse_manifest(_nested(path, value), "1795425276")
    assert info.value.reason == "manifest_invalid"
    assert named in info.value.detail and "version 1795425276" in info.value.detail


def test_a_missing_field_is_named() -> None:
    data = manifest_dict()
    del data["embedding_dim"]
    with pytest.raises(ManifestError, match=r"manifest\.embedding_dim is missing"):
        parse_manifest(data)


@pytest.mark.parametrize("old", [1, None, "2", True])
def test_a_version_of_another_format_is_refused_with_its_reason(old) -> None:
    data = manifest_dict()
    if old is None:
        del data["schema_version"]  # written before the manifest had a format number
    else:
        data["schema_version"] = old
    data["colour"] = "ignored"  # the format is judged first: an old manifest's fields are never read
    with pytest.raises(ManifestError) as info:
        parse_manifest(data, "1795425276")
    assert info.value.reason == "unsupported_format"
    detail = info.value.detail
    assert "version 1795425276" in detail and repr(old) in detail and f"reads {SCHEMA_VERSION}" in detail
    assert "publish it again" in detail


def test_a_manifest_of_another_version_is_refused() -> None:
    with pytest.raises(ManifestError) as info:
        parse_manifest(manifest_dict("17"), "18")
    assert info.value.reason == "version_mismatch" and "'17'" in info.value.detail


def test_read_manifest_returns_the_model_and_the_object_as_written(tmp_path: Path) -> None:
    vdir = tmp_path / "1795425276"
    vdir.mkdir()
    written = manifest_dict()
    (vdir / "manifest.json").write_text(json.dumps(written))
    manifest, raw = read_manifest(vdir)
    assert isinstance(manifest, Manifest) and manifest.version == "1795425276" and raw == written


@pytest.mark.parametrize(
    ("content", "reason", "words"),
    [
        (None, "manifest_missing", "has no manifest.json"),
        (b"{not json", "manifest_invalid", "is not valid JSON"),
        (b"\xff\xfe", "manifest_invalid", "is not valid JSON"),
        (b"[1, 2]", "manifest_invalid", "must be a JSON object, got list"),
    ],
)
def test_read_manifest_refuses_what_is_not_a_manifest(tmp_path: Path, content, reason, words) -> None:
    vdir = tmp_path / "7"
    vdir.mkdir()
    if content is not None:
        (vdir / "manifest.json").write_bytes(content)
    with pytest.raises(ManifestError) as info:
        read_manifest(vdir)
    assert info.value.reason == reason and words in info.value.detail
