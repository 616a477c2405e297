"""Load and verify one published version (docs/CONTRACTS.md section 3).

:func:`load_version` does every check before a version may be served: the name,
the folder (no symbolic link, no file the manifest does not list:
:mod:`serving.version_files`), the manifest (and the index's recorded recall
against the service's floor: :mod:`serving.operating_point`), the sha256 of every listed file,
the tables, the SavedModel, the ScaNN searcher (the one the manifest describes),
the shapes and a warm-up query;
after loading, that the folder did not change meanwhile. It returns an immutable
:class:`LoadedModel` holding everything a request needs, precomputed once, or
raises :class:`LoadError` with a short machine-readable ``reason``.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from serving import version_files
from serving.filter_columns import filter_column, is_list_cell, is_missing_cell
from serving.ids import DuplicateIdError, IdIndex
from serving.item_index import IndexOpenError, LocalIndex, open_embeddings, open_searcher
from serving.items import ItemMetadata
from serving.operating_point import IndexPointError, check_index_recall, check_operating_point, index_summary, rescore_pool
from serving.ranking import compile_kernel
from serving.seen import SeenRows, SeenRowsError
from serving.version_files import Entry, VersionFileError

log = logging.getLogger("serving")

SCHEMA_VERSION = 1
LATEST = "LATEST"
VERSION_NAME = re.compile(r"^[0-9]{1,20}$")
REQUIRED_FILES = ("query_model/saved_model.pb", "item_embeddings.npy", "items.parquet", "users.parquet", "seen.parquet")
RESERVED_KEYS = frozenset({"item_id", "score", "rank"})


class LoadError(Exception):
    """A version that must not be served; ``reason`` is a short label for metrics."""

    def __init__(self, reason: str, detail: str, version: str | None = None) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail
        self.version = version


@dataclass(frozen=True)
class QueryInput:
    name: str
    dtype: str  # "string" | "float32"
    default: str | float
    kind: str | None
    separator: str


@dataclass(frozen=True)
class LoadedModel:
    """One verified version, everything precomputed. Never mutated after load."""

    version: str
    path: Path
    manifest: MappingProxyType
    embedding_dim: int
    num_items: int
    query_inputs: tuple[QueryInput, ...]
    query_input: MappingProxyType  # name -> QueryInput (request features are checked against it)
    query_fn: Any  # the SavedModel's serving_default concrete function
    query_module: Any  # keeps the loaded SavedModel alive
    index: LocalIndex  # the ScaNN searcher, its pool sizes and the exact re-scoring over item_embeddings
    item_embeddings: np.ndarray  # float32 [num_items, dim], read-only
    items: ItemMetadata  # item ids (id <-> row) and JSON-ready metadata columns
    popularity: np.ndarray  # float64 [num_items]
    popular_order: np.ndarray  # rows by popularity desc, then row
    users: IdIndex  # user_id <-> row of users.parquet
    user_features: MappingProxyType  # query input name -> numpy column over users
    seen: SeenRows  # user row -> sorted item rows seen in training
    filter_columns: MappingProxyType  # column -> serving.filter_columns.FilterColumn
    # the history query input and how many recent items its tower keeps (None: no history feature)
    history: tuple[QueryInput, int] | None = None
    loaded_at: float = field(default_factory=time.time)
    load_seconds: float = 0.0
    # query-tower output of every known user (their users.parquet features), computed at load
    # when it fits the budget: a known user's request then needs no TensorFlow call at all
    user_vectors: np.ndarray | None = None

    def embed(self, columns: dict[str, np.ndarray]) -> np.ndarray:
        """Run the query tower on one batch: ``columns`` maps every input to a 1-D array."""
        import tensorflow as tf

        tensors = {}
        for qi in self.query_inputs:
            col = columns[qi.name]
            tensors[qi.name] = tf.constant(col, dtype=tf.float32 if qi.dtype == "float32" else tf.string)
        out = self.query_fn(**tensors)["embedding"]
        return np.asarray(out.numpy(), dtype=np.float32)

    def summary(self) -> dict:
        m = self.manifest
        metrics = dict(m.get("metrics") or {})
        training = metrics.get("training")
        if isinstance(training, dict):  # per-epoch history is long and not a summary
            metrics["training"] = {k: v for k, v in training.items() if k != "history"}
        if "index" in metrics:  # metrics.json's copy of the index: summarised as the manifest's (below)
            metrics["index"] = index_summary(metrics["index"])
        return {
            "model_version": self.version,
            "created_at": m.get("created_at"),
            "loaded_at": self.loaded_at,
            "load_seconds": round(self.load_seconds, 3),
            "embedding_dim": self.embedding_dim,
            "num_items": self.num_items,
            "user_vectors_precomputed": self.user_vectors is not None,
            "num_users": m.get("num_users"),
            "similarity": m.get("similarity", "dot"),
            "query_inputs": [{"name": q.name, "dtype": q.dtype, "kind": q.kind, "default": q.default} for q in self.query_inputs],
            "candidate_inputs": list(m.get("candidate_inputs") or []),
            "filterable": {name: col.kind for name, col in self.filter_columns.items()},
            "dataset": m.get("dataset"),
            "kind": m.get("kind"),
            "parent_version": m.get("parent_version"),
            "index": index_summary(m.get("index")),
            "metrics": metrics,
            "libraries": m.get("libraries"),
        }


# --------------------------------------------------------------------------- helpers


def read_latest(model_root: Path) -> str | None:
    """The name LATEST holds, stripped; None when there is no LATEST or it is empty.

    LATEST is read with a size cap (``serving.version_files.LATEST_MAX_BYTES``)."""
    try:
        return version_files.read_latest(model_root)
    except VersionFileError as exc:
        raise LoadError(exc.reason, exc.detail) from exc


def version_dir(model_root: Path, name: str) -> Path:
    """The folder of version ``name``; refuses names that are not plain version numbers
    and a folder that is a symbolic link."""
    if not VERSION_NAME.match(name):
        shown = name[:80].encode("unicode_escape").decode("ascii")
        raise LoadError("invalid_version_name", f"LATEST names {shown!r}, which is not a version number", name)
    path = Path(model_root) / name
    try:
        version_files.check_version_folder(path)
    except VersionFileError as exc:
        if exc.reason == "missing_version_dir":
            raise LoadError(exc.reason, f"LATEST names version {name}, but {name}/ does not exist", name) from exc
        raise LoadError(exc.reason, f"version {name}: {exc.detail}", name) from exc
    return path


def _read_manifest(path: Path, name: str) -> dict:
    mpath = path / "manifest.json"
    if not mpath.is_file():
        raise LoadError("manifest_missing", f"version {name} has no manifest.json", name)
    try:
        manifest = json.loads(mpath.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise LoadError("manifest_invalid", f"manifest.json of {name} is not valid JSON: {exc}", name) from exc
    if not isinstance(manifest, dict):
        raise LoadError("manifest_invalid", f"manifest.json of {name} is not an object", name)
    if manifest.get("schema_version") != SCHEMA_VERSION:
        raise LoadError(
            "schema_version",
            f"version {name} has schema_version {manifest.get('schema_version')!r}; this service reads {SCHEMA_VERSION}",
            name,
        )
    if str(manifest.get("version")) != name:
        raise LoadError("version_mismatch", f"manifest of {name} says version {manifest.get('version')!r}", name)
    for key in ("embedding_dim", "num_items"):
        if not isinstance(manifest.get(key), int) or manifest[key] < 1:
            raise LoadError("manifest_invalid", f"manifest of {name}: {key} must be a positive integer", name)
    if not isinstance(manifest.get("files"), dict) or not manifest["files"]:
        raise LoadError("manifest_invalid", f"manifest of {name} lists no files", name)
    if not isinstance(manifest.get("query_inputs"), list) or not manifest["query_inputs"]:
        raise LoadError("manifest_invalid", f"manifest of {name} has no query_inputs", name)
    if manifest.get("similarity", "dot") != "dot":
        raise LoadError("manifest_invalid", f"similarity {manifest.get('similarity')!r} is not supported (dot only)", name)
    kind, parent = manifest.get("kind"), manifest.get("parent_version")
    if kind is not None and not (isinstance(kind, str) and 0 < len(kind) <= 64):
        raise LoadError(
            "manifest_invalid", f"manifest of {name}: kind must be a short string such as 'training', not {kind!r:.40}", name
        )
    if parent is not None and not (isinstance(parent, str) and VERSION_NAME.match(parent)):
        raise LoadError(
            "manifest_invalid", f"manifest of {name}: parent_version must be a version name, not {parent!r:.40}", name
        )
    return manifest


def _verify_files(path: Path, manifest: dict, name: str, entries: dict[str, Entry], pause: Callable[[], None]) -> None:
    """Every listed file with its sha256, no unlisted file (``entries``: the walk of the folder)."""
    files: dict = manifest["files"]
    try:
        version_files.verify_files(path, files, entries, pause)
        version_files.check_index_assets(path, files)
    except VersionFileError as exc:
        raise LoadError(exc.reason, f"version {name}: {exc.detail}", name) from exc
    for rel in REQUIRED_FILES:
        if rel not in files:
            raise LoadError("file_missing", f"version {name}: {rel} is not listed in the manifest", name)
    if not any(str(rel).startswith("index/") for rel in files):
        raise LoadError("file_missing", f"version {name}: no index/ files are listed in the manifest", name)


def _scan(path: Path, name: str) -> dict[str, Entry]:
    try:
        return version_files.scan(path)
    except VersionFileError as exc:
        raise LoadError(exc.reason, f"version {name}: {exc.detail}", name) from exc


def _query_inputs(manifest: dict, name: str) -> tuple[QueryInput, ...]:
    separators: dict[str, str] = {}
    spec = manifest.get("feature_spec")
    if isinstance(spec, dict):
        for f in (spec.get("query") or {}).get("features") or []:
            if isinstance(f, dict) and "name" in f:
                separators[f["name"]] = str(f.get("separator") or "|")
    out = []
    for entry in manifest["query_inputs"]:
        if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
            raise LoadError("manifest_invalid", f"manifest of {name}: malformed query input {entry!r:.80}", name)
        dtype = entry.get("dtype")
        if dtype not in ("string", "float32"):
            raise LoadError("manifest_invalid", f"query input {entry['name']}: dtype {dtype!r} is not string/float32", name)
        default = entry.get("default", "" if dtype == "string" else float("nan"))
        if dtype == "float32":
            try:
                default = float("nan") if default is None else float(default)
            except (TypeError, ValueError) as exc:
                message = f"query input {entry['name']}: default {default!r} is not a number"
                raise LoadError("manifest_invalid", message, name) from exc
        else:
            default = "" if default is None else str(default)
        out.append(QueryInput(entry["name"], dtype, default, entry.get("kind"), separators.get(entry["name"], "|")))
    return tuple(out)


def _user_column(users: pd.DataFrame, qi: QueryInput) -> np.ndarray:
    col = users[qi.name]
    if qi.dtype == "float32":
        arr = pd.to_numeric(col, errors="coerce").to_numpy(dtype=np.float32, na_value=np.nan)
    else:

        def cell(v: Any) -> str:
            if is_list_cell(v):
                return qi.separator.join(str(x) for x in v)
            if is_missing_cell(v):
                return ""
            return str(v)

        arr = np.array([cell(v) for v in col.tolist()], dtype=object)
    arr.flags.writeable = False
    return arr


# --------------------------------------------------------------------------- loading


HISTORY_KIND = "history"
DEFAULT_HISTORY_LENGTH = 50  # towers.spec.FeatureSpec.history_length's default


def history_of(query_inputs: tuple[QueryInput, ...], manifest: dict) -> tuple[QueryInput, int] | None:
    """The history query input and the number of recent items its tower keeps
    (the manifest's feature spec); None when the query tower reads no history."""
    qi = next((q for q in query_inputs if q.kind == HISTORY_KIND), None)
    if qi is None:
        return None
    length = DEFAULT_HISTORY_LENGTH
    spec = manifest.get("feature_spec")
    features = ((spec or {}).get("query") or {}).get("features") if isinstance(spec, dict) else None
    for f in features or []:
        if isinstance(f, dict) and f.get("name") == qi.name and isinstance(f.get("history_length"), int):
            length = max(1, int(f["history_length"]))
    return qi, length


DEFAULT_USER_VECTORS_MAX_BYTES = 512 << 20


def _no_pause() -> None:
    return None


def load_version(
    model_root: Path,
    name: str,
    *,
    user_vectors_max_bytes: int = DEFAULT_USER_VECTORS_MAX_BYTES,
    pause: Callable[[], None] = _no_pause,
    min_index_recall: float = 0.0,
) -> LoadedModel:
    """Verify and load version ``name`` under ``model_root``; raise :class:`LoadError` if unusable.

    ``min_index_recall``: a version whose recorded index recall@10 vs exact is below it is
    refused (:func:`check_index_recall`), before any file is hashed.

    Known users' query vectors are precomputed when ``num_users * dim * 4`` is
    at most ``user_vectors_max_bytes`` (0: never). ``pause`` is called between
    the steps of the load (every few MiB hashed, every table, every chunk of
    user vectors): the service passes a pacer there so that loading a new
    version leaves the cores to the one that answers (``serving.runtime``)."""
    start = time.perf_counter()
    pause()
    path = version_dir(model_root, name)
    entries = _scan(path, name)  # refuses symbolic links and special files before anything is opened
    manifest = _read_manifest(path, name)
    try:
        check_index_recall(manifest, min_index_recall)
        pool = rescore_pool(manifest)
    except IndexPointError as exc:
        raise LoadError(exc.reason, f"version {name}: {exc.detail}", name) from exc
    _verify_files(path, manifest, name, entries, pause)
    dim = int(manifest["embedding_dim"])
    num_items = int(manifest["num_items"])
    query_inputs = _query_inputs(manifest, name)

    # tables
    try:
        item_table = pq.read_table(path / "items.parquet")
        users = pd.read_parquet(path / "users.parquet")
        seen_table = pq.read_table(path / "seen.parquet")
    except Exception as exc:
        raise LoadError("table_unreadable", f"version {name}: {type(exc).__name__}: {exc}", name) from exc
    pause()
    if item_table.num_rows != num_items:
        raise LoadError(
            "shape_mismatch", f"items.parquet has {item_table.num_rows} rows, manifest num_items is {num_items}", name
        )
    try:
        emb = open_embeddings(path / "item_embeddings.npy", num_items, dim)
    except IndexOpenError as exc:
        raise LoadError(exc.reason, exc.detail, name) from exc
    pause()
    for columns, col in (
        (item_table.column_names, "item_id"),
        (users.columns, "user_id"),
        (seen_table.column_names, "user_id"),
        (seen_table.column_names, "item_rows"),
    ):
        if col not in columns:
            raise LoadError("table_invalid", f"version {name}: a table lacks the column {col}", name)
    if "popularity" not in item_table.column_names:
        raise LoadError("table_invalid", "items.parquet lacks the popularity column", name)
    try:
        item_ids = IdIndex(pc.cast(item_table.column("item_id"), pa.large_string()))
    except (DuplicateIdError, ValueError, pa.ArrowException) as exc:
        raise LoadError("table_invalid", f"items.parquet item_id: {exc} (ids must be unique, non-null strings)", name) from exc
    pause()
    user_id_strings = [str(v) for v in users["user_id"].tolist()]
    try:
        user_index = IdIndex(user_id_strings)
    except DuplicateIdError as exc:
        raise LoadError("table_invalid", "users.parquet has duplicate user_id values", name) from exc
    pause()
    missing = [qi.name for qi in query_inputs if qi.name != "user_id" and qi.name not in users.columns]
    if missing:
        raise LoadError("table_invalid", f"users.parquet lacks query input columns {missing}", name)

    # per-version lookups, computed once
    if "user_id" in [qi.name for qi in query_inputs]:
        users = users.assign(user_id=user_id_strings)
    user_features = {qi.name: _user_column(users, qi) for qi in query_inputs}
    del users, user_id_strings
    try:
        seen = SeenRows.from_table(seen_table, user_index, num_items)
    except (SeenRowsError, pa.ArrowException) as exc:
        raise LoadError("table_invalid", f"seen.parquet: {exc}", name) from exc
    del seen_table
    pause()
    popularity = pd.to_numeric(item_table.column("popularity").to_pandas(), errors="coerce").fillna(0).to_numpy(dtype=np.float64)
    popular_order = np.lexsort((np.arange(num_items), -popularity)).astype(np.int64)
    popularity.flags.writeable = False
    popular_order.flags.writeable = False
    meta_cols = [c for c in item_table.column_names if c not in RESERVED_KEYS]
    try:
        item_meta = ItemMetadata.from_table(item_ids, item_table, skip=RESERVED_KEYS)
    except (ValueError, pa.ArrowException) as exc:
        raise LoadError("table_invalid", f"items.parquet metadata: {exc}", name) from exc
    pause()
    filter_columns = {}
    for col in meta_cols:
        fc = filter_column(str(col), item_table.column(col))
        if fc is not None:
            filter_columns[str(col)] = fc
    del item_table
    pa.default_memory_pool().release_unused()  # the Parquet read buffers
    pause()

    # the index first (cheap to refuse), then the query tower; scann before tensorflow
    index = _open_index(path, emb, pool, manifest, name)
    pause()

    import tensorflow as tf

    try:
        module = tf.saved_model.load(str(path / "query_model"))
        query_fn = module.signatures["serving_default"]
    except Exception as exc:
        raise LoadError("query_model_unloadable", f"query_model of {name}: {type(exc).__name__}: {str(exc)[:300]}", name) from exc
    pause()
    signature = set(query_fn.structured_input_signature[1].keys())
    wanted = {qi.name for qi in query_inputs}
    if signature != wanted:
        raise LoadError(
            "signature_mismatch", f"query_model inputs {sorted(signature)} differ from manifest {sorted(wanted)}", name
        )
    model = LoadedModel(
        version=name,
        path=path,
        manifest=MappingProxyType(manifest),
        embedding_dim=dim,
        num_items=num_items,
        query_inputs=query_inputs,
        query_input=MappingProxyType({qi.name: qi for qi in query_inputs}),
        query_fn=query_fn,
        query_module=module,
        index=index,
        item_embeddings=emb,
        items=item_meta,
        popularity=popularity,
        popular_order=popular_order,
        users=user_index,
        user_features=MappingProxyType(user_features),
        seen=seen,
        filter_columns=MappingProxyType(filter_columns),
        history=history_of(query_inputs, manifest),
    )
    _warm_up(model)
    compile_kernel()  # the ranking kernel: numba compiles it once per process, here rather than on a request
    pause()
    object.__setattr__(model, "user_vectors", _user_vectors(model, user_vectors_max_bytes, pause))
    try:  # what was loaded is what was checked
        version_files.check_unchanged(path, entries)
    except VersionFileError as exc:
        raise LoadError(exc.reason, f"version {name}: {exc.detail}", name) from exc
    object.__setattr__(model, "load_seconds", time.perf_counter() - start)
    object.__setattr__(model, "loaded_at", time.time())
    return model


def _open_index(path: Path, emb: np.ndarray, rescore_k: int, manifest: dict, name: str) -> LocalIndex:
    """The searcher of ``index/``, checked to be the one the manifest describes, searching with
    exactly its operating point (the serialised leaves to search, ``rescore_k`` re-scored)."""
    try:
        searcher, reorder_k = open_searcher(path / "index", len(emb))
        check_operating_point(searcher, manifest)
        return LocalIndex(searcher, emb, reorder_k=reorder_k, rescore_k=rescore_k)
    except IndexOpenError as exc:
        detail = f"index of {name}: {exc.detail}" if exc.reason == "index_unloadable" else exc.detail
        raise LoadError(exc.reason, detail, name) from exc
    except IndexPointError as exc:
        raise LoadError(exc.reason, f"index of {name}: {exc.detail}", name) from exc


def _user_vectors(model: LoadedModel, max_bytes: int, pause: Callable[[], None], chunk: int = 4096) -> np.ndarray | None:
    """The query tower run once over every known user, in chunks; None when over budget."""
    n, dim = len(model.users), model.embedding_dim
    if n == 0 or n * dim * 4 > max_bytes:
        return None
    out = np.empty((n, dim), dtype=np.float32)
    try:
        for start in range(0, n, chunk):
            columns = {qi.name: model.user_features[qi.name][start : start + chunk] for qi in model.query_inputs}
            out[start : start + chunk] = model.embed(columns)
            pause()
    except Exception as exc:
        message = f"query model of {model.version} failed on the known users: {type(exc).__name__}: {str(exc)[:300]}"
        raise LoadError("warmup_failed", message, model.version) from exc
    if not np.isfinite(out).all():
        raise LoadError("warmup_failed", "query model returned NaN or infinite embeddings for known users", model.version)
    out.flags.writeable = False
    return out


def _warm_up(model: LoadedModel) -> None:
    """One real query per path: a known user (if any) and a user of defaults only."""
    name = model.version
    columns: dict[str, list] = {qi.name: [] for qi in model.query_inputs}
    if len(model.users):
        row = 0
        for qi in model.query_inputs:
            columns[qi.name].append(model.user_features[qi.name][row])
    for qi in model.query_inputs:
        columns[qi.name].append(qi.default)
    arrays = {
        qi.name: np.asarray(columns[qi.name], dtype=np.float32 if qi.dtype == "float32" else object) for qi in model.query_inputs
    }
    try:
        vectors = model.embed(arrays)
    except Exception as exc:
        message = f"query model of {name} failed on a warm-up batch: {type(exc).__name__}: {str(exc)[:300]}"
        raise LoadError("warmup_failed", message, name) from exc
    n = len(arrays[model.query_inputs[0].name])
    if vectors.ndim != 2 or vectors.shape[0] != n or vectors.shape[1] != model.embedding_dim:
        raise LoadError(
            "shape_mismatch", f"query model output is {tuple(vectors.shape)}, expected ({n}, {model.embedding_dim})", name
        )
    if not np.isfinite(vectors).all():
        raise LoadError("warmup_failed", "query model returned NaN or infinite embeddings", name)
    k = min(10, model.num_items)
    try:
        idx, _ = model.index.search(vectors, k)
    except Exception as exc:
        message = f"index of {name} failed a warm-up search: {type(exc).__name__}: {str(exc)[:300]}"
        raise LoadError("warmup_failed", message, name) from exc
    if idx.shape[0] != n or (idx.size and (idx.min() < 0 or idx.max() >= model.num_items)):
        raise LoadError("warmup_failed", f"index of {name} returned rows outside the catalog", name)
    # brute force and re-ordered indexes return exact dot products: then the engine uses them as they are
    model.index.check_exact_scores(vectors, k)
