"""What a run needs of its interactions, computed from the prepared shards one at a time.

A shard holds every interaction of its users (:mod:`training.stream.prepare`), so each
per-user result is computed inside one shard with the in-memory functions of
:mod:`training.history` and the shards' results are put side by side. Memory: one
shard's rows plus the result (per item or per user, or the rows of the users asked
for), whatever the size of the log.

- :func:`item_counts` / :func:`user_counts`: interactions per item / user row in some parts;
- :func:`latest_items`: each user's last ``length`` item rows in some parts, oldest first;
- :func:`seen_by_shard`: each user's distinct item rows in some parts, a shard at a time;
- :func:`part_pairs`: the (user, item, position) of the rows of some parts (for sampling
  test or validation pairs): 20 bytes a row, not the 33 of a whole row;
- :func:`gather`: every row of some users, for the scored users of an evaluation.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from training.history import Windows, distinct_pairs, user_windows, window_index
from training.stream.prepare import Prepared
from training.stream.shard import ShardRows, read_shard


@dataclass(frozen=True)
class UserLists:
    """Per user row ``u``, the item rows ``items[offsets[u]:offsets[u + 1]]``."""

    offsets: np.ndarray  # int64, num_users + 1
    items: np.ndarray  # int32: item rows

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    def windows(self) -> Windows:
        """The lists as windows over ``items`` (:func:`training.history.joined` with ``item_rows=items``)."""
        return Windows(order=np.arange(len(self.items), dtype=np.int64), start=self.offsets[:-1], end=self.offsets[1:])

    def of(self, users: np.ndarray) -> list[np.ndarray]:
        """The lists of ``users`` (views into ``items``)."""
        return [self.items[self.offsets[u] : self.offsets[u + 1]] for u in np.asarray(users, dtype=np.int64)]

    def take(self, users: np.ndarray) -> UserLists:
        """The lists of ``users`` only, in that order (user ``users[k]`` becomes row k)."""
        users = np.asarray(users, dtype=np.int64)
        start, end = self.offsets[users], self.offsets[users + 1]
        return UserLists(offsets=np.r_[0, np.cumsum(end - start)].astype(np.int64), items=self.items[window_index(start, end)])


@dataclass(frozen=True)
class ShardLists:
    """One shard's lists: user rows ``users`` (ascending), ``users[k]``'s item rows
    ``items[offsets[k]:offsets[k + 1]]``."""

    users: np.ndarray
    offsets: np.ndarray
    items: np.ndarray


def shards(prepared: Prepared) -> Iterator[ShardRows]:
    for file in prepared.files():
        yield read_shard(file)


def _counts(prepared: Prepared, parts: tuple[int, ...], column: str, size: int) -> np.ndarray:
    out = np.zeros(size, dtype=np.int64)
    for shard in shards(prepared):
        out += np.bincount(getattr(shard, column)[shard.rows_of(*parts)], minlength=size)
    return out


def item_counts(prepared: Prepared, parts: tuple[int, ...]) -> np.ndarray:
    """Per item row, its interactions in ``parts``."""
    return _counts(prepared, parts, "item_rows", prepared.num_items)


def user_counts(prepared: Prepared, parts: tuple[int, ...]) -> np.ndarray:
    """Per user row, its interactions in ``parts``."""
    return _counts(prepared, parts, "user_rows", prepared.num_users)


def latest_items(prepared: Prepared, parts: tuple[int, ...], length: int) -> UserLists:
    """Per user row, the last ``length`` item rows of its interactions in ``parts``, oldest
    first (in (time, position) order, :func:`training.history.user_windows`). The lists'
    lengths come from the counts, so each shard's lists go straight to their place in the
    result: memory is the result and one shard's rows."""
    offsets = np.r_[0, np.cumsum(np.minimum(user_counts(prepared, parts), length))].astype(np.int64)
    items = np.empty(int(offsets[-1]), dtype=np.int32)  # a list per user of a million: half the memory of int64
    for shard in shards(prepared):
        w = user_windows(shard.user_rows, shard.times, shard.rows_of(*parts), prepared.num_users, length)
        taken = w.order[window_index(w.start, w.end)]  # by user row, each user's items together, oldest first
        users = shard.user_rows[taken]
        within = np.arange(len(users)) - np.searchsorted(users, users)  # each item's place in its user's list
        items[offsets[users] + within] = shard.item_rows[taken]
    return UserLists(offsets=offsets, items=items)


def seen_by_shard(prepared: Prepared, parts: tuple[int, ...]) -> Iterator[ShardLists]:
    """Each user's distinct item rows in ``parts``, ascending, one shard at a time (for a table
    written a shard at a time): each shard's users with interactions in ``parts``."""
    for shard in shards(prepared):
        users, items = distinct_pairs(shard.user_rows[shard.rows_of(*parts)], shard.item_rows[shard.rows_of(*parts)])
        present, first = np.unique(users, return_index=True)
        yield ShardLists(present.astype(np.int64), np.r_[first, len(users)].astype(np.int64), items.astype(np.int32))


def _concat(pieces: list[ShardRows]) -> ShardRows:
    if not pieces:
        empty = np.zeros(0, np.int64)
        return ShardRows(empty, empty, empty, empty, np.zeros(0, np.int8))
    rows = ShardRows(*(np.concatenate([getattr(p, f) for p in pieces]) for f in ShardRows.__dataclass_fields__))
    return rows.take(np.argsort(rows.positions, kind="stable"))


@dataclass(frozen=True)
class PartPairs:
    """The rows of some parts, in position order: what sampling pairs and users reads."""

    user_rows: np.ndarray  # int64, as every user row array of the run
    item_rows: np.ndarray  # int32
    positions: np.ndarray  # int64

    def __len__(self) -> int:
        return len(self.positions)


def part_pairs(prepared: Prepared, parts: tuple[int, ...]) -> PartPairs:
    """The user row, item row and position of every row of ``parts``, in position order."""
    users_of, items_of, positions_of = [], [], []
    for shard in shards(prepared):
        rows = shard.rows_of(*parts)
        users_of.append(shard.user_rows[rows])
        items_of.append(shard.item_rows[rows].astype(np.int32))
        positions_of.append(shard.positions[rows])
    if not positions_of:
        return PartPairs(np.zeros(0, np.int64), np.zeros(0, np.int32), np.zeros(0, np.int64))
    positions = np.concatenate(positions_of)
    del positions_of
    order = np.argsort(positions, kind="stable")
    positions = positions[order]
    users = np.concatenate(users_of)[order]
    del users_of
    return PartPairs(users, np.concatenate(items_of)[order], positions)


def gather(prepared: Prepared, users: np.ndarray) -> ShardRows:
    """Every row (all parts) of the user rows ``users``, in position order."""
    wanted = np.zeros(prepared.num_users, dtype=bool)
    wanted[np.asarray(users, dtype=np.int64)] = True
    pieces = []
    for shard in shards(prepared):
        pieces.append(shard.take(np.flatnonzero(wanted[shard.user_rows])))
    return _concat(pieces)


__all__ = [
    "PartPairs",
    "ShardLists",
    "UserLists",
    "gather",
    "item_counts",
    "latest_items",
    "part_pairs",
    "seen_by_shard",
    "shards",
    "user_counts",
]
