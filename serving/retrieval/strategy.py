"""How a ranking was made: the ``strategy`` field of every answer."""

from __future__ import annotations

from enum import StrEnum


class Strategy(StrEnum):
    """The ways a ranking is made (the answers' ``strategy``; the OpenAPI schema lists the same values)."""

    PERSONAL = "personal"  # a known user: precomputed vector, or the query tower on stored features (+ overrides)
    FEATURES = "features"  # no known user: the query tower on the request's features
    POPULAR = "popular"  # nothing to go on: items by training popularity
    SIMILAR = "similar"  # an item's neighbours: its embedding is the query
    SESSION = "session"  # no known user, recent items given: the query tower on this visit's items

    # the string's own hash (C, cached), consistent with ``==`` against the plain value; Enum's
    # default hashes the member's name in Python code, paid per request in the metrics' cache
    __hash__ = str.__hash__


# strategies whose query vector comes from the query tower (or its precomputed output)
QUERY_TOWER_STRATEGIES = frozenset({Strategy.PERSONAL, Strategy.FEATURES, Strategy.SESSION})
