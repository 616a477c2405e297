"""The checks of a version that read no table: its name and folder, its manifest, its query inputs.

* :func:`version_dir`: the name is a version name (:mod:`artifact.latest`) and its
  folder a real folder (no symbolic link);
* :func:`read_checked_manifest`: ``manifest.json`` through :class:`artifact.manifest.Manifest`
  (another format: ``unsupported_format``; a bad field: ``manifest_invalid``, naming
  the field and the value), then the files a version must list;
* :func:`query_inputs` and :func:`history_of`: the query tower's inputs as the
  service feeds them.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from artifact.latest import LatestError, check_version_name
from artifact.manifest import Manifest, ManifestError, read_manifest
from serving.model import HISTORY_KIND, QueryInput
from serving.version import files
from serving.version.errors import LoadError
from serving.version.files import Entry, VersionFileError

REQUIRED_FILES = ("query_model/saved_model.pb", "item_embeddings.npy", "items.parquet", "users.parquet", "seen.parquet")
DEFAULT_HISTORY_LENGTH = 50  # towers.spec.FeatureSpec.history_length's default


def version_dir(model_root: Path, name: str) -> Path:
    """The folder of version ``name``; refuses names that are not version names
    and a folder that is a symbolic link."""
    try:
        check_version_name(name, "the name in LATEST")
    except LatestError as exc:
        raise LoadError(exc.reason, exc.detail, name) from exc
    path = Path(model_root) / name
    try:
        files.check_version_folder(path)
    except VersionFileError as exc:
        if exc.reason == "missing_version_dir":
            raise LoadError(exc.reason, f"LATEST names version {name}, but {name}/ does not exist", name) from exc
        raise LoadError(exc.reason, f"version {name}: {exc.detail}", name) from exc
    return path


def scan(path: Path, name: str) -> dict[str, Entry]:
    """Every entry of the folder (:func:`serving.version.files.scan`), before anything is opened."""
    try:
        return files.scan(path)
    except VersionFileError as exc:
        raise LoadError(exc.reason, f"version {name}: {exc.detail}", name) from exc


def read_checked_manifest(path: Path, name: str) -> tuple[Manifest, dict[str, Any]]:
    """The validated manifest of version ``name`` and the JSON object it holds."""
    try:
        return read_manifest(path, name)
    except ManifestError as exc:
        raise LoadError(exc.reason, exc.detail, name) from exc


def verify_files(path: Path, manifest: Manifest, name: str, entries: dict[str, Entry], pause: Callable[[], None]) -> None:
    """Every listed file with its sha256, no unlisted file (``entries``: the walk of the folder),
    and the files every version must have."""
    try:
        files.verify_files(path, manifest.files, entries, pause)
        files.check_index_assets(path, manifest.files)
    except VersionFileError as exc:
        raise LoadError(exc.reason, f"version {name}: {exc.detail}", name) from exc
    for rel in REQUIRED_FILES:
        if rel not in manifest.files:
            raise LoadError("file_missing", f"version {name}: {rel} is not listed in the manifest", name)
    if not any(rel.startswith("index/") for rel in manifest.files):
        raise LoadError("file_missing", f"version {name}: no index/ files are listed in the manifest", name)


def check_unchanged(path: Path, entries: dict[str, Entry], name: str) -> None:
    """What was loaded is what was checked: the folder holds what the first walk saw."""
    try:
        files.check_unchanged(path, entries)
    except VersionFileError as exc:
        raise LoadError(exc.reason, f"version {name}: {exc.detail}", name) from exc


def query_inputs(manifest: Manifest) -> tuple[QueryInput, ...]:
    """The query tower's inputs, their defaults filled in (``""`` / NaN) and their list separators."""
    out = []
    for spec in manifest.query_inputs:
        feature = manifest.query_feature(spec.name)
        separator = str(feature.get("separator") or "|")
        default: str | float
        if spec.dtype == "float32":
            default = float("nan") if spec.default is None else float(spec.default)
        else:
            default = "" if spec.default is None else str(spec.default)
        out.append(QueryInput(spec.name, spec.dtype, default, spec.kind, separator))
    return tuple(out)


def history_of(inputs: tuple[QueryInput, ...], manifest: Manifest) -> tuple[QueryInput, int] | None:
    """The history query input and the number of recent items its tower keeps
    (the manifest's feature spec); None when the query tower reads no history."""
    qi = next((q for q in inputs if q.kind == HISTORY_KIND), None)
    if qi is None:
        return None
    length = manifest.query_feature(qi.name).get("history_length")
    if isinstance(length, bool) or not isinstance(length, int):
        return qi, DEFAULT_HISTORY_LENGTH
    return qi, max(1, length)
