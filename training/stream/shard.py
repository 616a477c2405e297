"""One prepared shard in memory: its rows in position order, and the examples of a part
with their histories, cut by the same function as the in-memory path
(:func:`training.history.windows_before`).

A shard holds every interaction of its users (:mod:`training.stream.prepare`), so a
history computed inside it is the history computed over the whole log."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from training.history import window_index, windows_before


@dataclass(frozen=True)
class ShardRows:
    """A shard's interactions sorted by their position in the source (so that the
    position tie-break of :mod:`training.history` is the local index order)."""

    user_rows: np.ndarray  # int64
    item_rows: np.ndarray  # int64
    times: np.ndarray  # int64
    positions: np.ndarray  # int64
    parts: np.ndarray  # int8

    def __len__(self) -> int:
        return len(self.user_rows)

    def take(self, index: np.ndarray) -> ShardRows:
        """The rows ``index`` (local indices), in that order."""
        return ShardRows(
            self.user_rows[index], self.item_rows[index], self.times[index], self.positions[index], self.parts[index]
        )

    def rows_of(self, *parts: int) -> np.ndarray:
        """Local indices of the rows in ``parts``, in position order."""
        return np.flatnonzero(np.isin(self.parts, parts))


def read_shard(path: Path) -> ShardRows:
    """The shard at ``path``; a file that is not a readable prepared shard raises
    ``ValueError`` naming it."""
    try:
        table = pq.read_table(path, columns=["user_row", "item_row", "time", "position", "part"])
    except Exception as exc:  # pyarrow raises several types for a damaged file
        raise ValueError(f"prepared shard {path} cannot be read: {exc}") from exc
    order = np.argsort(table.column("position").to_numpy(), kind="stable")

    def col(name: str, dtype: type) -> np.ndarray:
        return np.asarray(table.column(name).to_numpy(), dtype=dtype)[order]

    return ShardRows(
        col("user_row", np.int64),
        col("item_row", np.int64),
        col("time", np.int64),
        col("position", np.int64),
        col("part", np.int8),
    )


@dataclass(frozen=True)
class Examples:
    """Training examples: (user, item) rows, and per history feature each example's
    window ``[start, end)`` into ``sequence`` (the known rows' item rows + 1, in (user,
    time, position) order). Histories become matrices per batch (:meth:`histories`), so
    pooled examples hold a few integers each, not ``history_length`` of them."""

    user_rows: np.ndarray
    item_rows: np.ndarray
    windows: dict[str, tuple[np.ndarray, np.ndarray]]
    lengths: dict[str, int]
    sequence: np.ndarray

    def __len__(self) -> int:
        return len(self.user_rows)

    def histories(self) -> dict[str, np.ndarray]:
        """Per history feature, ``[examples, length]`` int32: the window's item rows + 1,
        newest first, 0 where the window is shorter (what ``towers.tower.training_tower`` reads)."""
        out = {}
        for name, (start, end) in self.windows.items():
            at = end[:, None] - 1 - np.arange(self.lengths[name], dtype=np.int64)[None, :]
            valid = at >= start[:, None]
            taken = self.sequence[np.where(valid, at, 0)] if len(self.sequence) else np.zeros(at.shape, np.int32)
            out[name] = np.where(valid, taken, 0).astype(np.int32)
        return out

    def take(self, index: np.ndarray | slice) -> Examples:
        """The examples ``index`` (sharing this sequence)."""
        windows = {n: (start[index], end[index]) for n, (start, end) in self.windows.items()}
        return Examples(self.user_rows[index], self.item_rows[index], windows, self.lengths, self.sequence)

    def batches(self, batch_size: int) -> Iterator[Examples]:
        """Consecutive batches in this order, the last one short."""
        for at in range(0, len(self), batch_size):
            yield self.take(slice(at, at + batch_size))

    def compact(self) -> Examples:
        """The same examples in arrays of their own, over a sequence of their own windows
        only (what a carried remainder keeps, so that it holds no pooled array)."""
        users, items = self.user_rows.copy(), self.item_rows.copy()
        if not self.windows:
            return Examples(users, items, {}, self.lengths, self.sequence[:0])
        end = next(iter(self.windows.values()))[1]
        start = np.min([s for s, _ in self.windows.values()], axis=0)  # the longest window of each example
        sizes = end - start
        offsets = np.r_[0, np.cumsum(sizes)].astype(np.int64)
        index = window_index(start, end)
        shift = offsets[:-1] - start
        windows = {n: (s + shift, e + shift) for n, (s, e) in self.windows.items()}
        return Examples(users, items, windows, self.lengths, self.sequence[index])

    @staticmethod
    def concat(parts: list[Examples]) -> Examples:
        shifts = np.r_[0, np.cumsum([len(p.sequence) for p in parts])].astype(np.int64)
        names = parts[0].windows
        return Examples(
            np.concatenate([p.user_rows for p in parts]),
            np.concatenate([p.item_rows for p in parts]),
            {
                n: (
                    np.concatenate([p.windows[n][0] + shift for p, shift in zip(parts, shifts[:-1], strict=True)]),
                    np.concatenate([p.windows[n][1] + shift for p, shift in zip(parts, shifts[:-1], strict=True)]),
                )
                for n in names
            },
            parts[0].lengths,
            np.concatenate([p.sequence for p in parts]),
        )


def cut_examples(
    user_rows: np.ndarray,
    item_rows: np.ndarray,
    times: np.ndarray,
    rows: np.ndarray,
    known: np.ndarray,
    histories: dict[str, int],
) -> Examples:
    """The examples ``rows`` (indices into the arrays, in the order given), each history
    window the same user's ``known`` rows strictly before it, the last ``length``
    (:func:`training.history.windows_before`; ties in time broken by index)."""
    windows: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    order = np.zeros(0, dtype=np.int64)
    for name, length in histories.items():
        w = windows_before(user_rows, times, known, rows, length)
        windows[name], order = (w.start, w.end), w.order  # the same order for every length
    return Examples(user_rows[rows], item_rows[rows], windows, dict(histories), (item_rows[order] + 1).astype(np.int32))


def shard_examples(shard: ShardRows, parts: tuple[int, ...], histories: dict[str, int]) -> Examples:
    """The training examples of ``parts`` (FIT; FIT and VALIDATION for a refit on the
    whole training split), each seeing the same user's rows of ``parts`` before it."""
    rows = shard.rows_of(*parts)
    return cut_examples(shard.user_rows, shard.item_rows, shard.times, rows, rows, histories)
