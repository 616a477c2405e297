"""Exact dot-product search (the reference) and queries-per-second timing."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np

from benchmarks.common import (
    median,
)
from benchmarks.index.shared import K


def exact_top_k(items: np.ndarray, queries: np.ndarray, k: int = K, chunk: int = 128) -> np.ndarray:
    """Exact dot-product top-k, best first: one BLAS matmul per chunk of queries,
    then a partial sort (argpartition) of each row."""
    out = []
    for s in range(0, len(queries), chunk):
        scores = queries[s : s + chunk] @ items.T
        part = np.argpartition(scores, -k, axis=1)[:, -k:]
        top = np.take_along_axis(scores, part, axis=1)
        out.append(np.take_along_axis(part, np.argsort(-top, axis=1, kind="stable"), axis=1))
    return np.concatenate(out, axis=0)


def exact_single(items: np.ndarray, q: np.ndarray, k: int = K) -> np.ndarray:
    """Exact top-k of one query (matrix-vector product + argpartition), best first."""
    scores = items @ q
    part = np.argpartition(scores, -k)[-k:]
    return part[np.argsort(-scores[part], kind="stable")]


def qps(fn: Callable[[], Any], n_queries: int, repeats: int, min_seconds: float = 0.3) -> tuple[float, list[float]]:
    """Median queries/s over ``repeats`` samples; each sample loops ``fn`` (which
    answers ``n_queries``) enough times to last about ``min_seconds``, so that
    fast configurations are not timed on a few milliseconds of a noisy machine."""
    start = time.perf_counter()
    fn()  # warm-up, also calibrates the loop count
    loops = max(1, int(np.ceil(min_seconds / max(time.perf_counter() - start, 1e-9))))
    per_call = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(loops):
            fn()
        per_call.append((time.perf_counter() - start) / loops)
    return n_queries / median(per_call), per_call
