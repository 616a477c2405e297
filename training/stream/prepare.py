"""Interactions -> user-partitioned Parquet shards of catalog rows, split once, out of core.

One DuckDB pass (it spills to disk past its memory limit, so the log never has to
fit in memory) maps each interaction's ids to the user and item *rows* of the
vocabularies (the users and items tables, in their order: row i is catalog row i
everywhere downstream), labels its part of the split, and writes the result as
shards. Every user's interactions are in one shard (``shard = hash(user_row, seed)
mod num_shards``), so anything per user (a training example's history, the items a
user has seen, a user's latest history) is computed from one shard at a time with
the in-memory functions of :mod:`training.history`, and workers that read disjoint
shards see disjoint users.

Columns of a shard (sorted by user row, time, position):

- ``user_row``, ``item_row`` (int32): rows of the users and items tables;
- ``time`` (int64): the timestamp, else the position;
- ``position`` (int64): the interaction's row in the source, in file order (ties in time
  are broken by it, as :mod:`training.history` does);
- ``part`` (int8): :data:`FIT`, :data:`VALIDATION` or :data:`TEST`.

The split rules are those of :mod:`training.split` (docs/CONTRACTS.md section 1):
temporal: per user, by (time, position), the last ``test_fraction`` (at least one, never
all of a user's rows when the user has two or more) are test, and validation is carved
from the training rows the same way with ``validation_fraction``; random: a seeded
hash order of the positions, the first ``round(n * (1 - test_fraction))`` are train, and
validation is carved from those with the next seed.

``prepared.json`` beside the shards records the counts per shard and part and the split
settings, so that workers share one preparation (written once by the chief).
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa

from training.config import SplitKind
from training.duckdb_files import connect, ordered_files
from training.split import random_split

FIT, VALIDATION, TEST = 0, 1, 2
PARTS = {"fit": FIT, "validation": VALIDATION, "test": TEST}
FORMAT = 1
DEFAULT_SHARD_ROWS = 500_000  # rows per shard aimed at: one shard's arrays and history windows stay small


@dataclass(frozen=True)
class ShardInfo:
    file: str  # relative to the prepared folder
    rows: dict[str, int]  # per part name
    users: int


@dataclass(frozen=True)
class Prepared:
    """A prepared folder: its shards and what they hold."""

    root: Path
    shards: list[ShardInfo]
    num_users: int
    num_items: int
    split: str
    test_fraction: float
    validation_fraction: float
    seed: int
    interactions: int  # in the source (positions 0..interactions-1); rows left out by given parts are in no shard
    rows: dict[str, int] = field(default_factory=dict)

    def rows_of(self, parts: tuple[int, ...], shards: list[ShardInfo] | None = None) -> int:
        """The rows of ``parts`` in ``shards`` (default: every shard)."""
        names = [name for name, value in PARTS.items() if value in parts]
        return sum(s.rows[n] for s in (self.shards if shards is None else shards) for n in names)

    def files(self) -> list[Path]:
        return [self.root / s.file for s in self.shards]

    @classmethod
    def read(cls, root: Path) -> Prepared:
        meta = json.loads((Path(root) / "prepared.json").read_text())
        if meta.get("format") != FORMAT:
            raise ValueError(f"{root}/prepared.json: format {meta.get('format')!r}, expected {FORMAT}")
        shards = [ShardInfo(**s) for s in meta.pop("shards")]
        meta.pop("format")
        return cls(root=Path(root), shards=shards, **meta)


def _vocabulary(con: duckdb.DuckDBPyConnection, name: str, column: str, ids: np.ndarray) -> None:
    table = pa.table({column: pa.array(np.asarray(ids, dtype=object), type=pa.string())})
    con.register(f"{name}_ids", table)
    con.execute(f"CREATE TEMP TABLE {name} AS SELECT {column}, CAST(row_number() OVER () - 1 AS INTEGER) AS row FROM {name}_ids")


def _temporal_cut(rank: str, count: str, fraction: float) -> str:
    """SQL: whether the row ranked ``rank`` (0-based) of ``count`` is on the cut side."""
    n_cut = f"greatest(1, CAST(floor({count} * {fraction!r}) AS BIGINT))"
    n_cut = f"CASE WHEN {count} >= 2 THEN least({n_cut}, {count} - 1) ELSE {n_cut} END"
    return f"({rank} >= {count} - {n_cut})"


def random_parts(n: int, test_fraction: float, validation_fraction: float, seed: int) -> np.ndarray:
    """P1's split as ../shared/BENCHMARKS.md defines it (a numpy permutation seeded ``seed``,
    :func:`training.split.random_split`), validation carved from train with ``seed + 1``:
    the part of each position (n bytes, and the permutations while they are drawn)."""
    parts = np.full(n, TEST, dtype=np.int8)
    split = random_split(n, test_fraction, seed)
    parts[split.train] = FIT
    if validation_fraction > 0:
        inner = random_split(len(split.train), validation_fraction, seed + 1)
        parts[split.train[inner.test]] = VALIDATION
    return parts


def _load(
    con: duckdb.DuckDBPyConnection, interactions: pa.Table | list[Path], user_ids: np.ndarray, item_ids: np.ndarray
) -> None:
    """Table ``x`` (user_row, item_row, time, position) of the interactions."""
    if isinstance(interactions, pa.Table):
        table = interactions.append_column("position", pa.array(np.arange(interactions.num_rows, dtype=np.int64)))
        con.register("source_table", table)
        columns, source = set(table.column_names), "SELECT * FROM source_table"
    else:
        files = ordered_files(con, interactions)
        columns = {row[0] for row in con.execute(f"DESCRIBE SELECT * FROM {files}").fetchall()}
        source = f"SELECT *, row_number() OVER (ORDER BY file_index, file_row_number) - 1 AS position FROM {files}"
    if "user_row" in columns:  # rows of the vocabularies already (the in-memory tables' rows)
        con.execute(
            "CREATE TEMP TABLE x AS SELECT CAST(user_row AS INTEGER) AS user_row, CAST(item_row AS INTEGER) AS item_row, "
            f"CAST(time AS BIGINT) AS time, position FROM ({source})"
        )
        check = (
            f"user_row IS NULL OR item_row IS NULL OR user_row NOT BETWEEN 0 AND {len(user_ids) - 1} "
            f"OR item_row NOT BETWEEN 0 AND {len(item_ids) - 1}"
        )
    else:
        _vocabulary(con, "users", "user_id", user_ids)
        _vocabulary(con, "items", "item_id", item_ids)
        time = "CAST(s.timestamp AS BIGINT)" if "timestamp" in columns else "s.position"
        con.execute(
            f"CREATE TEMP TABLE x AS SELECT u.row AS user_row, i.row AS item_row, {time} AS time, s.position "
            f"FROM ({source}) s LEFT JOIN users u USING (user_id) LEFT JOIN items i USING (item_id)"
        )
        check = "user_row IS NULL OR item_row IS NULL"
    bad = con.execute(f"SELECT count(*) FROM x WHERE {check}").fetchone()
    if bad and bad[0]:
        raise ValueError(f"{bad[0]:,} interactions reference users or items outside the tables")


def _temporal_labels(con: duckdb.DuckDBPyConnection, test_fraction: float, validation_fraction: float) -> str:
    """SQL of (user_row, item_row, time, position, part) by the temporal rules."""

    def ranked(table: str) -> str:
        return (
            "SELECT *, count(*) OVER (PARTITION BY user_row) AS cnt, "
            f"row_number() OVER (PARTITION BY user_row ORDER BY time, position) - 1 AS rank FROM {table}"
        )

    con.execute(
        "CREATE TEMP TABLE y AS SELECT user_row, item_row, time, position, "
        f"{_temporal_cut('rank', 'cnt', test_fraction)} AS is_test FROM ({ranked('x')})"
    )
    is_val = _temporal_cut("rank", "cnt", validation_fraction) if validation_fraction > 0 else "false"
    return (
        f"SELECT user_row, item_row, time, position, CAST(CASE WHEN {is_val} THEN {VALIDATION} ELSE {FIT} END AS TINYINT) "
        f"AS part FROM ({ranked('(SELECT * FROM y WHERE NOT is_test)')}) "
        f"UNION ALL SELECT user_row, item_row, time, position, CAST({TEST} AS TINYINT) AS part FROM y WHERE is_test"
    )


def _given_labels(con: duckdb.DuckDBPyConnection, parts: np.ndarray) -> str:
    """SQL of (user_row, item_row, time, position, part) with the part of each position given (-1: left out)."""
    con.register("given", pa.table({"position": np.arange(len(parts), dtype=np.int64), "part": np.asarray(parts, np.int8)}))
    return "SELECT user_row, item_row, time, position, part FROM x JOIN given USING (position) WHERE part >= 0"


def _write(con: duckdb.DuckDBPyConnection, labelled: str, out: Path, num_shards: int, seed: int) -> list[ShardInfo]:
    con.execute(
        f"CREATE TEMP TABLE z AS SELECT *, CAST(hash(user_row, {seed}) % {num_shards} AS INTEGER) AS shard FROM ({labelled})"
    )
    # one pass writes every shard: out/shard=K/part-0.parquet (rows in no particular order: readers sort per shard)
    con.execute(
        f"COPY (SELECT user_row, item_row, time, position, part, shard FROM z) TO '{out}' "
        "(FORMAT parquet, PARTITION_BY (shard), FILENAME_PATTERN 'part-{i}')"
    )
    counts: dict[int, dict[int, int]] = {}
    for shard, part, rows in con.execute("SELECT shard, part, count(*) FROM z GROUP BY shard, part").fetchall():
        counts.setdefault(int(shard), {})[int(part)] = int(rows)
    users = dict(con.execute("SELECT shard, count(DISTINCT user_row) FROM z GROUP BY shard").fetchall())
    return [
        ShardInfo(
            file=f"shard={k}/part-0.parquet",
            rows={p: counts[k].get(v, 0) for p, v in PARTS.items()},
            users=int(users.get(k, 0)),
        )
        for k in sorted(counts)
    ]


def prepare_shards(
    interactions: pa.Table | list[Path],
    user_ids: np.ndarray,
    item_ids: np.ndarray,
    out: Path,
    *,
    split: SplitKind = SplitKind.TEMPORAL,
    test_fraction: float = 0.2,
    validation_fraction: float = 0.1,
    seed: int = 42,
    shard_rows: int = DEFAULT_SHARD_ROWS,
    min_shards: int = 1,
    memory_limit: str | None = None,
    parts: np.ndarray | None = None,
) -> Prepared:
    """Write the prepared shards of ``interactions`` into ``out`` (created; must not exist).

    ``interactions``: an Arrow table, or Parquet files read in the order given, with
    ``user_id`` and ``item_id`` (str) and optionally ``timestamp`` (int); ids must be
    in ``user_ids`` / ``item_ids`` (validated tables: an unknown id raises). An Arrow
    table may instead hold ``user_row``, ``item_row`` and ``time`` (the rows of the
    vocabularies, as :class:`training.prepared.PreparedData` has them). Shards:
    ``max(min_shards, ceil(rows / shard_rows))``, at most one per user. ``parts``: the
    part of each interaction (-1: left out) instead of the split rules, for callers
    that hold their own split (benchmark replicas, tests)."""
    out = Path(out)
    out.mkdir(parents=True)
    spill = out.with_name(out.name + ".spill")  # beside the shards: DuckDB writes its partitions into an empty folder
    shutil.rmtree(spill, ignore_errors=True)  # a killed preparation's
    con = connect(memory_limit, spill)
    try:
        _load(con, interactions, user_ids, item_ids)
        n = int(con.execute("SELECT count(*) FROM x").fetchone()[0])  # type: ignore[index]
        if parts is not None and len(parts) != n:
            raise ValueError(f"{len(parts):,} parts given for {n:,} interactions")
        if parts is None and split is SplitKind.RANDOM:
            parts = random_parts(n, test_fraction, validation_fraction, seed)
        labelled = _given_labels(con, parts) if parts is not None else _temporal_labels(con, test_fraction, validation_fraction)
        num_users = max(1, int(con.execute("SELECT count(DISTINCT user_row) FROM x").fetchone()[0]))  # type: ignore[index]
        shards = _write(con, labelled, out, int(min(num_users, max(min_shards, -(-n // max(1, shard_rows))))), seed)
    finally:
        con.close()
    shutil.rmtree(spill, ignore_errors=True)
    prepared = Prepared(
        root=out,
        shards=shards,
        num_users=len(user_ids),
        num_items=len(item_ids),
        split=split.value,
        test_fraction=test_fraction,
        validation_fraction=validation_fraction,
        seed=seed,
        interactions=n,
        rows={p: sum(s.rows[p] for s in shards) for p in PARTS},
    )
    meta = {"format": FORMAT, **{k: v for k, v in asdict(prepared).items() if k != "root"}}
    tmp = out / "prepared.json.tmp"
    tmp.write_text(json.dumps(meta, indent=1))
    os.replace(tmp, out / "prepared.json")  # last: a folder without it is an unfinished preparation
    return prepared
