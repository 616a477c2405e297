"""Whether the tuned setting is on the frontier of the points measured."""

from __future__ import annotations

from typing import Any


def verdict(points: list[dict[str, Any]], params: dict, noise: float = 0.10) -> dict[str, Any]:
    """Is the chosen point on the good side of the curve? Alternatives that are
    faster by more than ``noise`` at no lower recall, or more accurate at no
    lower speed (within ``noise``)."""
    chosen = next(p for p in points if p["chosen"])
    faster = [
        p
        for p in points
        if p["recall_at_10"] >= chosen["recall_at_10"] and p["qps_batched"] > chosen["qps_batched"] * (1 + noise)
    ]
    better = [
        p
        for p in points
        if p["recall_at_10"] > chosen["recall_at_10"] + 0.005 and p["qps_batched"] >= chosen["qps_batched"] * (1 - noise)
    ]
    frontier = [
        p
        for p in points
        if not any(q["recall_at_10"] >= p["recall_at_10"] and q["qps_batched"] > p["qps_batched"] and q is not p for q in points)
    ]
    return {
        "chosen": chosen,
        "on_pareto_frontier": chosen in frontier,
        "faster_at_same_or_better_recall": sorted(faster, key=lambda p: -p["qps_batched"]),
        "more_recall_at_same_or_better_speed": sorted(better, key=lambda p: -p["recall_at_10"]),
        "pareto_frontier": sorted(frontier, key=lambda p: p["recall_at_10"]),
    }


# --------------------------------------------------------------------------- trained models
