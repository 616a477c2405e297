"""The two splits of BENCHMARKS.md, to the letter."""

import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from training.split import random_split, temporal_split


def test_random_split_is_the_seeded_shuffle_first_80_percent():
    s = random_split(1000, 0.2, seed=42)
    perm = np.random.default_rng(42).permutation(1000)
    assert set(s.train) == set(perm[:800]) and set(s.test) == set(perm[800:])


def test_temporal_split_takes_each_users_latest_fifth():
    frame = pd.DataFrame(
        {
            "user_id": ["a"] * 10 + ["b"] * 3 + ["c"],
            "timestamp": list(range(10, 0, -1)) + [5, 1, 3] + [7],
        }
    )
    s = temporal_split(frame, 0.2)
    test = frame.iloc[s.test]
    # a: 10 rows -> 2 test rows, the two latest (timestamps 10 and 9, rows 0 and 1)
    assert sorted(test[test.user_id == "a"].timestamp) == [9, 10]
    # b: 3 rows -> floor(0.6)=0 -> at least one: the latest (timestamp 5)
    assert list(test[test.user_id == "b"].timestamp) == [5]
    # c: a single row is test (nothing to train on for c)
    assert list(test[test.user_id == "c"].timestamp) == [7]


@settings(max_examples=50, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 5), st.integers(0, 100)), min_size=1, max_size=200))
def test_temporal_split_partitions_and_never_trains_on_the_future(rows):
    frame = pd.DataFrame(rows, columns=["user_id", "timestamp"]).astype({"user_id": str})
    s = temporal_split(frame, 0.2)
    assert sorted(np.r_[s.train, s.test]) == list(range(len(frame)))
    for _, group in frame.groupby("user_id"):
        train_ts = frame.iloc[np.intersect1d(s.train, group.index)].timestamp
        test_ts = frame.iloc[np.intersect1d(s.test, group.index)].timestamp
        assert len(test_ts) >= 1
        if len(group) >= 2:
            assert len(train_ts) >= 1
        if len(train_ts):
            assert train_ts.max() <= test_ts.min()
