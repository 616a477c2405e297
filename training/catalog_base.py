"""The published version a catalog update starts from: found, verified the way
the service verifies a version (every file against the manifest's sha256, no
unlisted file, no symbolic link, the index's assets inside ``index/``), and read.

A version that fails any check raises :class:`BaseVersionError`; nothing is
published from it (``recsys update-catalog`` exits 6).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
import pandas as pd

from artifact.latest import LatestError, check_version_name, read_latest
from artifact.manifest import Manifest, ManifestError, parse_manifest, read_manifest
from serving.version import files as version_files
from towers.spec import ModelSpec


class BaseVersionError(RuntimeError):
    """The base version is missing or fails verification."""


@dataclass
class BaseVersion:
    """A verified published version, read lazily."""

    path: Path
    name: str
    manifest: dict  # manifest.json as written

    @cached_property
    def contract(self) -> Manifest:
        """The manifest validated (:func:`open_base` has checked it already)."""
        return parse_manifest(self.manifest, self.name)

    @cached_property
    def spec(self) -> ModelSpec:
        return ModelSpec.model_validate(self.contract.feature_spec)

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
        inputs = self.contract.query_inputs if tower == "query" else self.contract.candidate_inputs
        return {i.name: i.default if i.default is not None else ("" if i.dtype == "string" else float("nan")) for i in inputs}

    def history_separators(self) -> dict[str, str]:
        """Query inputs that are histories (users.parquet columns of item ids) and their separators."""
        return {f.name: f.separator for f in self.spec.history_features}


def _fail(name: str, detail: str) -> BaseVersionError:
    return BaseVersionError(f"base version {name} fails verification: {detail}")


def open_base(model_root: Path, name: str | None = None) -> BaseVersion:
    """Version ``name`` (default: the one ``LATEST`` names) of ``model_root``, verified."""
    model_root = Path(model_root)
    if name is None:
        try:
            name = read_latest(model_root)
        except LatestError as exc:
            raise BaseVersionError(f"LATEST of {model_root} cannot be used: {exc.detail}") from exc
        if name is None:
            raise BaseVersionError(
                f"no published version under {model_root} (LATEST is missing or empty); give --base or train first"
            )
    try:
        check_version_name(name, "the base version")
    except LatestError as exc:
        raise BaseVersionError(exc.detail) from exc
    path = model_root / name
    try:
        entries = version_files.scan(path)
        contract, manifest = read_manifest(path, name)  # the format, every field, the version it names
        version_files.verify_files(path, contract.files, entries)
        version_files.check_index_assets(path, contract.files)
    except version_files.VersionFileError as exc:
        raise _fail(name, str(exc)) from exc
    except ManifestError as exc:
        raise _fail(name, f"{exc.reason}: {exc.detail}") from exc
    for rel in (
        "candidate_model/saved_model.pb",
        "query_model/saved_model.pb",
        "items.parquet",
        "item_embeddings.npy",
        "users.parquet",
        "seen.parquet",
    ):
        if rel not in contract.files:
            raise _fail(name, f"{rel} is not in it")
    base = BaseVersion(path=path, name=name, manifest=manifest)
    try:
        spec, items, emb = base.spec, base.items, base.embeddings
    except Exception as exc:
        raise _fail(name, f"cannot read it: {type(exc).__name__}: {exc}") from exc
    if emb.shape != (len(items), spec.embedding_dim) or len(items) != contract.num_items:
        raise _fail(name, f"{len(items)} items, embeddings {emb.shape}, manifest num_items {contract.num_items}")
    return base
