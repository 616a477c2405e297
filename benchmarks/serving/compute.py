"""The compute ceiling, in-process (no HTTP): the query tower and ScaNN, and the service's whole
inference step, per batch size; and the inference step with and without recent items."""

from __future__ import annotations

import argparse
import itertools
import time
from pathlib import Path
from typing import Any

from benchmarks.common import load_average
from benchmarks.serving.constants import REQUEST_USERS, K, log


def compute_ceiling(
    model_root: Path, batch_sizes: tuple[int, ...] = (1, 8, 32, 64), min_seconds: float = 3.0, repeats: int = 5
) -> dict[str, Any]:
    """Query tower + ScaNN (and the whole inference step) in-process, queries/s per batch size."""
    import numpy as np

    import recsys  # noqa: F401  (sets TF_USE_LEGACY_KERAS before anything imports TensorFlow)
    from artifact.latest import read_latest
    from benchmarks.common import median
    from serving.retrieval.plan import UserQuery, plan_recommendation
    from serving.retrieval.retriever import rank_jobs
    from serving.version.loader import load_version

    name = read_latest(model_root)
    if name is None:
        raise FileNotFoundError(f"no LATEST under {model_root}")
    t = time.perf_counter()
    model = load_version(model_root, name)
    load_s = time.perf_counter() - t
    users = list(itertools.islice(model.users, REQUEST_USERS))
    reqs = [UserQuery(user_id=u, k=K) for u in users]  # what the app plans for POST {"user_id": u, "k": 10}

    def columns(batch: list[str]) -> dict[str, np.ndarray]:
        cols = {}
        for qi in model.query_inputs:
            rows = np.array([model.users.get(u) for u in batch], dtype=np.int64)  # known users: never None
            vals = model.user_features[qi.name][rows]
            cols[qi.name] = np.asarray(vals, dtype=np.float32 if qi.dtype == "float32" else object)
        return cols

    def rate(fn: Any, n: int) -> float:
        fn(0)
        loops = 0
        per: list[float] = []
        for _ in range(repeats):
            start = time.perf_counter()
            done = 0
            while time.perf_counter() - start < min_seconds / repeats:
                fn(loops)
                loops += 1
                done += 1
            per.append((time.perf_counter() - start) / done)
        return n / median(per)

    out: dict[str, Any] = {"version": name, "load_seconds": load_s, "num_items": model.num_items, "per_batch": {}}
    for b in batch_sizes:
        batches = [users[(i * b) % len(users) : (i * b) % len(users) + b] for i in range(64)]
        batches = [x if len(x) == b else users[:b] for x in batches]
        cols = [columns(x) for x in batches]

        def tower_search(i: int, cols: list = cols) -> None:
            q = model.embed(cols[i % len(cols)])
            model.index.search_ranked(q, K, np.full(len(q), K))  # the service's index step (re-scoring included)

        def tower_only(i: int, cols: list = cols) -> None:
            model.embed(cols[i % len(cols)])

        def inference_step(i: int, b: int = b) -> None:
            start = (i * b) % len(reqs)
            chunk = reqs[start : start + b] if start + b <= len(reqs) else reqs[:b]
            rank_jobs([plan_recommendation(model, r) for r in chunk])

        out["per_batch"][str(b)] = {
            "tower_plus_scann_qps": rate(tower_search, b),
            "tower_only_qps": rate(tower_only, b),
            "engine_qps": rate(inference_step, b),
        }
        log(f"compute ceiling {model.num_items:,} items, batch {b}: {out['per_batch'][str(b)]}")
    return out


def compute_recent(model_root: Path, recent: int, batch: int = 32, rounds: int = 40) -> dict[str, Any]:
    """The service's inference step in-process (``plan_recommendation`` + ``rank_jobs``, no HTTP) on
    batches of ``batch`` known-user requests, each carrying ``recent`` recent items (the
    query tower runs for each) or none (precomputed vectors): milliseconds per batch,
    median and 95th percentile over ``rounds`` batches of each, interleaved."""
    import numpy as np

    import recsys  # noqa: F401  (sets TF_USE_LEGACY_KERAS before anything imports TensorFlow)
    from artifact.latest import read_latest
    from benchmarks.catalog import item_id
    from serving.retrieval.plan import plan_recommendation
    from serving.retrieval.retriever import rank_jobs
    from serving.version.loader import load_version

    name = read_latest(model_root)
    if name is None:
        raise FileNotFoundError(f"no LATEST under {model_root}")
    model = load_version(model_root, name)
    users = list(itertools.islice(model.users, REQUEST_USERS))
    rng = np.random.default_rng(19)

    def req(uid: str, items: list[str]) -> Any:
        return argparse.Namespace(
            user_id=uid, features=None, k=K, exclude_seen=True, exclude_item_ids=[], filters=None, recent_item_ids=items
        )

    times: dict[str, list[float]] = {"recent_items": [], "no_recent_items": []}
    for r in range(rounds + 2):  # the first two warm up
        chunk = [users[(r * batch + j) % len(users)] for j in range(batch)]
        visits = [[item_id(int(x)) for x in rng.integers(0, model.num_items, recent)] for _ in chunk]
        for kind in times:
            t = time.perf_counter()
            rank_jobs(
                [
                    plan_recommendation(model, req(u, v if kind == "recent_items" else []))
                    for u, v in zip(chunk, visits, strict=True)
                ]
            )
            if r >= 2:
                times[kind].append(1000 * (time.perf_counter() - t))
    out: dict[str, Any] = {
        "version": name,
        "num_items": model.num_items,
        "batch": batch,
        "recent_items": recent,
        "load_average": load_average(),
    }
    for kind, ms in times.items():
        out[kind] = {"ms_per_batch_p50": float(np.median(ms)), "ms_per_batch_p95": float(np.percentile(ms, 95))}
    return out
