"""training.stream.reduce: what the run needs of its interactions, a shard at a time, is
what the in-memory functions give over every interaction at once; the evaluation's view
(the rows of its sampled users) scores as the whole data would."""

import numpy as np
import pandas as pd
import pytest

from towers.spec import FeatureKind, history_feature, ids_only_spec
from training.data.tables import CanonicalData
from training.prepared import prepare
from training.stream.prepare import FIT, TEST, VALIDATION, prepare_shards
from training.stream.reduce import gather, item_counts, latest_items, part_pairs, seen_by_shard, user_counts
from training.stream.run import rows_prepared

TRAIN = (FIT, VALIDATION)


def _spec(length: int):
    spec = ids_only_spec(8)
    static = [f for f in spec.query.features if f.kind is not FeatureKind.HISTORY]
    query = spec.query.model_copy(update={"features": [*static, history_feature(8, history_length=length)]})
    return spec.model_copy(update={"query": query})


@pytest.fixture(scope="module")
def prep():
    """300 users, 80 items, repeated items and ties in time (broken by position)."""
    rng = np.random.default_rng(3)
    n = 6000
    users = rng.integers(0, 300, n)
    inter = pd.DataFrame(
        {
            "user_id": [f"u{u:03d}" for u in users],
            "item_id": [f"i{i:02d}" for i in rng.zipf(1.5, n) % 80],
            "timestamp": rng.integers(0, 50, n).astype(np.int64),
        }
    )
    data = CanonicalData(
        interactions=inter,
        items=pd.DataFrame({"item_id": [f"i{i:02d}" for i in range(80)]}),
        users=pd.DataFrame({"user_id": [f"u{u:03d}" for u in range(301)]}),  # u300: no interactions
        source="test",
    )
    return prepare(data, _spec(length=4))


@pytest.fixture(scope="module")
def prepared(prep, tmp_path_factory):
    table = {"user_row": prep.user_rows, "item_row": prep.item_rows, "time": prep.times}
    import pyarrow as pa

    return prepare_shards(pa.table(table), prep.user_ids, prep.item_ids, tmp_path_factory.mktemp("r") / "p", shard_rows=700)


def _rows(prepared, parts):
    return np.sort(part_pairs(prepared, parts).positions)


def test_counts_and_part_pairs_are_those_of_every_interaction(prep, prepared) -> None:
    assert len(prepared.shards) >= 8  # several shards, so the per-shard results are put together
    train, test = _rows(prepared, TRAIN), _rows(prepared, (TEST,))
    assert len(train) + len(test) == len(prep.user_rows) and not np.intersect1d(train, test).size
    assert np.array_equal(item_counts(prepared, TRAIN), prep.item_counts(train))
    assert np.array_equal(user_counts(prepared, (TEST,)), prep.user_counts(test))
    rows = part_pairs(prepared, (TEST,))
    assert np.array_equal(rows.positions, test)  # in position order
    assert np.array_equal(rows.user_rows, prep.user_rows[test]) and np.array_equal(rows.item_rows, prep.item_rows[test])


def test_latest_items_give_the_query_inputs_of_the_known_rows(prep, prepared) -> None:
    train = _rows(prepared, TRAIN)
    latest = latest_items(prepared, TRAIN, 4)
    assert latest.lengths.max() == 4 and latest.lengths[300] == 0
    assert prep.latest_query_inputs(latest)["recent_item_ids"].tolist() == prep.query_inputs(train)["recent_item_ids"].tolist()


def _seen_by_user(prepared) -> dict[int, list[int]]:
    """seen_by_shard's lists by user row; each shard's users ascending, each user in one shard only."""
    found: dict[int, list[int]] = {}
    for lists in seen_by_shard(prepared, TRAIN):
        assert np.all(np.diff(lists.users) > 0) and len(lists.offsets) == len(lists.users) + 1
        for k, user in enumerate(lists.users.tolist()):
            assert user not in found
            found[user] = lists.items[lists.offsets[k] : lists.offsets[k + 1]].tolist()
    return found


def test_seen_items_a_shard_at_a_time_are_each_users_distinct_items(prep, prepared) -> None:
    train = _rows(prepared, TRAIN)
    found = _seen_by_user(prepared)
    expected = prep.items_by_user(train)
    assert [found.get(u, []) for u in range(prep.num_users)] == [e.tolist() for e in expected]
    assert sorted(found) == [u for u, e in enumerate(expected) if len(e)]  # users without items have no row
    some = np.array([5, 17, 300, 2])
    assert [s.tolist() for s in prep.items_by_user(train, some)] == [expected[u].tolist() for u in some]


def test_latest_items_of_some_users_are_their_lists_in_the_order_asked(prep, prepared) -> None:
    latest = latest_items(prepared, TRAIN, 4)
    some = np.array([17, 300, 2, 17])
    taken = latest.take(some)
    assert [t.tolist() for t in taken.of(np.arange(4))] == [x.tolist() for x in latest.of(some)]
    whole = prep.latest_query_inputs(latest)
    part = prep.latest_query_inputs(latest, some)
    assert part["recent_item_ids"].tolist() == whole["recent_item_ids"][some].tolist()
    assert part["user_id"].tolist() == whole["user_id"][some].tolist()


def test_a_view_of_gathered_users_holds_their_histories_whole(prep, prepared) -> None:
    users = np.array([3, 40, 41, 299])
    rows = gather(prepared, users)
    mine = np.flatnonzero(np.isin(prep.user_rows, users))
    assert np.array_equal(rows.positions, mine)  # every row of theirs, in position order
    view = prep.view(rows)
    train = _rows(prepared, TRAIN)
    local_train = np.flatnonzero(np.isin(rows.parts, TRAIN))
    assert np.array_equal(rows.positions[local_train], np.intersect1d(mine, train))
    got = view.query_inputs(local_train)["recent_item_ids"][users]
    assert got.tolist() == prep.query_inputs(train)["recent_item_ids"][users].tolist()


def test_rows_prepared_keeps_the_given_parts(prep, tmp_path) -> None:
    fit, test = np.arange(0, 6000, 3), np.arange(1, 6000, 3)
    prepared = rows_prepared(prep, {FIT: fit, TEST: test}, tmp_path / "p", seed=1)
    assert np.array_equal(_rows(prepared, (FIT,)), fit) and np.array_equal(_rows(prepared, (TEST,)), test)
    assert prepared.rows == {"fit": 2000, "validation": 0, "test": 2000} and prepared.interactions == 6000  # in the source
