"""The index's operating point as a version's manifest records it (docs/CONTRACTS.md section 3).

Training chooses it per version (``training/index_tuning.py``) and writes it into
``manifest.json``'s ``index`` (:class:`artifact.manifest.IndexSection`, which
checks each figure's range and that a tree names its re-scoring pool); the
service searches with exactly it and never derives a parameter from the catalog
size. At load (:func:`serving.version.loader.load_version`):

* :func:`check_index_recall`: a version whose recorded recall@10 against exact
  search is below the service's floor (``ServiceSettings.min_index_recall``,
  ``RECSYS_MIN_INDEX_RECALL``) is refused, naming both numbers;
* :func:`check_operating_point`: the serialised searcher is the one the manifest
  describes (brute force or a tree; its leaves and the leaves a search visits);
* :func:`rescore_pool`: ``index.params.reorder``, the approximate candidates
  re-scored exactly per query.

Each check raises :class:`IndexPointError`; the loader turns it into a
``LoadError`` with the same reason, its detail prefixed with the version.
"""

from __future__ import annotations

import re
from typing import Any

from artifact.manifest import IndexSection

# the pool of a brute-force index, whose distances are exact: used only if they were not
DEFAULT_RESCORE_POOL = 100
# (manifest field, what it was measured on): each recorded figure is held to the floor
RECALL_FIGURES = (
    ("recall_at_10_vs_exact", "known users' queries"),
    ("similar_recall_at_10_vs_exact", "similar-items queries"),
)


class IndexPointError(Exception):
    """The manifest's index and this service disagree; ``reason`` is the LoadError reason."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


def check_index_recall(index: IndexSection | None, floor: float) -> None:
    """Refuse a version whose index's recorded recall@10 against exact search (known users'
    queries, and similar-items queries where recorded) is below ``floor`` (0: no floor). A
    tree index that records no recall is refused too; brute force is exact by construction."""
    if floor <= 0:
        return
    if index is None:
        raise IndexPointError(
            "index_recall_unknown", f"the manifest records no index; this service's floor is {floor:g} (min_index_recall)"
        )
    if index.recall_at_10_vs_exact is None and index.kind != "brute_force":
        raise IndexPointError(
            "index_recall_unknown",
            f"the manifest records no index.recall_at_10_vs_exact; this service's floor is {floor:g} (min_index_recall)",
        )
    for key, what in RECALL_FIGURES:
        value = getattr(index, key)
        if value is not None and value < floor:
            raise IndexPointError(
                "index_recall_below_floor",
                f"its index's recorded recall@10 vs exact is {value:.6g} (index.{key}, {what}), "
                f"below this service's floor {floor:g} (min_index_recall)",
            )


def rescore_pool(index: IndexSection | None) -> int:
    """``index.params.reorder``: how many approximate candidates per query are re-scored
    exactly (a tree_ah index always names it); brute force without it: :data:`DEFAULT_RESCORE_POOL`."""
    if index is None or index.params.reorder is None:
        return DEFAULT_RESCORE_POOL
    return index.params.reorder


def _serialised(config: str, field: str) -> int | None:
    """A numeric setting of the searcher's serialised configuration (ScaNN's text proto)."""
    found = re.search(rf"\b{field}:\s*(\d+)", config)
    return int(found.group(1)) if found else None


def check_operating_point(searcher: Any, index: IndexSection | None) -> None:
    """The serialised searcher is the one the manifest describes: brute force without a tree;
    a tree of ``params.num_leaves`` leaves whose searches visit ``params.num_leaves_to_search``
    of them by default (the service names no leaves per call: it searches with exactly these)."""
    if index is None or not hasattr(searcher, "config"):
        return
    config = str(searcher.config())
    has_tree = "partitioning {" in config
    if (index.kind == "brute_force" and has_tree) or (index.kind == "tree_ah" and not has_tree):
        found = "a tree" if has_tree else "no tree"
        raise IndexPointError("index_mismatch", f"the manifest says {index.kind}, the serialised searcher has {found}")
    if not has_tree:
        return
    for key, setting in (("num_leaves", "num_children"), ("num_leaves_to_search", "max_spill_centers")):
        wanted, served = getattr(index.params, key), _serialised(config, setting)
        if wanted is not None and served != wanted:
            raise IndexPointError(
                "index_mismatch", f"index.params.{key} is {wanted!r:.40}, the serialised searcher's is {served}"
            )
