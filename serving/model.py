"""One loaded version as the service holds it: :class:`LoadedModel` (docs/CONTRACTS.md section 3).

Built by :func:`serving.version.loader.load_version` once every check has passed,
with everything a request needs precomputed; never mutated after construction
(a swap replaces the whole object). ``serving.version.describe`` formats it for
``GET /v1/model``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np

from serving.filter_columns import FilterColumn
from serving.ids import IdIndex
from serving.item_index import LocalIndex
from serving.items import ItemMetadata
from serving.seen import SeenRows

HISTORY_KIND = "history"  # the feature kind of a query input that is the user's recent items (towers/history.py)


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
    manifest: MappingProxyType[str, Any]  # manifest.json as written, validated by artifact.manifest.Manifest
    embedding_dim: int
    num_items: int
    query_inputs: tuple[QueryInput, ...]
    query_input: MappingProxyType[str, QueryInput]  # name -> QueryInput (request features are checked against it)
    query_fn: Any  # the SavedModel's serving_default concrete function
    query_module: Any  # keeps the loaded SavedModel alive
    index: LocalIndex  # the ScaNN searcher, its pool sizes and the exact re-scoring over item_embeddings
    item_embeddings: np.ndarray  # float32 [num_items, dim], read-only
    items: ItemMetadata  # item ids (id <-> row) and JSON-ready metadata columns
    popularity: np.ndarray  # float64 [num_items]
    popular_order: np.ndarray  # rows by popularity desc, then row
    users: IdIndex  # user_id <-> row of users.parquet
    user_features: MappingProxyType[str, np.ndarray]  # query input name -> numpy column over users
    seen: SeenRows  # user row -> sorted item rows seen in training
    filter_columns: MappingProxyType[str, FilterColumn]  # item metadata column -> its filter index
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

        tensors: dict[str, Any] = {}
        for qi in self.query_inputs:
            col = columns[qi.name]
            tensors[qi.name] = tf.constant(col, dtype=tf.float32 if qi.dtype == "float32" else tf.string)
        out = self.query_fn(**tensors)["embedding"]
        return np.asarray(out.numpy(), dtype=np.float32)
