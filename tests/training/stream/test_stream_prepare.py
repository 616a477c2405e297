"""training.stream.prepare: the DuckDB preparation of user-partitioned shards, its
split against the in-memory rules of training.split, Parquet inputs and bad inputs."""

import itertools
import json

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from training.config import SplitKind
from training.split import random_split, temporal_split
from training.stream.prepare import FIT, TEST, VALIDATION, Prepared, prepare_shards

USERS = np.array([f"u{i}" for i in range(400)], dtype=object)
ITEMS = np.array([f"i{i}" for i in range(300)], dtype=object)


def interactions(n: int = 20_000, seed: int = 0, timestamps: bool = True) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({"user_id": USERS[rng.integers(0, len(USERS), n)], "item_id": ITEMS[rng.integers(0, len(ITEMS), n)]})
    if timestamps:
        frame["timestamp"] = rng.integers(0, 500, n)  # many ties: position breaks them
    return frame


def parts_by_position(prepared: Prepared) -> np.ndarray:
    table = pq.read_table(prepared.files())
    parts = np.full(prepared.interactions, -1, dtype=np.int8)
    parts[table.column("position").to_numpy()] = table.column("part").to_numpy()
    return parts


@pytest.mark.parametrize("timestamps", [True, False])
def test_temporal_split_is_the_in_memory_rule(tmp_path, timestamps) -> None:
    frame = interactions(timestamps=timestamps)
    prepared = prepare_shards(pa.Table.from_pandas(frame, preserve_index=False), USERS, ITEMS, tmp_path / "p", shard_rows=3_000)
    parts = parts_by_position(prepared)
    split = temporal_split(frame, 0.2)
    inner = temporal_split(frame.iloc[split.train].reset_index(drop=True), 0.1)
    assert np.array_equal(np.flatnonzero(parts == TEST), split.test)
    assert np.array_equal(np.flatnonzero(parts == VALIDATION), split.train[inner.test])
    assert np.array_equal(np.flatnonzero(parts == FIT), split.train[inner.train])
    assert prepared.rows == {"fit": len(inner.train), "validation": len(inner.test), "test": len(split.test)}


def test_random_split_is_the_protocols_numpy_permutation(tmp_path) -> None:
    frame = interactions()
    prepared = prepare_shards(
        pa.Table.from_pandas(frame, preserve_index=False), USERS, ITEMS, tmp_path / "p", split=SplitKind.RANDOM, seed=42
    )
    parts = parts_by_position(prepared)
    split = random_split(len(frame), 0.2, 42)  # BENCHMARKS.md P1: numpy generator seeded 42, first 80% train
    inner = random_split(len(split.train), 0.1, 43)
    assert np.array_equal(np.flatnonzero(parts == TEST), split.test)
    assert np.array_equal(np.flatnonzero(parts == VALIDATION), split.train[inner.test])


def test_shards_hold_whole_users_and_cover_every_interaction_once(tmp_path) -> None:
    frame = interactions()
    prepared = prepare_shards(pa.Table.from_pandas(frame, preserve_index=False), USERS, ITEMS, tmp_path / "p", shard_rows=3_000)
    assert len(prepared.shards) == 7  # ceil(20,000 / 3,000)
    tables = [pq.read_table(f).to_pandas() for f in prepared.files()]
    positions = np.concatenate([t["position"].to_numpy() for t in tables])
    assert np.array_equal(np.sort(positions), np.arange(len(frame)))
    owners = [set(t["user_row"]) for t in tables]
    assert sum(len(o) for o in owners) == len(set().union(*owners))  # no user in two shards
    assert [s.users for s in prepared.shards] == [len(o) for o in owners]
    everything = pd.concat(tables).sort_values("position")
    assert np.array_equal(USERS[everything["user_row"]], frame["user_id"].to_numpy())
    assert np.array_equal(ITEMS[everything["item_row"]], frame["item_id"].to_numpy())
    assert np.array_equal(everything["time"].to_numpy(), frame["timestamp"].to_numpy())
    assert Prepared.read(prepared.root) == prepared


