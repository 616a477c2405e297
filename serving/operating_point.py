"""The index's operating point as a version's manifest records it (docs/CONTRACTS.md section 3).

Training chooses it per version (``training/index_tuning.py``) and writes it into
``manifest.json``'s ``index``; the service searches with exactly it and never
derives a parameter from the catalog size. At load (``serving.model.load_version``):

* :func:`check_index_recall`: a version whose recorded recall@10 against exact
  search is below the service's floor (``ServiceSettings.min_index_recall``,
  ``RECSYS_MIN_INDEX_RECALL``) is refused, naming both numbers;
* :func:`check_operating_point`: the serialised searcher is the one the manifest
  describes (brute force or a tree; its leaves and the leaves a search visits);
* :func:`rescore_pool`: ``index.params.reorder``, the approximate candidates
  re-scored exactly per query.

:func:`index_summary` is the index as ``GET /v1/model`` shows it.

Each check raises :class:`IndexPointError`; ``serving.model`` turns it into a
``LoadError`` with the same reason, its detail prefixed with the version.
"""

from __future__ import annotations

import re
from typing import Any

# the pool of a brute-force index, whose distances are exact: used only if they were not
DEFAULT_RESCORE_POOL = 100
# what /v1/model leaves out of the manifest's index.tuning: every point and every tree tried
# (long; the manifest and the report page have them), replaced by their counts
TUNING_DETAIL = ("frontier", "trees")
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


def index_summary(index: Any) -> dict | None:
    """The manifest's ``index`` as ``/v1/model`` shows it: kind, parameters, recall and cost,
    the tuning's target, reason and queries; of the frontier and the trees tried, their counts."""
    if not isinstance(index, dict):
        return None
    out = {k: v for k, v in index.items() if k != "tuning"}
    tuning = index.get("tuning")
    if isinstance(tuning, dict):
        out["tuning"] = {k: v for k, v in tuning.items() if k not in TUNING_DETAIL}
        for name in TUNING_DETAIL:
            if isinstance(tuning.get(name), list):
                out["tuning"][f"{name}_tried"] = len(tuning[name])
    return out


def _figure(index: dict, key: str) -> float | None:
    value = index.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= float(value) <= 1.0:
        raise IndexPointError("manifest_invalid", f"index.{key} must be a number from 0 to 1, not {value!r:.40}")
    return float(value)


def check_index_recall(manifest: dict, floor: float) -> None:
    """Refuse a version whose index's recorded recall@10 against exact search (known users'
    queries, and similar-items queries where recorded) is below ``floor`` (0: no floor). A
    tree index that records no recall is refused too; brute force is exact by construction."""
    if floor <= 0:
        return
    index = manifest.get("index")
    if not isinstance(index, dict):
        raise IndexPointError(
            "index_recall_unknown", f"the manifest records no index; this service's floor is {floor:g} (min_index_recall)"
        )
    figures = [(key, what, _figure(index, key)) for key, what in RECALL_FIGURES]
    if figures[0][2] is None and index.get("kind") != "brute_force":
        raise IndexPointError(
            "index_recall_unknown",
            f"the manifest records no index.recall_at_10_vs_exact; this service's floor is {floor:g} (min_index_recall)",
        )
    for key, what, value in figures:
        if value is not None and value < floor:
            raise IndexPointError(
                "index_recall_below_floor",
                f"its index's recorded recall@10 vs exact is {value:.6g} (index.{key}, {what}), "
                f"below this service's floor {floor:g} (min_index_recall)",
            )


def rescore_pool(manifest: dict) -> int:
    """``index.params.reorder``: how many approximate candidates per query are re-scored
    exactly. A tree_ah index must name it; brute force gets :data:`DEFAULT_RESCORE_POOL`."""
    index = manifest.get("index")
    params = index.get("params") if isinstance(index, dict) else None
    value = params.get("reorder") if isinstance(params, dict) else None
    if value is None:
        if isinstance(index, dict) and index.get("kind") == "tree_ah":
            raise IndexPointError("manifest_invalid", "a tree_ah index must name index.params.reorder")
        return DEFAULT_RESCORE_POOL
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise IndexPointError("manifest_invalid", "index.params.reorder must be a positive integer")
    return value


def _serialised(config: str, field: str) -> int | None:
    found = re.search(rf"\b{field}:\s*(\d+)", config)
    return int(found.group(1)) if found else None


def check_operating_point(searcher: Any, manifest: dict) -> None:
    """The serialised searcher is the one the manifest describes: brute force without a tree;
    a tree of ``params.num_leaves`` leaves whose searches visit ``params.num_leaves_to_search``
    of them by default (the service names no leaves per call: it searches with exactly these)."""
    index = manifest.get("index")
    if not isinstance(index, dict) or not hasattr(searcher, "config"):
        return
    config = str(searcher.config())
    params = index.get("params") if isinstance(index.get("params"), dict) else {}
    has_tree = "partitioning {" in config
    kind = index.get("kind")
    if (kind == "brute_force" and has_tree) or (kind == "tree_ah" and not has_tree):
        found = "a tree" if has_tree else "no tree"
        raise IndexPointError("index_mismatch", f"the manifest says {kind}, the serialised searcher has {found}")
    if not has_tree:
        return
    for key, setting in (("num_leaves", "num_children"), ("num_leaves_to_search", "max_spill_centers")):
        wanted, served = params.get(key), _serialised(config, setting)
        if wanted is not None and served != wanted:
            raise IndexPointError(
                "index_mismatch", f"index.params.{key} is {wanted!r:.40}, the serialised searcher's is {served}"
            )
