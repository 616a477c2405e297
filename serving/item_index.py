"""The index step of the service: the item vectors, the ScaNN searcher and the ranking kernel.

:class:`LocalIndex` holds them for one loaded version; the engine asks it for
nothing else:

* :meth:`LocalIndex.search_ranked`: one ``search_batched`` call for a batch of
  query vectors, then the compiled kernel (:func:`serving.ranking.rank_candidates`)
  drops excluded, filtered-out and invalid candidates, scores the rest exactly
  and keeps the best ``n`` per query;
* :meth:`LocalIndex.exact`: exact scoring over every eligible item (filters that
  leave few items, or a query whose candidates ran short);
* :meth:`LocalIndex.search` and :meth:`LocalIndex.check_exact_scores`: the
  warm-up of a version at load.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np

from serving.ranking import RankedCandidates, rank_candidates

_EMPTY = np.zeros(0, dtype=np.int64)
_EMPTY.flags.writeable = False
_REORDER = re.compile(r"exact_reordering\s*\{[^}]*?approx_num_neighbors:\s*(\d+)", re.S)


class IndexOpenError(Exception):
    """The index or the item vectors of a version cannot be served; ``reason`` is a LoadError reason
    (``serving.model`` turns it into a LoadError)."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


def open_embeddings(path: Path, num_items: int, dim: int) -> np.ndarray:
    """``item_embeddings.npy`` checked against the manifest: finite float32 ``[num_items, dim]``, read-only."""
    try:
        emb = np.load(path, allow_pickle=False)
    except Exception as exc:  # noqa: BLE001 - any reader failure means the version is unusable
        raise IndexOpenError("table_unreadable", f"item_embeddings.npy: {type(exc).__name__}: {exc}") from exc
    if emb.ndim != 2 or emb.shape[0] != num_items:
        raise IndexOpenError("shape_mismatch", f"item_embeddings.npy is {emb.shape}, expected {num_items} rows")
    if emb.shape[1] != dim:
        raise IndexOpenError("shape_mismatch", f"item_embeddings.npy is {emb.shape[1]} wide, manifest embedding_dim is {dim}")
    emb = np.ascontiguousarray(emb, dtype=np.float32)
    if not np.isfinite(emb).all():
        raise IndexOpenError("table_invalid", "item_embeddings.npy holds NaN or infinite values")
    emb.flags.writeable = False
    return emb


def open_searcher(index_dir: Path, num_items: int) -> tuple[Any, int]:
    """The ScaNN searcher of ``index/`` and its exact re-ordering pool (0 if none)."""
    import scann

    try:
        searcher = scann.scann_ops_pybind.load_searcher(str(index_dir))
    except Exception as exc:  # noqa: BLE001
        raise IndexOpenError("index_unloadable", f"{type(exc).__name__}: {str(exc)[:300]}") from exc
    try:
        size = int(searcher.size())
    except Exception:  # noqa: BLE001 - older searchers may lack size()
        size = num_items
    if size != num_items:
        raise IndexOpenError("shape_mismatch", f"the index holds {size} items, manifest num_items is {num_items}")
    reorder = _REORDER.search(str(searcher.config())) if hasattr(searcher, "config") else None
    return searcher, int(reorder.group(1)) if reorder else 0


def _rank(rows: np.ndarray, scores: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """The best ``n`` by score (ties: lower row first), in order."""
    if len(rows) > n:
        part = np.argpartition(-scores, n - 1)[:n]
        # include every row tied with the n-th best so the tie-break is by row
        cutoff = scores[part].min()
        part = np.flatnonzero(scores >= cutoff)
        rows, scores = rows[part], scores[part]
    order = np.lexsort((rows, -scores))[:n]
    return rows[order], scores[order]


class LocalIndex:
    """The searcher and the item vectors of one version."""

    def __init__(self, searcher: Any, embeddings: np.ndarray, *, reorder_k: int, rescore_k: int) -> None:
        self.searcher = searcher
        self.item_embeddings = embeddings
        self.num_items = int(embeddings.shape[0])
        self.reorder_k = reorder_k
        # approximate candidates per query re-scored exactly when the index's distances are not exact
        self.rescore_k = rescore_k
        self.exact_scores = False  # set by check_exact_scores at load

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """The raw ``search_batched`` answer (rows, distances) for ``k`` neighbours."""
        queries = np.ascontiguousarray(queries, dtype=np.float32)
        idx, dist = self.searcher.search_batched(queries, final_num_neighbors=k, pre_reorder_num_neighbors=max(k, self.reorder_k))
        return np.asarray(idx), np.asarray(dist)

    def check_exact_scores(self, queries: np.ndarray, k: int = 10) -> bool:
        """Whether the index's distances are exact dot products (brute force, or an index
        re-ordering with its own float vectors): then they are used as the scores."""
        queries = np.ascontiguousarray(queries, dtype=np.float32)
        idx, dist = self.search(queries, min(k, self.num_items))
        rows = np.clip(idx, 0, self.num_items - 1)
        exact = np.einsum("qkd,qd->qk", self.item_embeddings[rows], queries)
        tolerance = 1e-4 * np.maximum(1.0, np.abs(exact))
        self.exact_scores = bool(dist.shape == exact.shape and np.all(np.abs(dist - exact) <= tolerance))
        return self.exact_scores

    def search_ranked(
        self,
        queries: np.ndarray,
        fetch: int,
        wanted: np.ndarray,
        exclude: list[np.ndarray] | None = None,
        masks: list[tuple[int, np.ndarray]] | None = None,
    ) -> RankedCandidates:
        """One ``search_batched`` call asking for ``fetch`` neighbours (or the re-scoring
        pool, if larger), then the ranking kernel; ``masks`` are (query position,
        boolean mask over items) for filtered queries.

        When the index's distances are exact dot products they are the scores and
        the index is asked for ``fetch`` neighbours. Else (tree + AH without its
        own copy of the vectors) the index returns a pool of at least
        ``rescore_k`` approximate candidates per query and every one of them is
        re-scored against the item embeddings."""
        queries = np.ascontiguousarray(queries, dtype=np.float32)
        if self.exact_scores:
            # an index re-ordering exactly needs a pool holding every neighbour asked for
            final, pool = fetch, max(fetch, self.reorder_k)
        else:
            final = pool = min(max(fetch, self.rescore_k), self.num_items)
        idx, dist = self.searcher.search_batched(queries, final_num_neighbors=final, pre_reorder_num_neighbors=pool)
        idx = np.asarray(idx)
        allowed = None
        if masks:
            allowed = np.ones(idx.shape, dtype=bool)
            rows = np.clip(idx, 0, self.num_items - 1)
            for pos, mask in masks:
                allowed[pos] = mask[rows[pos]]
        return rank_candidates(
            idx,
            np.asarray(dist),
            wanted,
            exclude if exclude is not None else [_EMPTY] * len(queries),
            embeddings=self.item_embeddings,
            queries=None if self.exact_scores else queries,
            allowed=allowed,
        )

    def exact(self, query: np.ndarray, eligible: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
        """The best ``n`` of the ``eligible`` items (boolean mask) by exact dot product."""
        rows = np.flatnonzero(eligible)
        scores = self.item_embeddings[rows] @ np.asarray(query, dtype=np.float32)
        return _rank(rows, scores, n)
