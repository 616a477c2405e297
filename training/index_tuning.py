"""Choosing a version's ScaNN operating point at build time, on its own queries.

What FAISS's auto-tuning does (explore a small parameter space, keep the
Pareto frontier of recall against time, take the cheapest point above a
target), for tree + AH ScaNN indexes against brute force:

1. The exact top-10 of the tuning queries and top-100 of the checking queries
   (:mod:`training.index_queries`), by a brute-force searcher: the one the
   version gets if brute force wins; and of the sampled items as similar-items
   queries (the service's ``/similar``: the item's own vector, the item itself
   left out), the exact top-10 of the other items. Every recall below is
   measured on both kinds, and a setting reaches the target only where both
   do (``recall_at_10`` of a point is the lower of the two).
2. Trees, each trained once (:func:`tree_shapes`): the former rule by size
   (``training.index.index_params``); below 500K items also the same leaves
   with SOAR spilling toggled (at 1M a third tree would break the build-time
   budget of twice the former build); ScaNN's ``autopilot()`` suggestion
   where it suggests a tree (from about 200K items at 64-d).
3. Per tree and re-scoring pool (50, 100, 200, 400, and the tree's own),
   the fewest leaves searched whose recall@10 on the tuning half reaches the
   target. Leaves searched is a per-call argument of ``search_batched``, so
   nothing is retrained: the ladder is walked up until the target, the time
   budget, or a plateau (more leaves no longer help at that pool), and down
   again for larger pools. Each point is timed the way the service pays:
   ``search_batched`` on batches of :data:`SERVICE_BATCH` queries plus the
   exact re-scoring of the pool, thread CPU time.
4. Those cheapest points (and each tree's own default point where it
   reaches the target) are timed again, interleaved; in order of cost, the
   first whose recall@10 on the checking half reaches the target is the
   chosen point, unless brute force is as cheap. A point that falls short on
   the checking half makes way for the next rung of leaves above it (same
   tree and pool), which joins the queue at its own cost.
5. None: brute force where it fits the time budget; else the version misses
   its target (``meets_target`` false, the quality gate refuses it) and keeps
   the highest-recall point within the budget.

The chosen number of leaves to search is written into the serialised searcher
(``training.index.with_default_leaves``) and the pool into
``params.reorder``: the service searches with exactly those.
"""

from __future__ import annotations

import logging
import time

import numpy as np

from training.index import (
    IndexInfo,
    build_searcher,
    with_default_leaves,
)
from training.index_queries import QuerySample
from training.index_space import (
    BRUTE_FORCE_TIMING_WORK,
    MIN_TREE_ITEMS,
    PLATEAU,
    POOLS,
    TIMING_PASSES,
    TIMING_QUERIES,
    Point,
    Tree,
    TuningTarget,
    ladder,
    pareto,
    run_brute,
    run_searcher,
    tree_shapes,
    without_self,
)
from training.metrics import recall_vs_exact

log = logging.getLogger(__name__)


