"""The search space of index tuning (:mod:`training.index_tuning`): the trees tried
(:func:`tree_shapes`), the ladder of leaves searched (:func:`ladder`), one operating
point (:class:`Point`) and the Pareto frontier of recall against cost
(:func:`pareto`), and how a point and brute force are run and timed the way the
service pays (:func:`run_searcher`, :func:`run_brute`: ``search_batched`` on
batches of :data:`SERVICE_BATCH` queries plus the exact re-scoring, thread CPU time).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import scann

from training.index import SOAR_LAMBDA, autopilot_params, index_params, search_rescored

SERVICE_BATCH = 12  # queries per search_batched call the cost is measured at (the service's usual micro-batch)
MIN_TREE_ITEMS = 1_000  # below: brute force only (a tree of <= 31 leaves; brute force costs a few us a query)
POOLS = (50, 100, 200, 400)
LEAF_FRACTIONS = (0.005, 0.01, 0.02, 0.03, 0.05, 0.08, 0.12, 0.2, 0.3, 0.5)
PLATEAU = 0.002  # recall@10 gained by the next rung of leaves below which the walk up stops
TIMING_QUERIES = 240  # tuning queries each finalist is re-timed on, per pass
TIMING_PASSES = 3
BRUTE_FORCE_TIMING_WORK = 24_000_000  # items x queries scored per brute-force timing pass (bounds it at 1M items)


@dataclass(frozen=True)
class TuningTarget:
    target_recall: float = 0.95  # recall@10 vs exact on the checking queries
    max_us_per_query: float = 1_000.0  # per-query time budget (search + re-scoring at SERVICE_BATCH)
    batch_size: int = SERVICE_BATCH

    @classmethod
    def with_overrides(cls, target_recall: float | None = None, max_us_per_query: float | None = None) -> TuningTarget:
        """The defaults, with the settings given (not None) in their place."""
        default = cls()
        return cls(
            target_recall=default.target_recall if target_recall is None else target_recall,
            max_us_per_query=default.max_us_per_query if max_us_per_query is None else max_us_per_query,
        )


@dataclass
class Tree:
    shape: str  # "size rule" | "size rule, spilling toggled" | "autopilot"
    params: dict
    searcher: scann.scann_ops_pybind.ScannSearcher
    build_seconds: float


@dataclass
class Point:
    tree: int  # index into the trees
    leaves: int
    pool: int
    recall: float  # recall@10 on the tuning half: the lower of users' and similar-items'
    us: float  # us per query from the recall pass (user queries)
    retimed_us: float | None = None
    checking_recall: float | None = None  # user queries, checking half
    user_recall: float | None = None  # tuning half
    similar_recall: float | None = None  # tuning half
    similar_checking_recall: float | None = None
    extra: dict = field(default_factory=dict)

    def checked(self, target: float) -> bool:
        """Both kinds of query reach ``target`` on their checking halves."""
        return (
            self.checking_recall is not None
            and self.checking_recall >= target
            and (self.similar_checking_recall is None or self.similar_checking_recall >= target)
        )

    def retimed(self) -> float:
        """``retimed_us``, which ranking points by cost needs (set by ``retime`` and ``next_rung``)."""
        if self.retimed_us is None:
            raise RuntimeError(f"index tuning ranked a point before re-timing it: {self.record()}")
        return self.retimed_us

    def record(self) -> dict:
        out = {
            "tree": self.tree,
            "leaves_to_search": self.leaves,
            "reorder": self.pool,
            "recall_at_10": round(self.recall, 4),
            "us_per_query": round(self.us, 1),
        }
        for name, value in (("users_recall_at_10", self.user_recall), ("similar_recall_at_10", self.similar_recall)):
            if value is not None:
                out[name] = round(value, 4)
        if self.retimed_us is not None:
            out["us_per_query_retimed"] = round(self.retimed_us, 1)
        if self.checking_recall is not None:
            out["checking_recall_at_10"] = round(self.checking_recall, 4)
        if self.similar_checking_recall is not None:
            out["similar_checking_recall_at_10"] = round(self.similar_checking_recall, 4)
        return {**out, **self.extra}


def tree_shapes(num_items: int, dim: int) -> list[tuple[str, dict]]:
    """The trees tried for a catalog of ``num_items`` x ``dim``."""
    if num_items < MIN_TREE_ITEMS:
        return []
    kind, rule = index_params(num_items)
    if kind != "tree_ah":  # the former rule's brute-force range: its shape, with sqrt(n) leaves
        leaves = max(2, int(np.sqrt(num_items)))
        rule = {
            **index_params(20_000)[1],
            "num_leaves": leaves,
            "num_leaves_to_search": max(1, leaves // 10),
            "training_sample_size": num_items,
        }
    shapes = [("size rule", rule)]
    if num_items < 500_000:
        toggled = {k: v for k, v in rule.items() if k != "soar_lambda"}
        if "soar_lambda" not in rule:
            toggled["soar_lambda"] = SOAR_LAMBDA
        shapes.append(("size rule, spilling toggled", toggled))
    auto = autopilot_params(num_items, dim)
    if auto is not None:
        shapes.append(("autopilot", auto))
    return shapes


def ladder(num_leaves: int, own: int) -> list[int]:
    """Leaves-searched values tried on a tree of ``num_leaves`` leaves."""
    return sorted({max(1, round(f * num_leaves)) for f in LEAF_FRACTIONS} | {min(own, num_leaves)})


def run_searcher(
    searcher: scann.scann_ops_pybind.ScannSearcher,
    items: np.ndarray,
    queries: np.ndarray,
    pool: int,
    k: int = 10,
    batch: int = SERVICE_BATCH,
    leaves: int | None = None,
) -> tuple[np.ndarray, float]:
    """(top-k rows per query, us per query) of a tree + AH searcher as the service runs it: a
    ``search_batched`` call per ``batch`` queries for a pool re-scored exactly; thread CPU time.
    ``leaves``: leaves searched (None: the searcher's serialised default)."""
    out, spent = [], 0
    for start in range(0, len(queries), batch):
        t0 = time.thread_time_ns()
        rows, _ = search_rescored(searcher, items, queries[start : start + batch], k, pool, leaves_to_search=leaves)
        spent += time.thread_time_ns() - t0
        out.append(rows)
    return np.concatenate(out), spent / 1e3 / max(len(queries), 1)


def without_self(rows: np.ndarray, self_rows: np.ndarray, k: int) -> np.ndarray:
    """The first ``k`` of each row of neighbours other than the query item itself (a
    similar-items answer: the service re-scores its pool, leaves the item out, keeps the best k)."""
    keep = rows != self_rows[:, None]
    order = np.argsort(~keep, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(rows, order, axis=1)


def run_brute(
    searcher: scann.scann_ops_pybind.ScannSearcher, queries: np.ndarray, k: int = 10, batch: int = SERVICE_BATCH
) -> float:
    """us per query of the brute-force searcher asked for ``k`` (its distances are exact: no re-scoring)."""
    spent = 0
    for start in range(0, len(queries), batch):
        t0 = time.thread_time_ns()
        searcher.search_batched(queries[start : start + batch], final_num_neighbors=k)
        spent += time.thread_time_ns() - t0
    return spent / 1e3 / max(len(queries), 1)


def pareto(points: list[Point]) -> list[Point]:
    """Points no other point beats on both recall (>=) and time (<, or <= with more recall)."""
    return [
        p
        for p in points
        if not any((q.recall >= p.recall and q.us < p.us) or (q.recall > p.recall and q.us <= p.us) for q in points)
    ]
