"""What the quality benchmark's parts share: the targets, the tuning grids, the progress log,
and the aggregation of per-seed runs."""

from __future__ import annotations

from typing import Any

import numpy as np

from benchmarks.common import log as _log

TARGETS = {("P1", "top_100_accuracy"): 0.43, ("P2", "recall_at_10"): 0.14, ("P2", "ndcg_at_10"): 0.23}
EASE_LAMBDAS = (10.0, 25.0, 50.0, 100.0, 200.0, 300.0, 500.0, 750.0, 1000.0, 2000.0, 5000.0)
ALS_GRID = {"factors": (8, 16, 32, 64, 128, 256), "regularization": (0.1, 1.0, 10.0, 100.0), "alpha": (0.5, 1.0, 5.0, 20.0)}
ALS_ITERATIONS = (5, 10, 15, 30, 50)
ALS_BASE_ITERATIONS = 15
SVD_COMPONENTS = (8, 16, 32, 64, 128, 256, 512)
LIGHTFM_GRID = {"components": (32, 64, 128), "learning_rate": (0.05,), "item_alpha": (0.0, 1e-6)}
LIGHTFM_EPOCHS = (5, 10, 20, 40)
KNN_NEIGHBOURS = (20, 50, 100, 200, 0)  # 0 = every item
BOOTSTRAP_RESAMPLES = 1000
HEADLINE = {"P1": ("top_100_accuracy",), "P2": ("recall_at_10", "ndcg_at_10"), "P3": ("recall_at_10", "ndcg_at_10")}


def log(msg: str) -> None:
    _log("quality", msg)


def floats(d: dict[str, Any]) -> dict[str, float]:
    return {k: float(v) for k, v in d.items()}


def aggregate(runs: list[dict[str, float]]) -> dict[str, Any]:
    """``test`` is the first seed's run (seed 42, the reported figure); the
    median, min and max over every seed show the spread."""
    keys = runs[0].keys()
    return {
        "test": dict(runs[0]),
        "test_median": {k: float(np.median([r[k] for r in runs])) for k in keys},
        "test_min": {k: float(min(r[k] for r in runs)) for k in keys},
        "test_max": {k: float(max(r[k] for r in runs)) for k in keys},
    }
