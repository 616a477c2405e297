"""training.stream.run: a run's preparation written once and shared, its split, and the
examples of callers that hold their own rows (the same batches as the run's)."""

import threading
import time

import numpy as np
import pytest

from tests.taste_clusters import taste_clusters
from towers.spec import ids_only_spec
from training.config import SplitKind, TrainConfig
from training.prepared import prepare
from training.split import temporal_split
from training.stream.dataset import epoch_batches
from training.stream.prepare import FIT, Prepared
from training.stream.run import prepare_run, rows_source, split_of


@pytest.fixture(scope="module")
def prep():
    return prepare(taste_clusters(5), ids_only_spec(8))


def test_the_run_split_is_the_temporal_rule_and_the_preparation_is_reused(prep, tmp_path) -> None:
    config = TrainConfig()
    first = prepare_run(prep, config, tmp_path / "prepared")
    split, fit, val = split_of(first)
    want = temporal_split(prep.data.interactions, config.test_fraction)
    assert np.array_equal(split.test, want.test) and np.array_equal(split.train, want.train)
    assert np.array_equal(np.union1d(fit, val), split.train) and not np.intersect1d(fit, val).size
    marker = tmp_path / "prepared" / "marker"
    marker.write_text("x")
    again = prepare_run(prep, config, tmp_path / "prepared")  # complete: reused, not rewritten
    assert marker.exists() and again == Prepared.read(first.root)
    (tmp_path / "prepared" / "prepared.json").unlink()  # unfinished: the chief writes it again
    prepare_run(prep, config, tmp_path / "prepared")
    assert not marker.exists() and (tmp_path / "prepared" / "prepared.json").exists()


def test_another_worker_waits_for_the_chiefs_preparation(prep, tmp_path) -> None:
    config = TrainConfig(split=SplitKind.RANDOM)
    folder = tmp_path / "prepared"
    got: list[Prepared] = []
    waiter = threading.Thread(target=lambda: got.append(prepare_run(prep, config, folder, chief=False, workers=2, wait_s=60)))
    waiter.start()
    time.sleep(0.5)
    assert not got  # nothing to read yet
    written = prepare_run(prep, config, folder, chief=True, workers=2)
    waiter.join(timeout=60)
    assert got == [written] and len(written.shards) >= 8  # at least 4 shards per worker
    with pytest.raises(TimeoutError, match="is the chief running"):
        prepare_run(prep, config, tmp_path / "nobody", chief=False, wait_s=0.2)


def test_rows_given_by_a_caller_make_the_same_batches_as_the_runs_preparation(prep, tmp_path) -> None:
    """The benchmarks' replicas train from their own rows (``rows_source``); with the run's
    fit rows they must get the batches ``recsys train`` gets."""
    config = TrainConfig()
    run = prepare_run(prep, config, tmp_path / "run")
    _, fit, _ = split_of(run)
    own = rows_source(prep, fit, tmp_path / "own", config.seed).prepared
    assert len(own.shards) == len(run.shards)
    for epoch in (0, 1):
        a = list(epoch_batches(run.root, run.shards, (FIT,), {}, 64, config.seed, epoch))
        b = list(epoch_batches(own.root, own.shards, (FIT,), {}, 64, config.seed, epoch))
        assert [(x.user_rows.tolist(), x.item_rows.tolist()) for x in a] == [
            (y.user_rows.tolist(), y.item_rows.tolist()) for y in b
        ]
