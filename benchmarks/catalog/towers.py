"""Towers over the generated catalog whose weights are set, not trained: a known user's query
vector is its generated vector, an item's candidate vector its generated embedding."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import numpy as np
import pandas as pd

from benchmarks.catalog.data import GeneratedCatalog


def catalog_spec(dim: int = 64, history_length: int = 0) -> Any:
    """Storefront-like query features, ids-only candidate tower; with ``history_length``
    also the users' recent items (``recent_item_ids``, mean of the candidate tower's
    item vectors: the shared table), so that requests carrying recent items run the
    query tower (the serving benchmark's ``--recent-items``)."""
    from towers.spec import FeatureKind, FeatureSpec, HistoryPooling, ModelSpec, TowerSpec, history_feature

    history = (
        [history_feature(dim, history_length=history_length, shared_embedding=True, pooling=HistoryPooling.MEAN)]
        if history_length
        else []
    )
    return ModelSpec(
        embedding_dim=dim,
        query=TowerSpec(
            features=[
                FeatureSpec(name="user_id", kind=FeatureKind.ID, embedding_dim=dim),
                FeatureSpec(name="age", kind=FeatureKind.NUMERIC, embedding_dim=8, buckets=6),
                FeatureSpec(name="country", kind=FeatureKind.CATEGORICAL, embedding_dim=8),
                FeatureSpec(name="segment", kind=FeatureKind.CATEGORICAL, embedding_dim=8),
                *history,
            ]
        ),
        candidate=TowerSpec(features=[FeatureSpec(name="item_id", kind=FeatureKind.ID, embedding_dim=dim)]),
    )


def _set_lookup_rows(layer: Any, ids: np.ndarray, vectors: np.ndarray, oov: np.ndarray) -> None:
    """Put ``vectors[i]`` in the embedding row the layer's StringLookup gives ``ids[i]``."""
    import tensorflow as tf

    rows = layer.lookup(tf.constant(ids)).numpy()
    table = np.zeros((int(layer.embed.input_dim), vectors.shape[1]), dtype=np.float32)
    table[0] = oov
    table[rows] = vectors
    if (rows == 0).any():
        raise AssertionError(f"{int((rows == 0).sum())} ids fell into the OOV bucket of {layer.name}")
    layer.embed.set_weights([table])


@contextlib.contextmanager
def array_vocabularies() -> Iterator[None]:
    """Build lookup layers with numpy vocabularies instead of Python lists, for the duration.

    ``towers.features`` hands ``StringLookup`` its vocabulary as a Python list;
    tf_keras tracks a list attribute as a ``ListWrapper`` and SavedModel export
    then walks it element by element (about 0.75 ms per entry on the benchmark
    machine: 79 s for a 100K-item tower, over 10 minutes for 1M). The same
    values as a numpy array export in seconds and give identical outputs, so the
    generated versions use that (and the serving benchmark is not held up by an
    export problem it does not measure). See the serving benchmark's report.
    """
    import towers.features as features

    original = features._vocabulary

    def as_array(values: np.ndarray | features.TokenCounts, max_tokens: int | None) -> np.ndarray:
        return np.asarray(original(values, max_tokens), dtype=object)

    features._vocabulary = as_array
    try:
        yield
    finally:
        features._vocabulary = original


def build_towers(cat: GeneratedCatalog, spec: Any) -> tuple[Any, Any, dict, dict]:
    """Query and candidate towers whose weights reproduce the generated vectors."""
    from towers.tower import build_tower, input_defaults, tower_inputs

    dim = spec.embedding_dim
    user_inputs = tower_inputs(spec.query, cat.users)
    item_inputs = tower_inputs(spec.candidate, cat.items)
    history = "recent_item_ids" in user_inputs
    with array_vocabularies():
        candidate = build_tower(spec.candidate, item_inputs, dim, "candidate")
        shared = candidate.get_layer("item_id_id") if history else None
        query = build_tower(spec.query, user_inputs, dim, "query", shared_item_ids=shared)
    rng = np.random.default_rng(cat.seed + 1)

    # query: user-id block passes through the projection; the other features add a small offset
    _set_lookup_rows(query.get_layer("user_id_id"), user_inputs["user_id"], cat.user_vectors, np.zeros(dim, np.float32))
    for name in ("country_categorical", "segment_categorical"):
        layer = query.get_layer(name)
        w = layer.embed.get_weights()[0]
        layer.embed.set_weights([rng.standard_normal(w.shape).astype(np.float32)])
    proj = query.get_layer("query_projection")
    kernel, bias = proj.get_weights()
    # the other feature blocks add an offset of about 0.3 per dimension (below the 0.5 spread of a cluster),
    # so a known user's query stays near its generated vector and the index sees in-distribution queries
    others = kernel.shape[0] - dim
    new_kernel = (0.3 / np.sqrt(max(others, 1)) * rng.standard_normal(kernel.shape)).astype(np.float32)
    new_kernel[:dim] = np.eye(dim, dtype=np.float32)  # the user_id block comes first in the concatenation
    if history:  # the last block: half the mean of the recent items' vectors, so a click pulls the query its way
        new_kernel[-dim:] = 0.5 * np.eye(dim, dtype=np.float32)
    proj.set_weights([new_kernel, np.zeros_like(bias)])

    # candidate: plain embedding table (ids only, width == dim) holding the item vectors (shared by the history)
    _set_lookup_rows(candidate.get_layer("item_id_id"), item_inputs["item_id"], cat.item_embeddings, np.zeros(dim, np.float32))
    return query, candidate, input_defaults(spec.query, user_inputs), input_defaults(spec.candidate, item_inputs)


def check_towers(cat: GeneratedCatalog, query: Any, candidate: Any, sample: int = 64) -> None:
    """The towers reproduce the generated vectors for known users and items (a few rows)."""
    import tensorflow as tf

    u = cat.users.iloc[:sample]
    # country/segment/age offsets ride on top of the user vector: compare against the tower's own output
    # with the user block alone, i.e. check the user block of the projection is the identity
    inputs = _query_inputs(u)
    with_user = query(inputs).numpy()
    inputs["user_id"] = tf.constant(np.asarray([""] * len(u), dtype=object))
    without_user = query(inputs).numpy()
    if not np.allclose(with_user - without_user, cat.user_vectors[:sample], atol=1e-4):
        raise AssertionError("the query tower does not reproduce the generated user vectors")
    items = tf.constant(cat.items["item_id"].iloc[:sample].to_numpy(dtype=object))
    if not np.allclose(candidate({"item_id": items}).numpy(), cat.item_embeddings[:sample], atol=1e-6):
        raise AssertionError("the candidate tower does not reproduce the item embeddings")


def query_vectors(query: Any, users: pd.DataFrame) -> np.ndarray:
    """The query tower's output for known users (their stored features), as the service computes it."""
    return np.asarray(query(_query_inputs(users)).numpy(), dtype=np.float32)


def _query_inputs(users: pd.DataFrame) -> dict[str, Any]:
    import tensorflow as tf

    inputs = {
        "user_id": tf.constant(users["user_id"].to_numpy(dtype=object)),
        "age": tf.constant(users["age"].to_numpy(dtype=np.float32)),
        "country": tf.constant(users["country"].to_numpy(dtype=object)),
        "segment": tf.constant(users["segment"].to_numpy(dtype=object)),
    }
    if "recent_item_ids" in users.columns:
        inputs["recent_item_ids"] = tf.constant(users["recent_item_ids"].to_numpy(dtype=object))
    return inputs
