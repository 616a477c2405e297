"""The index step of the service: the item vectors, the ScaNN searcher and the ranking kernel.

:class:`LocalIndex` holds them for one loaded version; the retrieval path
(:mod:`serving.retrieval.execute`) asks it for nothing else:

* :meth:`LocalIndex.search_ranked`: one ``search_batched`` call for a batch of
  query vectors, then the compiled kernel (:func:`serving.ranking.rank_candidates`)
  drops excluded, filtered-out and invalid candidates, scores the rest exactly
  and keeps the best ``n`` per query. Given one over-fetch per query, queries
  whose search widths differ a lot are searched in separate calls (see
  :meth:`LocalIndex.search_groups`), so one wide query never widens the others';
* :meth:`LocalIndex.scan`: a full scan, scoring every eligible item exactly (filters that
  leave few items, or a query whose candidates ran short), in chunks of
  ``scan_chunk_rows`` rows that bound the memory it copies and let a request
  that is no longer wanted stop it;
* :meth:`LocalIndex.usable_queries`: which query vectors can be scored at all
  (finite, and no dot product with an item overflows float32);
* :meth:`LocalIndex.search` and :meth:`LocalIndex.check_distances_are_scores`: the
  warm-up of a version at load.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from serving.ranking import RankedCandidates, rank_candidates

_EMPTY = np.zeros(0, dtype=np.int64)
_EMPTY.flags.writeable = False
_FLOAT32_MAX = float(np.finfo(np.float32).max)
# searches up to this wide share one search_batched call whatever their widths: below it a
# narrower call saves less than a second call costs (a few hundred candidates' re-scoring
# per query against the call's own overhead)
GROUP_WIDTH = 256
# eligible rows scored per step of a full scan (their vectors are copied: 16 MiB at 64-d)
SCAN_CHUNK_ROWS = 1 << 16


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
    except Exception as exc:
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


def open_searcher(index_dir: Path, num_items: int) -> Any:
    """The ScaNN searcher of ``index/``, checked to hold ``num_items`` items."""
    import scann

    try:
        searcher = scann.scann_ops_pybind.load_searcher(str(index_dir))
    except Exception as exc:
        raise IndexOpenError("index_unloadable", f"{type(exc).__name__}: {str(exc)[:300]}") from exc
    try:
        size = int(searcher.size())
    except Exception:
        size = num_items
    if size != num_items:
        raise IndexOpenError("shape_mismatch", f"the index holds {size} items, manifest num_items is {num_items}")
    return searcher


def _best_n(rows: np.ndarray, scores: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """The best ``n`` by score (ties: lower row first), in order."""
    if len(rows) > n:
        part = np.argpartition(-scores, n - 1)[:n]
        # include every row tied with the n-th best so the tie-break is by row
        cutoff = scores[part].min()
        part = np.flatnonzero(scores >= cutoff)
        rows, scores = rows[part], scores[part]
    order = np.lexsort((rows, -scores))[:n]
    return rows[order], scores[order]


def _max_norm(embeddings: np.ndarray, chunk: int = 1 << 15) -> float:
    """The largest row norm, in chunks (short steps: a hot swap's load shares the
    interpreter lock with the serving loop), in float64 where float32 overflows."""
    best = 0.0
    for start in range(0, len(embeddings), chunk):
        block = embeddings[start : start + chunk]
        sq = float(np.einsum("ij,ij->i", block, block).max())
        if not np.isfinite(sq):
            wide = block.astype(np.float64)
            sq = float(np.einsum("ij,ij->i", wide, wide).max())
        best = max(best, sq)
    return float(np.sqrt(best))


def _merge(parts: list[tuple[np.ndarray, RankedCandidates]], num_queries: int) -> RankedCandidates:
    """One :class:`RankedCandidates` for ``num_queries`` queries from the results of several
    calls, each given with the query positions it answered."""
    counts = np.zeros(num_queries, dtype=np.int64)
    starts = np.zeros(num_queries, dtype=np.int64)
    short = np.zeros(num_queries, dtype=bool)
    base = 0
    for positions, part in parts:
        counts[positions] = np.diff(part.offsets)
        starts[positions] = base + part.offsets[:-1]
        short[positions] = part.short
        base += len(part.rows)
    offsets = np.zeros(num_queries + 1, dtype=np.int64)
    np.cumsum(counts, out=offsets[1:])
    take = np.repeat(starts - offsets[:-1], counts) + np.arange(int(offsets[-1]))
    rows = np.concatenate([part.rows for _, part in parts])[take]
    scores = np.concatenate([part.scores for _, part in parts])[take]
    return RankedCandidates(rows, scores, offsets, short)


class LocalIndex:
    """The searcher and the item vectors of one version."""

    def __init__(
        self,
        searcher: Any,
        embeddings: np.ndarray,
        *,
        rescore_k: int,
        group_width: int = GROUP_WIDTH,
        scan_chunk_rows: int = SCAN_CHUNK_ROWS,
    ) -> None:
        self.searcher = searcher
        self.item_embeddings = embeddings
        self.num_items = int(embeddings.shape[0])
        # approximate candidates per query re-scored exactly when the index's distances are not exact
        self.rescore_k = rescore_k
        self.distances_are_scores = False  # set by check_distances_are_scores at load
        self.group_width = group_width
        self.scan_chunk_rows = scan_chunk_rows
        # the longest item vector: a query whose norm times this stays within float32 has finite scores
        self.max_item_norm = _max_norm(embeddings)

    def usable_queries(self, queries: np.ndarray) -> np.ndarray:
        """Per query vector: True when it is finite and no dot product with an item can
        overflow float32 (``|q . e| <= |q| |e|``), so its scores are finite and rankable."""
        q = np.asarray(queries, dtype=np.float64)
        norms = np.sqrt(np.einsum("ij,ij->i", q, q))
        with np.errstate(over="ignore", invalid="ignore"):
            usable: np.ndarray = np.isfinite(norms) & (norms * self.max_item_norm <= _FLOAT32_MAX)
        return usable

    def search_width(self, fetch: int) -> int:
        """How many neighbours ``search_batched`` returns per query when ``fetch`` are wanted."""
        return fetch if self.distances_are_scores else min(max(fetch, self.rescore_k), self.num_items)

    def _common_width(self) -> int:
        """Searches up to this wide share one call: ``group_width``, or the index's own pool if larger."""
        return max(self.group_width, self.search_width(0), 1)

    def search_groups(self, fetch: Sequence[int] | np.ndarray) -> list[np.ndarray]:
        """Query positions that share a ``search_batched`` call, given each query's over-fetch.

        Every query whose search width is at most ``group_width`` (or the index's own
        pool, if larger) is in the first group: the usual batch is one call. Wider
        ones go by powers of two above that, so a query is searched at most twice as
        wide as it asked for, and a wide one never widens the usual queries' search."""
        fetch = np.asarray(fetch, dtype=np.int64)
        widths = fetch if self.distances_are_scores else np.minimum(np.maximum(fetch, self.rescore_k), self.num_items)
        base = self._common_width()
        if len(widths) == 0 or int(widths.max()) <= base:
            return [np.arange(len(widths))]
        buckets = np.ceil(np.log2(np.maximum(widths, base) / base))
        return [np.flatnonzero(buckets == b) for b in np.unique(buckets)]

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """The raw ``search_batched`` answer (rows, distances) for ``k`` neighbours."""
        queries = np.ascontiguousarray(queries, dtype=np.float32)
        idx, dist = self.searcher.search_batched(queries, final_num_neighbors=k, pre_reorder_num_neighbors=k)
        return np.asarray(idx), np.asarray(dist)

    def check_distances_are_scores(self, queries: np.ndarray, k: int = 10) -> bool:
        """Whether the index's distances are exact dot products (brute force): then they are
        used as the scores."""
        queries = np.ascontiguousarray(queries, dtype=np.float32)
        idx, dist = self.search(queries, min(k, self.num_items))
        rows = np.clip(idx, 0, self.num_items - 1)
        dots = np.einsum("qkd,qd->qk", self.item_embeddings[rows], queries)
        tolerance = 1e-4 * np.maximum(1.0, np.abs(dots))
        self.distances_are_scores = bool(dist.shape == dots.shape and np.all(np.abs(dist - dots) <= tolerance))
        return self.distances_are_scores

    def search_ranked(
        self,
        queries: np.ndarray,
        fetch: int | Sequence[int],
        wanted: np.ndarray,
        exclude: list[np.ndarray] | None = None,
        masks: list[tuple[int, np.ndarray]] | None = None,
    ) -> RankedCandidates:
        """The ranked candidates of every query. ``fetch``: neighbours wanted, one number
        for all queries (one call) or one per query (one call per
        :meth:`search_groups` group, the results merged back in query order)."""
        if isinstance(fetch, (int, np.integer)):
            return self._search_ranked(queries, int(fetch), wanted, exclude, masks)
        top = int(max(fetch))
        if self.search_width(top) <= self._common_width():  # the usual batch: one call, plain ints
            return self._search_ranked(queries, top, wanted, exclude, masks)
        groups = self.search_groups(fetch)
        if len(groups) == 1:
            return self._search_ranked(queries, top, wanted, exclude, masks)
        fetches = np.asarray(fetch, dtype=np.int64)
        wanted = np.asarray(wanted, dtype=np.int64)
        parts = []
        for positions in groups:
            local = {int(pos): i for i, pos in enumerate(positions)}
            part = self._search_ranked(
                np.asarray(queries)[positions],
                int(fetches[positions].max()),
                wanted[positions],
                [exclude[pos] for pos in positions] if exclude is not None else None,
                [(local[pos], mask) for pos, mask in masks or () if pos in local],
            )
            parts.append((positions, part))
        return _merge(parts, len(fetches))

    def _search_ranked(
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
        width = self.search_width(fetch)
        idx, dist = self.searcher.search_batched(queries, final_num_neighbors=width, pre_reorder_num_neighbors=width)
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
            queries=None if self.distances_are_scores else queries,
            allowed=allowed,
        )

    def scan(
        self, query: np.ndarray, eligible: np.ndarray, n: int, still_wanted: Callable[[], bool] | None = None
    ) -> tuple[np.ndarray, np.ndarray] | None:
        """The best ``n`` of the ``eligible`` items (boolean mask) by exact dot product.

        Scored ``scan_chunk_rows`` eligible rows at a time (the copy of their vectors
        stays bounded, the best ``n`` so far are kept); when there are several chunks,
        ``still_wanted()`` is asked before each, and when it says no the work stops: None."""
        rows = np.flatnonzero(eligible)
        query = np.asarray(query, dtype=np.float32)
        step = max(1, self.scan_chunk_rows)
        if len(rows) <= step:
            return _best_n(rows, self.item_embeddings[rows] @ query, n)
        best_rows, best_scores = _EMPTY, np.zeros(0, dtype=np.float32)
        for start in range(0, len(rows), step):
            if still_wanted is not None and not still_wanted():
                return None
            chunk = rows[start : start + step]
            scores = self.item_embeddings[chunk] @ query
            # the best n so far and this chunk's: ties still go to the lower row
            best_rows, best_scores = _best_n(np.concatenate([best_rows, chunk]), np.concatenate([best_scores, scores]), n)
        return best_rows, best_scores
