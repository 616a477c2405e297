"""A request's recent items (``recent_item_ids``) as the query tower's history input.

The served version's query tower reads the user's recent interactions through
one feature of kind ``history`` (``towers/history.py``): a string of item ids
joined by the feature's separator, oldest first, of which the tower keeps the
last ``history_length``. users.parquet holds each known user's history at the
end of training; a request's recent items go after it:

- a known user: stored history + the request's items, the last N kept (what
  training would have built had those interactions been in the data);
- no user id, or one the version does not know: the request's items alone.

Ids the version's catalog does not hold are left out and reported
(``ignored``); catalogs change between versions, so this is not an error. So
are ids holding the history's separator (the tower would split them). Ids the
catalog holds but training never saw reach the tower and pool to nothing
(its lookup masks them), exactly as in training. A version whose query tower
reads no history cannot take recent items: :func:`resolve_recent` raises
:class:`~serving.retrieval.errors.InvalidQuery` ``history_not_supported`` (a 422) rather than
answering as if they were not given.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from serving.model import LoadedModel
from serving.retrieval.errors import InvalidQuery


@dataclass(frozen=True, slots=True)
class RecentItems:
    """What a request's recent items become for the served version."""

    feature: str  # the history query input's name
    value: str  # the history string to feed (stored history + the given items, last N)
    rows: np.ndarray  # item rows of the given ids the version knows, in the order given (duplicates kept)
    ignored: list[str]  # the given ids left out, in the order given

    @property
    def usable(self) -> bool:
        """Whether any given item reaches the query (otherwise the request is answered as without them)."""
        return len(self.rows) > 0


def resolve_recent(model: LoadedModel, user_row: int | None, recent_item_ids: Sequence[str]) -> RecentItems:
    """The history input for a request giving ``recent_item_ids`` (non-empty, oldest first)."""
    found = model.history  # read from the manifest once, at load
    if found is None:
        names = [q.name for q in model.query_inputs]
        raise InvalidQuery(
            "history_not_supported",
            f"model version {model.version} cannot use recent_item_ids: its query tower reads no history "
            f"feature (its inputs: {names}); send the request without them",
        )
    qi, length = found
    ids = list(recent_item_ids)
    rows = model.items.ids.rows(ids) if ids else np.zeros(0, dtype=np.int64)
    keep = np.asarray([r >= 0 and qi.separator not in i for r, i in zip(rows.tolist(), ids, strict=True)], dtype=bool)
    given = [i for i, k in zip(ids, keep, strict=True) if k]
    ignored = [i for i, k in zip(ids, keep, strict=True) if not k]
    tokens = given
    if user_row is not None and given:
        stored = model.user_features[qi.name][user_row]
        if stored:
            tokens = [t for t in str(stored).split(qi.separator) if t] + given
    value = qi.separator.join(tokens[-length:])
    return RecentItems(qi.name, value, np.asarray(rows[keep], dtype=np.int64), ignored)
