"""Train/test splits of an interactions table, as ../shared/BENCHMARKS.md defines them."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from training.config import SplitKind


@dataclass(frozen=True)
class Split:
    """Row positions (into the interactions table) of each side."""

    train: np.ndarray
    test: np.ndarray


def random_split(n: int, test_fraction: float = 0.2, seed: int = 42) -> Split:
    """P1: shuffle with ``np.random.default_rng(seed)``; the first (1-f) share is train."""
    perm = np.random.default_rng(seed).permutation(n)
    cut = round(n * (1.0 - test_fraction))
    return Split(train=np.sort(perm[:cut]), test=np.sort(perm[cut:]))


def temporal_split(interactions: pd.DataFrame, test_fraction: float = 0.2) -> Split:
    """P2: per user, interactions sorted by time (ties keep file order); the last
    ``test_fraction`` (at least one, and never all of a user's rows when the user
    has two or more) are test."""
    n = len(interactions)
    if "timestamp" in interactions.columns:
        ts = interactions["timestamp"].to_numpy()
    else:
        ts = np.arange(n)
    users = interactions["user_id"].to_numpy()
    order = np.lexsort((np.arange(n), ts, users))  # by user, then time, then position
    sorted_users = users[order]
    starts = np.r_[0, np.flatnonzero(sorted_users[1:] != sorted_users[:-1]) + 1]
    counts = np.diff(np.r_[starts, n])
    n_test = np.maximum(1, np.floor(counts * test_fraction).astype(np.int64))
    n_test = np.where(counts >= 2, np.minimum(n_test, counts - 1), n_test)
    rank_in_user = np.arange(n) - np.repeat(starts, counts)
    is_test_sorted = rank_in_user >= np.repeat(counts - n_test, counts)
    is_test = np.empty(n, dtype=bool)
    is_test[order] = is_test_sorted
    return Split(train=np.flatnonzero(~is_test), test=np.flatnonzero(is_test))


def make_split(interactions: pd.DataFrame, kind: SplitKind, test_fraction: float, seed: int) -> Split:
    if kind is SplitKind.RANDOM:
        return random_split(len(interactions), test_fraction, seed)
    return temporal_split(interactions, test_fraction)
