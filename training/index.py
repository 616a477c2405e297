"""The ScaNN index over item embeddings: building a searcher from parameters,
searching the way the service does (candidates re-scored exactly), recall
against exact search, serialisation (``scann_ops_pybind``).

Which parameters a version gets is decided per index, at build time, on the
version's own queries: :func:`build_index` hands over to
:mod:`training.index_tuning`. :func:`index_params` is the former rule by
catalog size; it remains the first tree shape the tuning tries.
"""

from __future__ import annotations

import math
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import scann

from training.metrics import RowVectors, recall_vs_exact, top_k_indices

BRUTE_FORCE_BELOW = 20_000


@dataclass
class IndexInfo:
    """What the manifest records as ``index`` (docs/CONTRACTS.md)."""

    kind: str
    params: dict = field(default_factory=dict)
    build_seconds: float = 0.0  # the whole build, tuning included
    recall_at_10_vs_exact: float | None = None  # on the checking queries
    recall_at_100_vs_exact: float | None = None
    similar_recall_at_10_vs_exact: float | None = (
        None  # the sampled items as similar-items queries (themselves left out), checking half
    )
    us_per_query: float | None = None  # search + exact re-scoring, batches of SERVICE_BATCH, thread CPU time
    meets_target: bool = True
    tuning: dict = field(default_factory=dict)


LARGE_CATALOG = 500_000
SOAR_LAMBDA = 1.5  # ScaNN's default spilling strength (each item also sits in a second, "orthogonal" leaf)
AH_PARAMS = {"dimensions_per_block": 2, "anisotropic_quantization_threshold": 0.2}


def index_params(num_items: int) -> tuple[str, dict]:
    """The former rule by catalog size alone (now the first tree shape
    :mod:`training.index_tuning` tries, and the reference its tests beat).

    Brute force below 20,000 items. Up to half a million items the tree has
    about sqrt(n) leaves and a query visits 10% of them, re-scoring the best 100
    (250 from 300K) approximate hits exactly; above, twice as many, smaller
    leaves with SOAR spilling, 1.25% of them visited and a pool of 50. Tuned on
    the index benchmark's generated embeddings (recall@10 0.99 at 100K, 0.978
    at 1M); on trained models it misses (0.885 at 60K items), hence the tuning.
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
        **AH_PARAMS,
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


def autopilot_params(num_items: int, dim: int, k: int = 10) -> dict | None:
    """ScaNN's ``autopilot()`` suggestion (scann 1.4.2, ``suggest_autopilot``) as tree + AH
    parameters, or None where autopilot would search by brute force. Its float re-ordering
    of ``approx_num_neighbors`` becomes the pool re-scored from the item embeddings (the
    same answers, without a second float copy of the vectors in the index)."""
    db = np.zeros((1, dim), np.float32)  # autopilot reads only the sizes given to it
    config = scann.scann_ops_pybind.builder(db, k, "dot_product").autopilot().create_config()
    from scann.scann_ops.py import scann_ops_pybind as pybind

    suggested = pybind.scann_pybind.ScannNumpy.suggest_autopilot(config, num_items, dim)
    leaves = re.search(r"num_children:\s*(\d+)", suggested)
    if leaves is None:
        return None
    return {
        "num_leaves": int(leaves.group(1)),
        "num_leaves_to_search": _suggested(suggested, "max_spill_centers"),
        "training_sample_size": min(num_items, _suggested(suggested, "expected_sample_size")),
        **AH_PARAMS,
        "reorder": _suggested(suggested, "approx_num_neighbors"),
    }


def _suggested(config: str, name: str) -> int:
    """The integer field ``name`` of an autopilot tree suggestion (a ScaNN config in text form)."""
    found = re.search(rf"{name}:\s*(\d+)", config)
    if found is None:
        raise RuntimeError(f"ScaNN's autopilot suggested a tree without {name}: {config}")
    return int(found.group(1))


def search_rescored(
    searcher: scann.scann_ops_pybind.ScannSearcher,
    items: np.ndarray,
    queries: np.ndarray,
    k: int,
    pool: int = 0,
    **search_args: int | None,
) -> tuple[np.ndarray, np.ndarray]:
    """Top ``k`` rows and exact dot products per query: the searcher's best ``max(k, pool)``
    candidates re-scored against ``items`` (what the service does; ``pool`` 0 for brute force).
    ``search_args``: ScaNN's per-search arguments (``leaves_to_search``; None: the searcher's own)."""
    queries = np.ascontiguousarray(queries, dtype=np.float32)
    width = min(max(k, pool), len(items))
    idx, _ = searcher.search_batched(queries, final_num_neighbors=width, pre_reorder_num_neighbors=width, **search_args)
    idx = np.asarray(idx, dtype=np.int64)
    valid = (idx >= 0) & (idx < len(items))
    rows = np.where(valid, idx, 0)
    scores = np.einsum("qkd,qd->qk", items[rows], queries)
    scores[~valid] = -np.inf
    order = top_k_indices(scores, k)
    return np.take_along_axis(rows, order, axis=1), np.take_along_axis(scores, order, axis=1)


def build_index(
    item_embeddings: np.ndarray,
    queries: RowVectors | None = None,
    *,
    target_recall: float | None = None,
    max_us_per_query: float | None = None,
    sample_size: int | None = None,
    seed: int = 0,
    start_from: dict | None = None,
    sessions: np.ndarray | None = None,
    session_share: float = 0.0,
) -> tuple[scann.scann_ops_pybind.ScannSearcher, IndexInfo]:
    """Build the searcher whose operating point :func:`training.index_tuning.tune_index`
    chooses on ``queries`` (the version's known users' query vectors; None or few:
    item vectors top them up, see :mod:`training.index_queries`). The one path
    every command that builds an index takes (training, catalog updates, the
    benchmarks). ``start_from``: a known operating point's tree parameters
    (a catalog update's parent's), kept when it still reaches the target. ``sessions``: session
    queries' vectors (recent items only), ``session_share`` of the sample (``sample_queries``)."""
    from training.index_queries import sample_queries
    from training.index_space import TuningTarget
    from training.index_tuning import tune_index

    target = TuningTarget.with_overrides(target_recall=target_recall, max_us_per_query=max_us_per_query)
    sample = sample_queries(
        queries,
        item_embeddings,
        seed=seed,
        sessions=sessions,
        session_share=session_share,
        **({"size": sample_size} if sample_size else {}),
    )
    return tune_index(item_embeddings, sample, target, start_from=start_from)


