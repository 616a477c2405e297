"""Load and verify one published version (docs/CONTRACTS.md section 3).

:func:`load_version` does every check before a version may be served, in this
order: the name and the folder (no symbolic link, no file the manifest does not
list: :mod:`serving.version.files`), the manifest (its format and every field:
:mod:`artifact.manifest`; the index's recorded recall against the service's
floor: :mod:`serving.version.operating_point`), the sha256 of every listed file,
the tables (:mod:`serving.version.tables`), the item vectors, the ScaNN searcher
(the one the manifest describes), the SavedModel and its signature, a warm-up
query (:mod:`serving.version.warmup`), the known users' vectors
(:mod:`serving.version.user_vectors`); after loading, that the folder did not
change meanwhile. It returns an immutable :class:`~serving.model.LoadedModel`
or raises :class:`~serving.version.errors.LoadError` with a short ``reason``.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np

from artifact.manifest import Manifest
from serving.item_index import IndexOpenError, LocalIndex, open_embeddings, open_searcher
from serving.model import LoadedModel
from serving.ranking import compile_kernel
from serving.version import verify
from serving.version.errors import LoadError
from serving.version.operating_point import IndexPointError, check_index_recall, check_operating_point, rescore_pool
from serving.version.tables import read_tables
from serving.version.user_vectors import DEFAULT_USER_VECTORS_MAX_BYTES, user_vectors
from serving.version.warmup import warm_up


def _no_pause() -> None:
    return None


def open_index(path: Path, emb: np.ndarray, manifest: Manifest, name: str) -> LocalIndex:
    """The searcher of ``index/``, checked to be the one the manifest describes, searching with
    exactly its operating point (the serialised leaves to search, ``index.params.reorder`` re-scored)."""
    try:
        rescore_k = rescore_pool(manifest.index)
        searcher = open_searcher(path / "index", len(emb))
        check_operating_point(searcher, manifest.index)
        return LocalIndex(searcher, emb, rescore_k=rescore_k)
    except IndexOpenError as exc:
        detail = f"index of {name}: {exc.detail}" if exc.reason == "index_unloadable" else exc.detail
        raise LoadError(exc.reason, detail, name) from exc
    except IndexPointError as exc:
        raise LoadError(exc.reason, f"index of {name}: {exc.detail}", name) from exc


def _query_tower(path: Path, manifest: Manifest, name: str) -> tuple[Any, Any]:
    """The query SavedModel and its ``serving_default`` function, whose inputs must be the manifest's."""
    import tensorflow as tf

    try:
        module = tf.saved_model.load(str(path / "query_model"))
        query_fn = module.signatures["serving_default"]
    except Exception as exc:
        raise LoadError("query_model_unloadable", f"query_model of {name}: {type(exc).__name__}: {str(exc)[:300]}", name) from exc
    signature = set(query_fn.structured_input_signature[1].keys())
    wanted = {spec.name for spec in manifest.query_inputs}
    if signature != wanted:
        raise LoadError(
            "signature_mismatch", f"query_model inputs {sorted(signature)} differ from manifest {sorted(wanted)}", name
        )
    return module, query_fn


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
    version leaves the cores to the one that answers (:mod:`serving.version.loader_thread`)."""
    start = time.perf_counter()
    pause()
    path = verify.version_dir(model_root, name)
    entries = verify.scan(path, name)  # refuses symbolic links and special files before anything is opened
    manifest, written = verify.read_checked_manifest(path, name)
    try:
        check_index_recall(manifest.index, min_index_recall)
    except IndexPointError as exc:
        raise LoadError(exc.reason, f"version {name}: {exc.detail}", name) from exc
    verify.verify_files(path, manifest, name, entries, pause)
    inputs = verify.query_inputs(manifest)
    tables = read_tables(path, name, manifest.num_items, inputs, pause)
    try:
        emb = open_embeddings(path / "item_embeddings.npy", manifest.num_items, manifest.embedding_dim)
    except IndexOpenError as exc:
        raise LoadError(exc.reason, exc.detail, name) from exc
    pause()
    index = open_index(
        path, emb, manifest, name
    )  # the index first (cheap to refuse), then the query tower; scann before tensorflow
    pause()
    module, query_fn = _query_tower(path, manifest, name)
    pause()
    model = LoadedModel(
        version=name,
        path=path,
        manifest=MappingProxyType(written),
        embedding_dim=manifest.embedding_dim,
        num_items=manifest.num_items,
        query_inputs=inputs,
        query_input=MappingProxyType({qi.name: qi for qi in inputs}),
        query_fn=query_fn,
        query_module=module,
        index=index,
        item_embeddings=emb,
        items=tables.items,
        popularity=tables.popularity,
        popular_order=tables.popular_order,
        users=tables.users,
        user_features=MappingProxyType(tables.user_features),
        seen=tables.seen,
        filter_columns=MappingProxyType(tables.filter_columns),
        history=verify.history_of(inputs, manifest),
    )
    warm_up(model)
    compile_kernel()  # the ranking kernel: numba compiles it once per process, here rather than on a request
    pause()
    vectors = user_vectors(model, user_vectors_max_bytes, pause)
    verify.check_unchanged(path, entries, name)
    return dataclasses.replace(model, user_vectors=vectors, load_seconds=time.perf_counter() - start, loaded_at=time.time())
