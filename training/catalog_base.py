"""The published version a catalog update starts from: found, verified the way
the service verifies a version (every file against the manifest's sha256, no
unlisted file, no symbolic link, the index's assets inside ``index/``), and read.

A version that fails any check raises :class:`BaseVersionError`; nothing is
published from it (``recsys update-catalog`` exits 6).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
import pandas as pd

from serving import version_files
from towers.spec import ModelSpec
from training.publish import read_latest

SCHEMA_VERSION = 1


class BaseVersionError(RuntimeError):
    """The base version is missing or fails verification."""


@dataclass
class BaseVersion:
    """A verified published version, read lazily."""

    path: Path
    name: str
    manifest: dict

    @cached_property
    def spec(self) -> ModelSpec:
        return ModelSpec.model_validate(self.manifest["feature_spec"])

    @cached_property
    def items(self) -> pd.DataFrame:
        return pd.read_parquet(self.path / "items.parquet")

    @cached_property
    def embeddings(self) -> np.ndarray:
        return np.load(self.path / "item_embeddings.npy")

    @cached_property
    def users(self) -> pd.DataFrame:
        return pd.read_parquet(self.path / "users.parquet")

    @cached_property
    def seen(self) -> pd.DataFrame:
        return pd.read_parquet(self.path / "seen.parquet")

    def defaults(self, tower: str) -> dict[str, str | float]:
        """The manifest's default per input of ``tower`` (``query`` or ``candidate``)."""
        return {i["name"]: i["default"] for i in self.manifest[f"{tower}_inputs"]}

    def history_separators(self) -> dict[str, str]:
        """Query inputs that are histories (users.parquet columns of item ids) and their separators."""
        return {f.name: f.separator for f in self.spec.history_features}


def _fail(name: str, detail: str) -> BaseVersionError:
    return BaseVersionError(f"base version {name} fails verification: {detail}")


def open_base(model_root: Path, name: str | None = None) -> BaseVersion:
    """Version ``name`` (default: the one ``LATEST`` names) of ``model_root``, verified."""
    model_root = Path(model_root)
    if name is None:
        name = read_latest(model_root)
        if name is None:
            raise BaseVersionError(
                f"no published version under {model_root} (LATEST is missing or empty); give --base or train first"
            )
    if not name.isdigit():
        raise BaseVersionError(f"{name!r} is not a version name (integer seconds)")
    path = model_root / name
    try:
        entries = version_files.scan(path)
        manifest = json.loads((path / version_files.MANIFEST).read_text(encoding="utf-8"))
        if not isinstance(manifest, dict) or not isinstance(manifest.get("files"), dict):
            raise _fail(name, "manifest.json is not an object with a files map")
        version_files.verify_files(path, manifest["files"], entries)
        version_files.check_index_assets(path, manifest["files"])
    except version_files.VersionFileError as exc:
        raise _fail(name, str(exc)) from exc
    except FileNotFoundError as exc:
        raise _fail(name, "it has no manifest.json") from exc
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise _fail(name, f"manifest.json cannot be read: {exc}") from exc
    if manifest.get("schema_version") != SCHEMA_VERSION or str(manifest.get("version")) != name:
        raise _fail(name, f"schema_version {manifest.get('schema_version')!r}, version {manifest.get('version')!r}")
    for rel in (
        "candidate_model/saved_model.pb",
        "query_model/saved_model.pb",
        "items.parquet",
        "item_embeddings.npy",
        "users.parquet",
        "seen.parquet",
    ):
        if rel not in manifest["files"]:
            raise _fail(name, f"{rel} is not in it")
    base = BaseVersion(path=path, name=name, manifest=manifest)
    try:
        spec, items, emb = base.spec, base.items, base.embeddings
    except Exception as exc:
        raise _fail(name, f"cannot read it: {type(exc).__name__}: {exc}") from exc
    if emb.shape != (len(items), spec.embedding_dim) or len(items) != manifest.get("num_items"):
        raise _fail(name, f"{len(items)} items, embeddings {emb.shape}, manifest num_items {manifest.get('num_items')}")
    return base
