"""The ScaNN index over item embeddings: parameters by catalog size, build,
recall against exact search, serialisation (``scann_ops_pybind``)."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import scann

from training.metrics import recall_vs_exact, top_k_indices

BRUTE_FORCE_BELOW = 20_000


@dataclass
class IndexInfo:
    kind: str
    params: dict = field(default_factory=dict)
    build_seconds: float = 0.0
    recall_at_10_vs_exact: float | None = None


LARGE_CATALOG = 500_000
SOAR_LAMBDA = 1.5  # ScaNN's default spilling strength (each item also sits in a second, "orthogonal" leaf)


def index_params(num_items: int) -> tuple[str, dict]:
    """Brute force for small catalogs; tree + asymmetric hashing above, whose best
    ``reorder`` approximate hits per query are re-scored exactly against
    ``item_embeddings.npy`` (by the service and by :func:`index_recall`; the
    index keeps no float copy of the vectors itself).

    Up to half a million items the tree has about sqrt(n) leaves and a query
    visits 10% of them; the best 100 (250 from 300K) approximate hits are
    re-scored exactly: recall@10 0.99 at 100K x 64 (``python -m
    benchmarks.index``). Above, every visited leaf costs a serving request
    real time, so the tree gets twice as many, smaller leaves (2,000 at 1M)
    with SOAR spilling: each item is also filed in a second leaf, chosen so
    that a query missing its first leaf tends to hit the second, so fewer
    leaves find the same neighbours. A query visits 1.25% of the leaves (25 at
    1M) and the best 50 approximate hits are re-scored: on the serving
    benchmark's 1M catalog recall@10 0.978 at 77 us per query (search plus
    re-scoring, batches of 12, thread CPU time, medians of 5 interleaved
    passes over 2,400 known users), against 0.977 at 104 us for the former
    3% of the leaves without spilling and a pool of 100.
    """
    if num_items < BRUTE_FORCE_BELOW:
        return "brute_force", {}
    root = math.sqrt(num_items)
    spilling: dict[str, float] = {}
    if num_items >= LARGE_CATALOG:
        leaves = int(min(2 * root, 8000))
        to_search, reorder = max(20, leaves // 80), 50
        spilling = {"soar_lambda": SOAR_LAMBDA}
    else:
        leaves = int(min(max(root, 100), 4000))
        to_search, reorder = max(20, leaves // 10), 250 if num_items >= 300_000 else 100
    return "tree_ah", {
        "num_leaves": leaves,
        "num_leaves_to_search": to_search,
        "training_sample_size": int(min(num_items, 250_000)),
        "dimensions_per_block": 2,
        "anisotropic_quantization_threshold": 0.2,
        "reorder": reorder,
        **spilling,
    }


def build_searcher(item_embeddings: np.ndarray, kind: str, params: dict, k: int = 100) -> scann.scann_ops_pybind.ScannSearcher:
    """The ScaNN searcher. A tree + AH searcher gets no ``reorder`` step: that would
    serialise (and make every server hold) a second float copy of the item vectors
    beside ``item_embeddings.npy``; its candidates are re-scored from that file instead."""
    db = np.ascontiguousarray(item_embeddings, dtype=np.float32)
    builder = scann.scann_ops_pybind.builder(db, min(k, len(db)), "dot_product")
    if kind == "brute_force":
        return builder.score_brute_force().build()
    return (
        builder.tree(
            num_leaves=params["num_leaves"],
            num_leaves_to_search=params["num_leaves_to_search"],
            training_sample_size=params["training_sample_size"],
            soar_lambda=params.get("soar_lambda"),
        )
        .score_ah(params["dimensions_per_block"], anisotropic_quantization_threshold=params["anisotropic_quantization_threshold"])
        .build()
    )


def search_rescored(
    searcher: scann.scann_ops_pybind.ScannSearcher, items: np.ndarray, queries: np.ndarray, k: int, pool: int = 0, **search_args: int
) -> tuple[np.ndarray, np.ndarray]:
    """Top ``k`` rows and exact dot products per query: the searcher's best ``max(k, pool)``
    candidates re-scored against ``items`` (what the service does; ``pool`` 0 for brute force)."""
    queries = np.ascontiguousarray(queries, dtype=np.float32)
    width = min(max(k, pool), len(items))
    idx, _ = searcher.search_batched(queries, final_num_neighbors=width, **search_args)
    idx = np.asarray(idx, dtype=np.int64)
    valid = (idx >= 0) & (idx < len(items))
    rows = np.where(valid, idx, 0)
    scores = np.einsum("qkd,qd->qk", items[rows], queries)
    scores[~valid] = -np.inf
    order = top_k_indices(scores, k)
    return np.take_along_axis(rows, order, axis=1), np.take_along_axis(scores, order, axis=1)


def build_index(item_embeddings: np.ndarray, queries: np.ndarray | None = None) -> tuple[scann.scann_ops_pybind.ScannSearcher, IndexInfo]:
    """Build the searcher and measure its recall@10 against exact dot-product
    search on ``queries`` (real query embeddings)."""
    kind, params = index_params(len(item_embeddings))
    start = time.perf_counter()
    searcher = build_searcher(item_embeddings, kind, params)
    info = IndexInfo(kind=kind, params=params, build_seconds=time.perf_counter() - start)
    if queries is not None and len(queries):
        info.recall_at_10_vs_exact = index_recall(searcher, item_embeddings, queries, k=10, pool=params.get("reorder", 0))
    return searcher, info


def index_recall(
    searcher: scann.scann_ops_pybind.ScannSearcher, items: np.ndarray, queries: np.ndarray, k: int = 10, pool: int = 0
) -> float:
    """Recall@k against exact search of what the service returns (``pool`` candidates re-scored)."""
    k = min(k, len(items))
    approx, _ = search_rescored(searcher, items, queries, k, pool)
    exact = top_k_indices(queries @ items.T, k)
    return recall_vs_exact(approx, exact)


def save_searcher(searcher: scann.scann_ops_pybind.ScannSearcher, directory: Path) -> None:
    """Serialise with relative paths, so the version directory can be renamed."""
    directory.mkdir(parents=True, exist_ok=True)
    searcher.serialize(str(directory), relative_path=True)


def load_searcher(directory: Path) -> scann.scann_ops_pybind.ScannSearcher:
    return scann.scann_ops_pybind.load_searcher(str(directory))
