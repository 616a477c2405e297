"""A valid manifest (artifact.manifest.Manifest) for tests that need one without training a model."""

from __future__ import annotations

import copy
from typing import Any

DIGEST = "ab" * 32

_BASE: dict[str, Any] = {
    "schema_version": 2,
    "version": "1795425276",
    "kind": "training",
    "parent_version": None,
    "created_at": "2026-11-23T12:00:00+00:00",
    "embedding_dim": 8,
    "num_items": 30,
    "num_users": 12,
    "similarity": "dot",
    "query_inputs": [
        {"name": "user_id", "dtype": "string", "kind": "categorical", "default": ""},
        {"name": "age", "dtype": "float32", "kind": "numeric", "default": 34.5},
    ],
    "candidate_inputs": [{"name": "item_id", "dtype": "string", "kind": "categorical", "default": ""}],
    "feature_spec": {"embedding_dim": 8, "query": {"features": [{"name": "user_id"}, {"name": "age"}]}},
    "dataset": {"source": "synthetic", "fingerprint": "f" * 64, "num_interactions": 400},
    "training": {"epochs": 1},
    "index": {
        "kind": "tree_ah",
        "params": {"num_leaves": 6, "num_leaves_to_search": 2, "reorder": 20, "dimensions_per_block": 2},
        "build_seconds": 0.5,
        "recall_at_10_vs_exact": 0.97,
        "recall_at_100_vs_exact": 0.9,
        "similar_recall_at_10_vs_exact": 0.95,
        "us_per_query": 31.0,
        "meets_target": True,
        "tuning": {"target_recall_at_10": 0.95, "frontier": []},
    },
    "metrics": {"evaluation": {"split": "temporal", "model": {"recall_at_10": 0.2}, "popularity": {"recall_at_10": 0.1}}},
    "libraries": {"python": "3.11.7"},
    "files": {"items.parquet": DIGEST, "index/ah_codebook.pb": DIGEST},
}


def manifest_dict(version: str = "1795425276", **changes: Any) -> dict[str, Any]:
    """A deep copy of a valid manifest of ``version`` with top-level ``changes`` applied."""
    out = copy.deepcopy(_BASE)
    out["version"] = version
    out.update(changes)
    return out
