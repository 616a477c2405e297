"""The warm-up of a loaded version: one real query per path before it may be served.

A known user (if any) and a user of defaults only go through the query tower and
the index; the output's shape, its values (finite) and the rows the index returns
are checked, and whether the index's distances are exact dot products
(``LocalIndex.check_distances_are_scores``). Failures raise ``LoadError``
(``warmup_failed``, ``shape_mismatch``).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from serving.model import LoadedModel
from serving.version.errors import LoadError


def warm_up(model: LoadedModel) -> None:
    """Run one batch of two queries through ``model`` and check what comes back."""
    name = model.version
    columns: dict[str, list[Any]] = {qi.name: [] for qi in model.query_inputs}
    if len(model.users):
        for qi in model.query_inputs:
            columns[qi.name].append(model.user_features[qi.name][0])
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
    # brute force and re-ordered indexes return exact dot products: then the ranking uses them as they are
    model.index.check_distances_are_scores(vectors, k)
