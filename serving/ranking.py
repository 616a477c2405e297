"""The index's candidates of a whole micro-batch, re-scored, filtered and ordered in one compiled call.

After one ``search_batched`` call every query of the batch has a row of
candidate items. :func:`rank_candidates` drops, per query, the invalid ones
(padding, rows outside the catalog, non-finite distances), the excluded ones
(seen items, the request's ``exclude_item_ids``) and those the query's filters
refuse, scores the rest (the index's own distances when they are exact dot
products, else the exact dot product with the item embeddings), and keeps the
best ``n`` (ties: lower row first). A query whose candidates fall short of
``n`` or repeat an item is marked ``short``: it needs exact scoring over every
eligible item.

Exact re-scoring is what lets a tree + asymmetric-hashing index leave out its
own float copy of the item vectors (a quarter of a GiB at a million 64-d
items): the index returns a pool of approximate candidates, this kernel
re-scores the pool against the service's one copy, ``item_embeddings.npy``.

It is compiled with numba and runs in the inference thread without the
interpreter lock (``nogil``), so the event loop keeps answering meanwhile.
Every argument is handed over as a read-only C-contiguous array of one dtype,
so the kernel is compiled once per process (at model load, by
:func:`compile_kernel`), never on a request.
"""

from __future__ import annotations

import threading
from typing import NamedTuple

import numba
import numpy as np

_NO_FILTER = np.zeros((0, 0), dtype=np.bool_)
_NO_ROWS = np.zeros(0, dtype=np.int64)
_NO_QUERIES = np.zeros((0, 0), dtype=np.float32)
for _constant in (_NO_FILTER, _NO_ROWS, _NO_QUERIES):
    _constant.flags.writeable = False


class RankedCandidates(NamedTuple):
    """Per query ``p`` (row of the batch): ``rows[offsets[p]:offsets[p + 1]]`` best first, their ``scores``."""

    rows: np.ndarray  # int64, the kept rows of every query back to back
    scores: np.ndarray  # float32
    offsets: np.ndarray  # int64 [queries + 1]
    short: np.ndarray  # bool [queries]: too few candidates or a duplicate (nothing kept)


@numba.njit(cache=False, nogil=True, boundscheck=False, fastmath=True)
def _dot(embeddings: np.ndarray, row: np.int64, queries: np.ndarray, p: int) -> np.float32:  # pragma: no cover - compiled
    """float32 dot product of an item row and a query, vectorised (fastmath lets the sum be reordered)."""
    acc = np.float32(0.0)
    for t in range(embeddings.shape[1]):
        acc += embeddings[row, t] * queries[p, t]
    return acc