def test_a_folder_of_parquet_shards_and_one_file_prepare_the_same(tmp_path) -> None:
    frame = interactions()
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), tmp_path / "one.parquet")
    (tmp_path / "shards").mkdir()
    cuts = [0, 5_000, 5_001, 12_000, len(frame)]
    files = []
    for k, (a, b) in enumerate(itertools.pairwise(cuts)):
        files.append(tmp_path / "shards" / f"part-{k}.parquet")
        pq.write_table(pa.Table.from_pandas(frame.iloc[a:b], preserve_index=False), files[-1])
    one = prepare_shards([tmp_path / "one.parquet"], USERS, ITEMS, tmp_path / "a", shard_rows=3_000)
    many = prepare_shards(files, USERS, ITEMS, tmp_path / "b", shard_rows=3_000)
    assert [s.rows for s in one.shards] == [s.rows for s in many.shards]
    for first, second in zip(one.files(), many.files(), strict=True):
        ta, tb = (pq.read_table(f).to_pandas().sort_values("position").reset_index(drop=True) for f in (first, second))
        pd.testing.assert_frame_equal(ta, tb)


def test_unknown_ids_and_rows_outside_the_tables_are_refused(tmp_path) -> None:
    frame = interactions(100)
    frame.loc[3, "item_id"] = "nowhere"
    with pytest.raises(ValueError, match="1 interactions reference users or items outside the tables"):
        prepare_shards(pa.Table.from_pandas(frame, preserve_index=False), USERS, ITEMS, tmp_path / "p")
    rows = pa.table({"user_row": [0, 1], "item_row": [0, len(ITEMS)], "time": [1, 2]})
    with pytest.raises(ValueError, match="outside the tables"):
        prepare_shards(rows, USERS, ITEMS, tmp_path / "q")


def test_given_parts_leave_out_the_rest(tmp_path) -> None:
    rows = pa.table({"user_row": np.arange(10) % 3, "item_row": np.arange(10), "time": np.arange(10)})
    parts = np.array([FIT, -1, FIT, TEST, -1, FIT, FIT, VALIDATION, -1, FIT], dtype=np.int8)
    prepared = prepare_shards(rows, USERS, ITEMS, tmp_path / "p", parts=parts)
    assert prepared.rows == {"fit": 5, "validation": 1, "test": 1}
    got = parts_by_position(prepared)
    assert np.array_equal(got[parts >= 0], parts[parts >= 0]) and (got[parts < 0] == -1).all()
    meta = json.loads((prepared.root / "prepared.json").read_text())
    assert meta["format"] == 1 and not (prepared.root / ".spill").exists()


def test_duckdb_holds_at_most_the_memory_limit_given(tmp_path) -> None:
    from training.config import TrainConfig
    from training.duckdb_files import connect

    con = connect("64MB", tmp_path / "spill")
    assert con.execute("SELECT current_setting('memory_limit')").fetchone() == ("61.0 MiB",)  # 64 MB in MiB
    con.close()
    frame = interactions()
    prepared = prepare_shards(
        pa.Table.from_pandas(frame, preserve_index=False), USERS, ITEMS, tmp_path / "p", memory_limit="64MB"
    )
    assert sum(prepared.rows.values()) == len(frame)
    assert TrainConfig().prepare_memory_limit == "1GB"
    with pytest.raises(ValueError, match="prepare_memory_limit"):
        TrainConfig(prepare_memory_limit="lots")


def test_a_log_larger_than_duckdbs_memory_spills_beside_the_shards_and_leaves_nothing(tmp_path) -> None:
    """3M rows under a 40 MB limit: DuckDB spills (into a folder beside the shards, since
    it writes the partitioned shards into an empty folder only) and the spill is removed."""
    n, users, items = 3_000_000, 100_000, 5_000
    rng = np.random.default_rng(0)
    table = pa.table(
        {
            "user_row": rng.integers(0, users, n).astype(np.int32),
            "item_row": rng.integers(0, items, n).astype(np.int32),
            "time": rng.integers(0, 10**9, n),
        }
    )
    user_ids = np.array([f"u{i}" for i in range(users)], dtype=object)
    item_ids = np.array([f"i{i}" for i in range(items)], dtype=object)
    prepared = prepare_shards(table, user_ids, item_ids, tmp_path / "prepared", memory_limit="40MB")
    assert sum(prepared.rows.values()) == n and len(prepared.shards) == 6
    assert sorted(p.name for p in tmp_path.iterdir()) == ["prepared"]
    assert sorted(p.name for p in (tmp_path / "prepared").iterdir()) == ["prepared.json", *[f"shard={k}" for k in range(6)]]