def index_recall(
    searcher: scann.scann_ops_pybind.ScannSearcher, items: np.ndarray, queries: np.ndarray, k: int = 10, pool: int = 0
) -> float:
    """Recall@k against exact search (numpy) of what the service returns (``pool`` candidates re-scored)."""
    k = min(k, len(items))
    approx, _ = search_rescored(searcher, items, queries, k, pool)
    exact = top_k_indices(queries @ items.T, k)
    return recall_vs_exact(approx, exact)


def with_default_leaves(
    searcher: scann.scann_ops_pybind.ScannSearcher, leaves_to_search: int
) -> scann.scann_ops_pybind.ScannSearcher:
    """The same tree + AH searcher with ``leaves_to_search`` as the number of leaves a
    search visits when the caller names none (the service names none): serialised,
    that setting (``partitioning.query_spilling.max_spill_centers`` of
    ``scann_config.pb``) rewritten, loaded back. Nothing is retrained."""
    from scann.proto import scann_pb2

    with tempfile.TemporaryDirectory(prefix="scann-leaves-") as tmp:
        searcher.serialize(tmp, relative_path=True)
        path = Path(tmp) / "scann_config.pb"
        config = scann_pb2.ScannConfig()
        config.ParseFromString(path.read_bytes())
        if not config.HasField("partitioning"):
            raise ValueError("only a tree searcher has leaves to search")
        config.partitioning.query_spilling.max_spill_centers = int(leaves_to_search)
        path.write_bytes(config.SerializeToString())
        return scann.scann_ops_pybind.load_searcher(tmp)


def leaves_to_search(searcher: scann.scann_ops_pybind.ScannSearcher) -> int | None:
    """The serialised default number of leaves a search visits (None for brute force)."""
    found = re.search(r"max_spill_centers:\s*(\d+)", str(searcher.config()))
    return int(found.group(1)) if found else None


def save_searcher(searcher: scann.scann_ops_pybind.ScannSearcher, directory: Path) -> None:
    """Serialise with relative paths, so the version directory can be renamed."""
    directory.mkdir(parents=True, exist_ok=True)
    searcher.serialize(str(directory), relative_path=True)