class _Tuner:
    """One tuning run's state: the catalog, the queries, their exact neighbours, the points tried."""

    def __init__(self, items: np.ndarray, sample: QuerySample, target: TuningTarget) -> None:
        self.items = np.ascontiguousarray(items, dtype=np.float32)
        self.sample = sample
        self.target = target
        self.k = min(10, len(items))
        self.brute = build_searcher(self.items, "brute_force", {})
        k100 = min(100, len(items))
        self.truth_tuning = np.asarray(self.brute.search_batched_parallel(sample.tuning, final_num_neighbors=self.k)[0])
        self.truth_checking = np.asarray(self.brute.search_batched_parallel(sample.checking, final_num_neighbors=k100)[0])
        # similar-items queries: the item's vector, the item itself left out (only where trees are tried)
        self.similar = len(items) >= MIN_TREE_ITEMS and len(sample.similar_tuning) > 0
        self.k_similar = min(10, len(items) - 1)
        if self.similar:
            self.similar_truth = {
                name: without_self(
                    np.asarray(self.brute.search_batched_parallel(self.items[rows], final_num_neighbors=self.k_similar + 1)[0]),
                    rows,
                    self.k_similar,
                )
                for name, rows in (("tuning", sample.similar_tuning), ("checking", sample.similar_checking))
            }
        self.trees: list[Tree] = []
        self.points: list[Point] = []
        self.caches: dict[int, dict] = {}  # per tree: (leaves, pool) -> Point
        self.rungs: dict[int, list[int]] = {}  # per tree: its ladder of leaves searched

    # ---------------------------------------------------------------- measuring
    def evaluate(self, ti: int, leaves: int, pool: int) -> Point:
        cache = self.caches.setdefault(ti, {})
        if (leaves, pool) not in cache:
            rows, us = run_searcher(
                self.trees[ti].searcher, self.items, self.sample.tuning, pool, self.k, self.target.batch_size, leaves
            )
            users = recall_vs_exact(rows, self.truth_tuning)
            point = Point(ti, leaves, pool, users, us, user_recall=users)
            if self.similar:
                point.similar_recall = self.similar_recall(point, "tuning")
                point.recall = min(users, point.similar_recall)
            cache[(leaves, pool)] = point
            self.points.append(point)
        return cache[(leaves, pool)]

    def run(self, p: Point, queries: np.ndarray, k: int) -> tuple[np.ndarray, float]:
        return run_searcher(self.trees[p.tree].searcher, self.items, queries, p.pool, k, self.target.batch_size, p.leaves)

    def reaches(self, p: Point) -> bool:
        return p.recall >= self.target.target_recall and p.us <= self.target.max_us_per_query

    def sweep(self, ti: int) -> list[Point]:
        """Per pool, the fewest leaves searched reaching the target on the tuning half."""
        tree = self.trees[ti]
        rungs = self.rungs[ti] = ladder(tree.params["num_leaves"], tree.params["num_leaves_to_search"])
        n = len(self.items)
        pools = sorted({min(p, n) for p in POOLS} | {min(tree.params["reorder"], n)})
        found = []
        start = 0
        for pool in pools:
            i = start
            if self.reaches(self.evaluate(ti, rungs[i], pool)):
                while i > 0 and self.reaches(self.evaluate(ti, rungs[i - 1], pool)):
                    i -= 1
                found.append(self.evaluate(ti, rungs[i], pool))
                start = i
                continue
            previous = None
            while True:
                here = self.evaluate(ti, rungs[i], pool)
                if self.reaches(here):
                    found.append(here)
                    break
                stalled = previous is not None and here.recall - previous.recall < PLATEAU
                if here.us > self.target.max_us_per_query or stalled or i + 1 == len(rungs):
                    break
                previous = here
                i += 1
            start = i
        own = self.evaluate(
            ti, min(tree.params["num_leaves_to_search"], tree.params["num_leaves"]), min(tree.params["reorder"], n)
        )
        own.extra["own_default"] = True
        if self.reaches(own) and own not in found:
            found.append(own)
        return found

    def retime(self, finalists: list[Point]) -> float:
        """Time the finalists again, interleaved (medians of TIMING_PASSES passes); returns brute force's us."""
        queries = self.sample.tuning[:TIMING_QUERIES]
        brute_q = self.sample.tuning[: max(self.target.batch_size, min(len(queries), BRUTE_FORCE_TIMING_WORK // len(self.items)))]
        samples: dict[int, list[float]] = {id(p): [] for p in finalists}
        brute: list[float] = []
        for _ in range(TIMING_PASSES):
            for p in finalists:
                samples[id(p)].append(self.run(p, queries, self.k)[1])
            brute.append(run_brute(self.brute, brute_q, self.k, self.target.batch_size))
        for p in finalists:
            p.retimed_us = float(np.median(samples[id(p)]))
        return float(np.median(brute))

    def next_rung(self, p: Point) -> Point | None:
        """The point one rung of leaves above ``p`` (same tree and pool), measured on the
        tuning half and timed like the finalists; None at the top of the ladder or already checked."""
        rungs = self.rungs[p.tree]
        i = rungs.index(p.leaves) if p.leaves in rungs else len(rungs)
        if i + 1 >= len(rungs):
            return None
        wider = self.evaluate(p.tree, rungs[i + 1], p.pool)
        if wider.checking_recall is not None:
            return None
        if wider.retimed_us is None:
            wider.retimed_us = float(
                np.median([self.run(wider, self.sample.tuning[:TIMING_QUERIES], self.k)[1] for _ in range(TIMING_PASSES)])
            )
        return wider

    def checking_recall(self, p: Point, k: int) -> float:
        k = min(k, len(self.items))
        rows, _ = self.run(p, self.sample.checking, k)
        return recall_vs_exact(rows, self.truth_checking[:, :k])

    def similar_recall(self, p: Point, half: str) -> float:
        """recall@10 of ``p`` on the sampled items as similar-items queries (``half``: tuning or checking)."""
        own = self.sample.similar_tuning if half == "tuning" else self.sample.similar_checking
        rows, _ = self.run(p, self.items[own], self.k_similar + 1)
        return recall_vs_exact(without_self(rows, own, self.k_similar), self.similar_truth[half])

    def check(self, p: Point) -> bool:
        """Measure ``p`` on the checking halves (users', and similar-items'); whether both reach the target."""
        p.checking_recall = self.checking_recall(p, 10)
        if self.similar:
            p.similar_checking_recall = self.similar_recall(p, "checking")
        return p.checked(self.target.target_recall)

    # ---------------------------------------------------------------- the run
    def start_from(self, params: dict) -> tuple[object, IndexInfo] | None:
        """A known operating point first (a catalog update: its parent's). Its tree is
        built once and its (leaves, pool) measured like any point; if it reaches the
        target on the checking halves of both kinds of query it is kept, and the
        search over shapes is skipped. Otherwise None, and :meth:`tune` runs with
        this tree and its points already on the frontier."""
        n = len(self.items)
        if n < MIN_TREE_ITEMS or not {"num_leaves", "num_leaves_to_search", "reorder"} <= set(params):
            return None
        shape = {k: v for k, v in params.items() if k not in ("num_leaves_to_search", "reorder")}
        shape["num_leaves"] = int(min(shape["num_leaves"], max(2, n // 2)))
        if "training_sample_size" in shape:
            shape["training_sample_size"] = int(min(shape["training_sample_size"], n))
        leaves = int(min(params["num_leaves_to_search"], shape["num_leaves"]))
        tree_params = {**shape, "num_leaves_to_search": leaves, "reorder": int(params["reorder"])}
        t0 = time.perf_counter()
        searcher = build_searcher(self.items, "tree_ah", tree_params)
        self.trees.append(Tree("parent's operating point", tree_params, searcher, time.perf_counter() - t0))
        ti = len(self.trees) - 1
        self.rungs[ti] = ladder(tree_params["num_leaves"], leaves)
        point = self.evaluate(ti, leaves, min(int(params["reorder"]), n))
        point.extra["start_from"] = True
        brute_us = self.retime([point])
        if point.retimed_us is not None and point.retimed_us <= self.target.max_us_per_query and self.check(point):
            log.info("index tuning: the parent's operating point reaches the target; shapes not searched")
            return self.finish(
                point, brute_us, True, "the parent version's operating point reaches the target on the checking queries"
            )
        return None

    def tune(self) -> tuple[object, IndexInfo]:
        finalists: list[Point] = []
        for shape, params in tree_shapes(len(self.items), self.items.shape[1]):
            t0 = time.perf_counter()
            searcher = build_searcher(self.items, "tree_ah", params)
            self.trees.append(Tree(shape, params, searcher, time.perf_counter() - t0))
            finalists += self.sweep(len(self.trees) - 1)
            log.info("index tuning: %s tree %s built in %.1fs", shape, params, self.trees[-1].build_seconds)
        brute_us = self.retime(finalists)
        chosen, reason = None, ""
        queue = sorted(finalists, key=Point.retimed)
        while queue and queue[0].retimed() <= self.target.max_us_per_query:
            p = queue.pop(0)
            if self.check(p):
                chosen, reason = p, "cheapest setting at the target on the checking queries (users' and similar-items')"
                break
            wider = self.next_rung(p)  # short on the checking half: the next rung up, same tree and pool
            if wider is not None and all(q is not wider for q in queue):
                queue = sorted([*queue, wider], key=Point.retimed)
        meets = True
        if chosen is not None and brute_us <= chosen.retimed():
            chosen, reason = None, "brute force is as cheap as the cheapest tree setting at the target"
        elif chosen is None and brute_us <= self.target.max_us_per_query:
            reason = (
                "no tree setting reaches the target within the time budget; brute force fits it"
                if self.trees
                else (f"fewer than {MIN_TREE_ITEMS:,} items: brute force")
            )
        elif chosen is None:
            meets = False
            within = [p for p in self.points if p.us <= self.target.max_us_per_query]
            if within:
                chosen = max(within, key=lambda p: (p.recall, -p.us))
                chosen.retimed_us = chosen.us
                self.check(chosen)
            kept = "kept the highest recall within the budget" if within else "nothing fits the budget: kept brute force"
            reason = (
                f"no setting reaches recall@10 {self.target.target_recall} within {self.target.max_us_per_query:g} us per query "
                f"(brute force {brute_us:.0f} us); {kept}"
            )
        return self.finish(chosen, brute_us, meets, reason)

    def finish(self, chosen: Point | None, brute_us: float, meets: bool, reason: str) -> tuple[object, IndexInfo]:
        on_frontier = {id(p) for p in pareto(self.points)}
        tuning = {
            "target_recall_at_10": self.target.target_recall,
            "max_us_per_query": self.target.max_us_per_query,
            "batch_size": self.target.batch_size,
            "queries": self.sample.describe(),
            "reason": reason,
            "brute_force_us_per_query": round(brute_us, 1),
            "trees": [{"shape": t.shape, **t.params, "build_seconds": round(t.build_seconds, 2)} for t in self.trees],
            "frontier": [{**p.record(), "pareto": id(p) in on_frontier} for p in self.points],
        }
        if chosen is None:
            info = IndexInfo(
                kind="brute_force",
                params={},
                recall_at_10_vs_exact=1.0,
                recall_at_100_vs_exact=1.0,
                similar_recall_at_10_vs_exact=1.0,
                us_per_query=round(brute_us, 1),
                meets_target=meets,
                tuning={**tuning, "chosen": "brute force"},
            )
            searcher = self.brute
        else:
            tree = self.trees[chosen.tree]
            searcher = with_default_leaves(tree.searcher, chosen.leaves)
            info = IndexInfo(
                kind="tree_ah",
                params={**tree.params, "num_leaves_to_search": chosen.leaves, "reorder": chosen.pool},
                recall_at_10_vs_exact=chosen.checking_recall,
                recall_at_100_vs_exact=self.checking_recall(chosen, 100),
                similar_recall_at_10_vs_exact=chosen.similar_checking_recall,
                us_per_query=round(chosen.retimed_us if chosen.retimed_us is not None else chosen.us, 1),
                meets_target=meets,
                tuning={**tuning, "chosen": tree.shape},
            )
        return searcher, info


def tune_index(
    items: np.ndarray, sample: QuerySample, target: TuningTarget | None = None, start_from: dict | None = None
) -> tuple[object, IndexInfo]:
    """The searcher of the chosen operating point and its :class:`IndexInfo` (with the frontier tried).

    ``start_from``: the tree parameters of a known operating point (a catalog
    update passes its parent's), tried first and kept if it reaches the target."""
    start = time.perf_counter()
    tuner = _Tuner(items, sample, target if target is not None else TuningTarget())
    warm = tuner.start_from(start_from) if start_from else None
    searcher, info = warm if warm is not None else tuner.tune()
    info.build_seconds = time.perf_counter() - start  # the whole build: exact neighbours, trees, sweeps
    return searcher, info
