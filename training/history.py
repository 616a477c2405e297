"""Users' interactions in time order, and the history a query may see of them.

Order: by user, then timestamp, then position in the interactions table (the
order ``training.split.temporal_split`` cuts; without timestamps, position
alone). A history is a window of that order over a set of *known* rows:

- a training example's history is the same user's known rows strictly before
  it in that order (never the example itself, nothing after it; ties in time
  are broken by table position), the last ``length`` of them; a test pair's
  (P1: per-pair top-K accuracy) is cut the same way from the training rows;
- a user's query history (evaluation, export, the service) is the last
  ``length`` of the user's known rows.

Windows are offsets ``[start, end)`` into the time-ordered rows, so a million
examples need two integer arrays, not a million strings; the strings are
cut into catalog rows per batch (``training.stream.shard.Examples.histories``) or
joined into strings once per user or test pair.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc


@dataclass(frozen=True)
class Windows:
    """``order[start[j]:end[j]]``: the interaction rows of window j, oldest first."""

    order: np.ndarray  # known interaction rows sorted by (user, time, position)
    start: np.ndarray
    end: np.ndarray


def _permutation(user_rows: np.ndarray, times: np.ndarray, rows: np.ndarray) -> np.ndarray:
    return np.lexsort((rows, times[rows], user_rows[rows]))


def time_order(user_rows: np.ndarray, times: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """``rows`` sorted by (user, time, position)."""
    rows = np.asarray(rows, dtype=np.int64)
    return rows[_permutation(user_rows, times, rows)]


def example_windows(user_rows: np.ndarray, times: np.ndarray, rows: np.ndarray, length: int) -> Windows:
    """Per example of ``rows`` (in the order given), its history among ``rows``:
    the same user's rows strictly before it, at most the last ``length``."""
    return windows_before(user_rows, times, rows, rows, length)


def windows_before(user_rows: np.ndarray, times: np.ndarray, known_rows: np.ndarray, rows: np.ndarray, length: int) -> Windows:
    """Per row of ``rows`` (in the order given), its history among ``known_rows``:
    the same user's known rows strictly before it in (time, position) order,
    at most the last ``length`` (a row never sees itself, known or not). A
    training example's history (``known_rows`` = the training rows) and a test
    pair's (``known_rows`` = what training knew) are cut the same way."""
    known = np.asarray(known_rows, dtype=np.int64)
    rows = np.asarray(rows, dtype=np.int64)
    both = np.r_[known, rows]
    is_known = np.r_[np.ones(len(known), dtype=bool), np.zeros(len(rows), dtype=bool)]
    # by (user, time, position), and at one position the query before the known copy
    perm = np.lexsort((is_known, both, times[both], user_rows[both]))
    sorted_known = is_known[perm]
    known_before = np.cumsum(sorted_known) - sorted_known  # known rows strictly before each sorted position
    users = user_rows[both[perm]]
    position = np.arange(len(both), dtype=np.int64)
    new_user = np.r_[True, users[1:] != users[:-1]] if len(both) else np.zeros(0, dtype=bool)
    first = np.maximum.accumulate(np.where(new_user, position, 0))  # each sorted row's user's first position
    where = np.empty(len(both), dtype=np.int64)  # sorted position of both[j]
    where[perm] = position
    at = where[len(known) :]
    end = known_before[at]
    return Windows(order=both[perm][sorted_known], start=np.maximum(known_before[first[at]], end - length), end=end)


def user_windows(user_rows: np.ndarray, times: np.ndarray, rows: np.ndarray, num_users: int, length: int) -> Windows:
    """Per user row (0..num_users-1), the last ``length`` of the user's ``rows``."""
    order = time_order(user_rows, times, rows)
    bounds = np.searchsorted(user_rows[order], np.arange(num_users + 1), side="left")
    end = bounds[1:]
    return Windows(order=order, start=np.maximum(bounds[:-1], end - length), end=end)


def window_index(start: np.ndarray, end: np.ndarray) -> np.ndarray:
    """The positions ``start[j]..end[j]-1`` of every window j, windows one after another."""
    lengths = (end - start).astype(np.int64)
    offsets = np.r_[0, np.cumsum(lengths)].astype(np.int64)
    return np.repeat(start - offsets[:-1], lengths) + np.arange(offsets[-1])


def distinct_pairs(users: np.ndarray, items: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The distinct (user, item) pairs, sorted by user then item."""
    order = np.lexsort((items, users))
    users, items = users[order], items[order]
    distinct = np.r_[True, (users[1:] != users[:-1]) | (items[1:] != items[:-1])] if len(users) else np.zeros(0, bool)
    return users[distinct], items[distinct]


def joined(item_ids: np.ndarray, item_rows: np.ndarray, windows: Windows, separator: str) -> np.ndarray:
    """Each window's item ids (``item_ids[item_rows[row]]``), oldest first, joined
    by ``separator``: an object array of str, "" for an empty window."""
    lengths = (windows.end - windows.start).astype(np.int64)
    offsets = np.r_[0, np.cumsum(lengths)].astype(np.int64)
    index = window_index(windows.start, windows.end)
    taken = pa.array(np.asarray(item_ids, dtype=object)[item_rows[windows.order[index]]], type=pa.string())
    lists = pa.LargeListArray.from_arrays(pa.array(offsets, type=pa.int64()), taken)
    return np.asarray(pc.binary_join(lists, separator).to_numpy(zero_copy_only=False), dtype=object)


__all__ = [
    "Windows",
    "distinct_pairs",
    "example_windows",
    "joined",
    "time_order",
    "user_windows",
    "window_index",
    "windows_before",
]