@numba.njit(cache=False, nogil=True, boundscheck=False)
def _filter_score_order(
    idx: np.ndarray,
    dist: np.ndarray,
    queries: np.ndarray,
    embeddings: np.ndarray,
    use_dist: bool,
    exclude: np.ndarray,
    exclude_offsets: np.ndarray,
    allowed: np.ndarray,
    wanted: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:  # pragma: no cover - compiled
    num_queries, width = idx.shape
    num_items = embeddings.shape[0]
    check_allowed = allowed.shape[0] == num_queries
    offsets = np.zeros(num_queries + 1, dtype=np.int64)
    short = np.zeros(num_queries, dtype=np.bool_)
    total = 0
    for p in range(num_queries):
        total += max(0, wanted[p])
    out_rows = np.empty(total, dtype=np.int64)
    out_scores = np.empty(total, dtype=np.float32)
    cand_rows = np.empty(width, dtype=np.int64)
    cand_scores = np.empty(width, dtype=np.float32)
    pos = 0
    for p in range(num_queries):
        first, last = exclude_offsets[p], exclude_offsets[p + 1]
        m = 0
        for j in range(width):
            row = np.int64(idx[p, j])
            d = dist[p, j]
            if row < 0 or row >= num_items or not np.isfinite(d):
                continue
            if check_allowed and not allowed[p, j]:
                continue
            if last > first:  # binary search in this query's sorted exclusions
                lo, hi = first, last
                while lo < hi:
                    mid = (lo + hi) >> 1
                    if exclude[mid] < row:
                        lo = mid + 1
                    else:
                        hi = mid
                if lo < last and exclude[lo] == row:
                    continue
            if use_dist:
                score = np.float32(d)
            else:
                score = _dot(embeddings, row, queries, p)
            cand_rows[m] = row
            cand_scores[m] = score
            m += 1
        n = wanted[p]
        by_row = np.argsort(cand_rows[:m])
        repeated = False
        for t in range(1, m):
            if cand_rows[by_row[t]] == cand_rows[by_row[t - 1]]:
                repeated = True
                break
        if m < n or repeated:
            short[p] = True
            offsets[p + 1] = pos
            continue
        order = np.argsort(-cand_scores[:m])
        # equal scores: lower row first (insertion sort within each run of ties; runs are short)
        t = 0
        while t < m:
            u = t + 1
            while u < m and cand_scores[order[u]] == cand_scores[order[t]]:
                u += 1
            for a in range(t + 1, u):
                key = order[a]
                b = a - 1
                while b >= t and cand_rows[order[b]] > cand_rows[key]:
                    order[b + 1] = order[b]
                    b -= 1
                order[b + 1] = key
            if u >= n:
                break
            t = u
        for t in range(n):
            c = order[t]
            out_rows[pos] = cand_rows[c]
            out_scores[pos] = cand_scores[c]
            pos += 1
        offsets[p + 1] = pos
    return out_rows[:pos], out_scores[:pos], offsets, short


def _frozen(values: np.ndarray, dtype: type) -> np.ndarray:
    """A read-only C-contiguous view (a copy only when the dtype or layout differs)."""
    out: np.ndarray = np.ascontiguousarray(values, dtype=dtype).view()
    out.flags.writeable = False
    return out


def rank_candidates(
    idx: np.ndarray,
    dist: np.ndarray,
    wanted: np.ndarray,
    exclude: list[np.ndarray],
    *,
    embeddings: np.ndarray,
    queries: np.ndarray | None,
    allowed: np.ndarray | None = None,
) -> RankedCandidates:
    """Filter, score and order ``idx``/``dist`` (one row of candidates per query).

    ``wanted[p]`` items are kept for query ``p``; ``exclude[p]`` are its sorted
    unique rows never to return; ``allowed`` (same shape as ``idx``), when given,
    is False where a filter refuses the candidate. With ``queries`` the candidates
    are scored exactly against ``embeddings``; without, ``dist`` are the scores.
    """
    idx = _frozen(idx, np.int64)
    dist = _frozen(dist, np.float32)
    if idx.ndim != 2 or idx.shape != dist.shape:
        raise ValueError(f"candidate rows {idx.shape} and distances {dist.shape} differ")
    num_queries = idx.shape[0]
    wanted = _frozen(wanted, np.int64)
    if wanted.shape != (num_queries,) or len(exclude) != num_queries:
        raise ValueError("one wanted count and one exclusion list per query")
    if allowed is not None and np.shape(allowed) != idx.shape:
        raise ValueError(f"filter mask {np.shape(allowed)} differs from the candidates {idx.shape}")
    sizes = np.fromiter((len(e) for e in exclude), dtype=np.int64, count=num_queries)
    offsets = np.zeros(num_queries + 1, dtype=np.int64)
    np.cumsum(sizes, out=offsets[1:])
    flat = np.concatenate(exclude) if offsets[-1] else _NO_ROWS
    use_dist = queries is None
    if queries is not None and np.shape(queries) != (num_queries, embeddings.shape[1]):
        raise ValueError(f"queries {np.shape(queries)} do not match {num_queries} rows of width {embeddings.shape[1]}")
    rows, scores, kept, short = _filter_score_order(
        idx,
        dist,
        _NO_QUERIES if queries is None else _frozen(queries, np.float32),
        _frozen(embeddings, np.float32),
        use_dist,
        _frozen(flat, np.int64),
        _frozen(offsets, np.int64),
        _NO_FILTER if allowed is None else _frozen(allowed, np.bool_),
        wanted,
    )
    return RankedCandidates(rows, scores, kept, short)


_compiling = threading.Lock()


def compile_kernel() -> None:
    """Compile the kernel (once per process, a few seconds) at load rather than on a request."""
    with _compiling:
        rank_candidates(
            np.zeros((1, 1), dtype=np.int64),
            np.zeros((1, 1), dtype=np.float32),
            np.ones(1, dtype=np.int64),
            [np.zeros(0, dtype=np.int64)],
            embeddings=np.zeros((1, 1), dtype=np.float32),
            queries=np.zeros((1, 1), dtype=np.float32),
            allowed=np.ones((1, 1), dtype=np.bool_),
        )
