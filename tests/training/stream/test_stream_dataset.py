"""training.stream.dataset / shard / inputs: examples read back from prepared shards,
each worker its own shards, histories cut as the in-memory path cuts them."""

from collections import Counter

import numpy as np
import pyarrow as pa
import pytest
import tensorflow as tf

from training.stream.dataset import epoch_batches, shard_dataset, worker_shards
from training.stream.prepare import FIT, VALIDATION, prepare_shards
from training.stream.shard import read_shard

USERS = np.array([f"u{i}" for i in range(300)], dtype=object)
ITEMS = np.array([f"i{i}" for i in range(200)], dtype=object)
N = 12_000
LENGTH = 5


@pytest.fixture(scope="module")
def logged():
    rng = np.random.default_rng(3)
    user_rows = rng.integers(0, len(USERS), N)
    item_rows = rng.integers(0, len(ITEMS), N)
    times = rng.integers(0, 400, N)  # ties: the position breaks them
    return user_rows, item_rows, times


@pytest.fixture(scope="module")
def prepared(logged, tmp_path_factory):
    user_rows, item_rows, times = logged
    table = pa.table({"user_row": user_rows, "item_row": item_rows, "time": times})
    return prepare_shards(table, USERS, ITEMS, tmp_path_factory.mktemp("s") / "p", shard_rows=1_000)


def reference(logged, prepared, parts) -> Counter:
    """(user, item, history) of every example of ``parts``, cut over the whole log by a
    plain loop: the user's rows of ``parts`` before it by (time, position), the last
    LENGTH, newest first, item rows + 1, 0-padded."""
    from tests.training.stream.test_stream_prepare import parts_by_position

    user_rows, item_rows, times = logged
    labels = parts_by_position(prepared)
    rows = np.flatnonzero(np.isin(labels, parts))
    by_user: dict[int, list[int]] = {}
    for r in sorted(rows, key=lambda r: (user_rows[r], times[r], r)):
        by_user.setdefault(int(user_rows[r]), []).append(int(r))
    out: Counter = Counter()
    for r in rows:
        before = [q for q in by_user[int(user_rows[r])] if (times[q], q) < (times[r], r)][-LENGTH:]
        history = [int(item_rows[q]) + 1 for q in reversed(before)] + [0] * (LENGTH - len(before))
        out[(int(user_rows[r]), int(item_rows[r]), tuple(history))] += 1
    return out


def examples(prepared, shards, parts, epoch=0, batch=256) -> Counter:
    got: Counter = Counter()
    for b in epoch_batches(prepared.root, shards, parts, {"h": LENGTH}, batch, seed=1, epoch=epoch):
        got.update((int(u), int(i), tuple(h)) for u, i, h in zip(b.user_rows, b.item_rows, b.histories()["h"], strict=True))
    return got


@pytest.mark.parametrize("parts", [(FIT,), (FIT, VALIDATION)])
def test_histories_from_shards_are_those_of_the_whole_log(logged, prepared, parts) -> None:
    """A shard holds its users' every interaction: a history cut per shard is the one cut
    over the whole log (the user's examples strictly before, ties broken by position)."""
    want = reference(logged, prepared, parts)
    assert sum(want.values()) == sum(
        prepared.rows[n] for n in ("fit", "validation") if {"fit": FIT, "validation": VALIDATION}[n] in parts
    )
    assert examples(prepared, worker_shards(prepared), parts) == want
    assert any(h[0] > 0 and h[-1] == 0 for _, _, h in want)  # short and non-empty histories both occur


@pytest.mark.parametrize("workers", [2, 3])
def test_workers_read_disjoint_shards_that_cover_the_data_once_per_epoch(logged, prepared, workers) -> None:
    shares = [worker_shards(prepared, w, workers) for w in range(workers)]
    files = [s.file for share in shares for s in share]
    assert sorted(files) == sorted(s.file for s in prepared.shards) and len(set(files)) == len(files)
    per_worker = [examples(prepared, share, (FIT,)) for share in shares]
    for a in range(workers):
        for b in range(a + 1, workers):
            assert not {u for u, _, _ in per_worker[a]} & {u for u, _, _ in per_worker[b]}  # users disjoint
    assert sum(per_worker, Counter()) == reference(logged, prepared, (FIT,))
    with pytest.raises(ValueError, match="worker 3 of 3"):
        worker_shards(prepared, 3, 3)


def test_batches_are_full_but_the_last_and_each_epoch_has_its_own_order(prepared) -> None:
    def order(epoch: int, seed: int = 1) -> list[int]:
        batches = list(epoch_batches(prepared.root, worker_shards(prepared), (FIT,), {}, 500, seed=seed, epoch=epoch))
        assert all(len(b) == 500 for b in batches[:-1]) and 0 < len(batches[-1]) <= 500
        return np.concatenate([b.user_rows * 1_000 + b.item_rows for b in batches]).tolist()

    first = order(0)
    assert first == order(0) and first != order(1) and first != order(0, seed=2)
    assert sorted(first) == sorted(order(1))
    # the users of a batch come from several shards (mixed, not one shard after another)
    batch = next(epoch_batches(prepared.root, worker_shards(prepared), (FIT,), {}, 500, seed=1, epoch=0))
    owner = {int(u): k for k, s in enumerate(prepared.shards) for u in np.unique(read_shard(prepared.root / s.file).user_rows)}
    assert len({owner[int(u)] for u in batch.user_rows}) > 1


def test_the_tf_data_pipeline_yields_the_mapped_batches(prepared) -> None:
    def features(u, i, histories):
        return {"user": u, "item": i, "history": histories["h"]}

    ds = shard_dataset(prepared, (FIT,), {"h": LENGTH}, 512, seed=0, features=features)
    total, shapes = 0, set()
    for batch in ds:
        total += int(tf.shape(batch["user"])[0])
        shapes.add(tuple(batch["history"].shape[1:]))
    assert total == prepared.rows["fit"] and shapes == {(LENGTH,)}
    again = sum(int(tf.shape(b["user"])[0]) for b in ds)  # a second pass is a second epoch
    assert again == total


def test_a_damaged_shard_is_named(prepared, tmp_path) -> None:
    broken = tmp_path / "shard.parquet"
    broken.write_bytes((prepared.root / prepared.shards[0].file).read_bytes()[:100])
    with pytest.raises(ValueError, match=f"prepared shard {broken} cannot be read"):
        read_shard(broken)


def test_a_carried_remainder_holds_no_array_of_its_pool(prepared) -> None:
    """What carries over to the next group of shards keeps its examples in arrays of its
    own: the pool it came from (``mix`` shards' examples) is freed before the next is read."""
    from training.stream.shard import shard_examples

    pooled = shard_examples(read_shard(prepared.root / prepared.shards[0].file), (FIT,), {"h": LENGTH, "g": 2})
    tail = pooled.take(slice(len(pooled) - 7, len(pooled)))
    carry = tail.compact()
    held = [carry.user_rows, carry.item_rows, carry.sequence, *(a for w in carry.windows.values() for a in w)]
    pool = [pooled.user_rows, pooled.item_rows, pooled.sequence, *(a for w in pooled.windows.values() for a in w)]
    assert not any(np.shares_memory(mine, theirs) for mine in held for theirs in pool)
    assert carry.user_rows.tolist() == tail.user_rows.tolist() and carry.item_rows.tolist() == tail.item_rows.tolist()
    for name in ("h", "g"):
        assert carry.histories()[name].tolist() == tail.histories()[name].tolist()
