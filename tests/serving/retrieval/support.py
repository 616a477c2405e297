"""Helpers shared by the retrieval tests."""

from types import SimpleNamespace
from typing import Any


def req(**kw: Any) -> SimpleNamespace:
    """A recommendation request as the planner reads it (``RecommendationQuery``): the fields a
    client may leave out at their defaults, ``kw`` over them."""
    base: dict[str, Any] = {
        "user_id": None,
        "features": None,
        "k": 10,
        "exclude_seen": True,
        "exclude_item_ids": [],
        "filters": None,
        "recent_item_ids": None,
    }
    return SimpleNamespace(**{**base, **kw})
