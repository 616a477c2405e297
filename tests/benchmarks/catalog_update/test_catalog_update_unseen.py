"""``python -m benchmarks.catalog_update unseen``: the share of top-10 places that items training
never saw take (benchmarks/catalog_update/unseen.py)."""

import numpy as np

from benchmarks.catalog_update.unseen import _top10_share


def _scores(table: np.ndarray):
    return lambda users: table[users]


def test_counts_the_unseen_items_among_each_users_top_10() -> None:
    table = np.tile(np.arange(20, dtype=np.float32)[::-1], (2, 1))  # item 0 scores highest
    users = np.array([0, 1])
    seen = [np.zeros(0, dtype=np.int64), np.array([0, 1], dtype=np.int64)]
    # user 0: top 10 = items 0-9, of which 1 and 15 -> one unseen; user 1: items 0, 1 excluded -> 2-11, none unseen
    assert _top10_share(_scores(table), users, seen, np.array([1, 15])) == 1 / 20
    # item 15 scored highest for user 1 only: it enters that user's top 10
    table[1, 15] = 100.0
    assert _top10_share(_scores(table), users, seen, np.array([1, 15])) == 2 / 20


def test_a_training_item_never_counts_even_when_marked_unseen() -> None:
    table = np.tile(np.arange(12, dtype=np.float32)[::-1], (1, 1))
    assert _top10_share(_scores(table), np.array([0]), [np.array([0])], np.array([0])) == 0.0
