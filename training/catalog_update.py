"""A new version from the served towers and a fresh item table, without training
(``recsys update-catalog``).

read the item table → verify and read the base version → diff the catalogs →
embed new items and items whose tower inputs changed with the base version's
candidate SavedModel (an unseen id takes the id's out-of-vocabulary path, its
metadata the tower's own) → keep every other known item's vector bit for bit →
carry popularity over (0 for new items) → drop retired items from the users'
histories and the seen table and re-map the rest to the new rows → build and
tune the index by the rules training uses (:func:`training.index.build_index`,
the base version's settings, its known users' query vectors) → index gate →
publish atomically (:func:`training.publish.publish`) a version whose manifest
says ``kind: "catalog_update"`` and names its ``parent_version``. The towers
(``query_model/``, ``candidate_model/``) are copied byte for byte.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from rich.console import Console

from artifact.checksums import sha256_file
from towers.tower import tower_inputs
from training.catalog_base import BaseVersion, open_base
from training.config import TrainConfig
from training.export import VersionArtifact, write_version
from training.index import build_index
from training.index_queries import index_session_queries
from training.item_table import ItemTable, read_item_table
from training.publish import publish
from training.quality_gate import index_gate
from training.saved_tower import SavedTower

console = Console(stderr=True)
MAX_RETIRED_SHARE = 0.5


class LargeChangeError(RuntimeError):
    """The update retires more than half of the base catalog (``--allow-large-change`` to publish it)."""


class CatalogIndexError(RuntimeError):
    """The new index misses its recall target within its time budget (``--allow-low-recall`` to publish it)."""


@dataclass
class UpdateOptions:
    base: str | None = None  # default: the version LATEST names
    max_bad_rows: int = 0
    allow_large_change: bool = False
    allow_low_recall: bool = False
    retain: int = 3
    publish: bool = True


@dataclass
class CatalogDiff:
    """Row i of the new table came from base row ``old_rows[i]`` (-1: a new item)."""

    old_rows: np.ndarray
    retired: np.ndarray  # base rows absent from the new table
    changed: np.ndarray  # new rows of known items whose candidate-tower inputs changed
    new_row_of_old: np.ndarray  # per base row, its new row (-1: retired)

    @property
    def new(self) -> np.ndarray:
        return np.flatnonzero(self.old_rows < 0)

    def counts(self) -> dict[str, int]:
        return {
            "items": len(self.old_rows),
            "new": len(self.new),
            "retired": len(self.retired),
            "changed": len(self.changed),
            "unchanged": int((self.old_rows >= 0).sum() - len(self.changed)),
        }


@dataclass
class UpdateResult:
    version: str | None
    metrics: dict
    diff: CatalogDiff
    item_embeddings: np.ndarray = field(repr=False)


def _same(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    if a.dtype.kind == "f":
        return (a == b) | (np.isnan(a) & np.isnan(b))
    return np.asarray(a == b, dtype=bool)


def diff_catalogs(base: BaseVersion, table: ItemTable, new_inputs: dict[str, np.ndarray]) -> CatalogDiff:
    base_ids = pd.Index(base.items["item_id"].astype(str))
    old_rows = base_ids.get_indexer(pd.Index(table.frame["item_id"])).astype(np.int64)
    known = np.flatnonzero(old_rows >= 0)
    new_row_of_old = np.full(len(base_ids), -1, dtype=np.int64)
    new_row_of_old[old_rows[known]] = known
    old_inputs = tower_inputs(base.spec.candidate, base.items.iloc[old_rows[known]])
    differs = np.zeros(len(known), dtype=bool)
    for name, values in old_inputs.items():
        differs |= ~_same(new_inputs[name][known], values)
    return CatalogDiff(old_rows, np.flatnonzero(new_row_of_old < 0), known[differs], new_row_of_old)


def _without_retired(histories: pd.Series, retired: set[str], sep: str) -> pd.Series:
    def keep(text: object) -> str:
        text = "" if text is None or (isinstance(text, float) and np.isnan(text)) else str(text)
        return sep.join(t for t in text.split(sep) if t and t not in retired) if text else ""

    return histories.map(keep).astype(object)


def remap_users(base: BaseVersion, diff: CatalogDiff) -> pd.DataFrame:
    """users.parquet with retired items dropped from every history column."""
    users = base.users.copy()
    retired = set(base.items["item_id"].astype(str).to_numpy()[diff.retired].tolist())
    if retired:
        for name, sep in base.history_separators().items():
            if name in users.columns:
                users[name] = _without_retired(users[name], retired, sep)
    return users


def remap_seen(base: BaseVersion, diff: CatalogDiff) -> pd.DataFrame:
    """seen.parquet over the new rows: retired items dropped, users left with none dropped."""
    lists = pa.array(base.seen["item_rows"].tolist(), type=pa.list_(pa.int64()))
    owner = pc.list_parent_indices(lists).to_numpy()
    rows = diff.new_row_of_old[pc.list_flatten(lists).to_numpy()]
    keep = rows >= 0
    owner, rows = owner[keep], rows[keep]
    order = np.lexsort((rows, owner))
    owner, rows = owner[order], rows[order]
    counts = np.bincount(owner, minlength=len(base.seen))
    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int32)
    item_rows = pa.ListArray.from_arrays(pa.array(offsets), pa.array(rows, type=pa.int64())).to_pandas()
    seen = pd.DataFrame({"user_id": base.seen["user_id"].astype(str).to_numpy(), "item_rows": item_rows.to_numpy()})
    return seen[counts > 0].reset_index(drop=True)


def _items_frame(base: BaseVersion, table: ItemTable, diff: CatalogDiff) -> pd.DataFrame:
    items = table.frame.drop(columns=["popularity"], errors="ignore").copy()
    popularity = (
        base.items["popularity"].to_numpy(dtype=np.int64) if "popularity" in base.items else np.zeros(len(base.items), np.int64)
    )
    items["popularity"] = np.where(diff.old_rows >= 0, popularity[np.maximum(diff.old_rows, 0)], 0).astype(np.int64)
    return items


class _Clock:
    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self._start = time.perf_counter()

    def lap(self, name: str, message: str) -> None:
        now = time.perf_counter()
        self.seconds[name] = round(now - self._start, 3)
        console.log(f"{message}: done in {now - self._start:.1f}s")
        self._start = now


def _index_settings(base: BaseVersion) -> dict:
    training = base.contract.training or {}
    index = base.contract.index
    # the parent's operating point is tried first: tuning only if it misses
    parent_point = index.params.model_dump() if index is not None and index.kind == "tree_ah" else None
    return {
        "target_recall": training.get("index_target_recall"),
        "max_us_per_query": training.get("index_max_us_per_query"),
        "sample_size": training.get("index_tuning_queries"),
        "seed": int(training.get("seed", 0) or 0),
        "start_from": parent_point,
    }


def _session_queries(base: BaseVersion, query: SavedTower, users: pd.DataFrame) -> dict:
    """The session queries the index is tuned on, as training tunes it (``training.index_queries.index_session_queries``):
    visits cut from the re-mapped users' histories, embedded by the served query tower with every other input at
    its manifest default. Nothing without a history input."""
    if not len(users):
        return {}
    training = base.contract.training or {}
    share = float(training.get("index_session_share", 0.0) or 0.0)
    found = index_session_queries(
        query.embed,
        base.spec,
        {name: users[name].to_numpy() for name in base.history_separators()},
        base.defaults("query"),
        share,
        int(training.get("index_tuning_queries") or TrainConfig().index_tuning_queries),
        int(training.get("seed", 0) or 0),
    )
    return {} if found is None else {"sessions": found.vectors, "session_share": share}


def _metrics(base: BaseVersion, table: ItemTable, diff: CatalogDiff, index: dict, seconds: dict) -> dict:
    parent = base.contract.metrics
    out = {
        "catalog_update": {
            **diff.counts(),
            "parent_version": base.name,
            "items_file": table.file,
            "bad_rows": int(table.report.count),
            "seconds": seconds,
        },
        "index": index,
    }
    if "evaluation" in parent:  # the towers are the parent's: so is their evaluation (on the catalog they were trained on)
        out["evaluation"] = parent["evaluation"]
        out["evaluated_version"] = parent.get("evaluated_version", base.name)
        out["training"] = parent.get("training", {})
    return out


def update_catalog(model_root: Path, items_path: Path, options: UpdateOptions | None = None) -> UpdateResult:
    """Publish (unless ``options.publish`` is false) a catalog update of ``options.base`` under ``model_root``."""
    options = options if options is not None else UpdateOptions()
    model_root = Path(model_root)
    clock = _Clock()
    base = open_base(model_root, options.base)
    clock.lap("verify_base", f"verified base version {base.name} ({len(base.items):,} items)")
    table = read_item_table(items_path, base.spec, options.max_bad_rows)
    if table.report.count:
        console.log(f"skipped bad rows (within --max-bad-rows {options.max_bad_rows}):\n{table.report.summary()}")
    inputs = tower_inputs(base.spec.candidate, table.frame)
    diff = diff_catalogs(base, table, inputs)
    clock.lap("read", f"read {len(table.frame):,} items from {table.file}: {diff.counts()}")
    if len(diff.retired) > MAX_RETIRED_SHARE * len(base.items) and not options.allow_large_change:
        raise LargeChangeError(
            f"the item table retires {len(diff.retired):,} of the base version's {len(base.items):,} items "
            f"(more than {MAX_RETIRED_SHARE:.0%}); pass --allow-large-change if that is intended"
        )

    embed = np.union1d(diff.new, diff.changed)
    candidate = SavedTower(base.path / "candidate_model", base.manifest["candidate_inputs"])
    fresh = candidate.embed(candidate.columns(table.frame, inputs), embed)
    emb = np.empty((len(table.frame), base.spec.embedding_dim), dtype=np.float32)
    kept = np.setdiff1d(np.flatnonzero(diff.old_rows >= 0), diff.changed)
    emb[kept] = base.embeddings[diff.old_rows[kept]]
    emb[embed] = fresh
    clock.lap("embed", f"embedded {len(embed):,} new or changed items, kept {len(kept):,} vectors")

    users, seen = remap_users(base, diff), remap_seen(base, diff)
    query = SavedTower(base.path / "query_model", base.manifest["query_inputs"])
    user_vectors = query.embed(query.columns(users)) if len(users) else None
    clock.lap("tables", f"re-mapped {len(users):,} users and {len(seen):,} seen lists")

    sessions = _session_queries(base, query, users)
    searcher, info = build_index(emb, user_vectors, **_index_settings(base), **sessions)
    gate = index_gate(info.__dict__, options.allow_low_recall)
    clock.lap(
        "index", f"built the {info.kind} index (recall@10 vs exact {info.recall_at_10_vs_exact}); index gate: {gate.message}"
    )
    metrics = _metrics(base, table, diff, info.__dict__, clock.seconds)
    metrics["index_gate"] = {"passed": gate.passed, "message": gate.message}
    if not gate.passed:
        raise CatalogIndexError(f"index gate refused the new version: {gate.message}")
    if not options.publish:
        return UpdateResult(None, metrics, diff, emb)

    report = base.path / "report.png"
    artifact = VersionArtifact(
        spec=base.spec,
        query_tower=None,
        candidate_tower=None,
        query_defaults=base.defaults("query"),
        candidate_defaults=base.defaults("candidate"),
        item_embeddings=emb,
        items=_items_frame(base, table, diff),
        users=users,
        seen=seen,
        searcher=searcher,
        metrics=metrics,
        manifest_extra={
            "dataset": {
                **(base.manifest.get("dataset") or {}),
                "catalog": {"file": table.file, "sha256": sha256_file(Path(table.file)), "bad_rows": int(table.report.count)},
            },
            "training": base.manifest.get("training") or {},
            "index": info.__dict__,
        },
        write_report=(lambda path: shutil.copyfile(report, path)) if "report.png" in base.manifest["files"] else None,
        kind="catalog_update",
        parent_version=base.name,
        towers_from=base.path,
    )
    expect = base.name if options.base is None else None  # an update of LATEST must not replace a version published meanwhile
    version = publish(model_root, lambda dest, v: write_version(dest, artifact, v), retain=options.retain, expect_latest=expect)
    clock.lap("publish", f"published version {version} (catalog update of {base.name})")
    metrics["catalog_update"]["seconds"] = clock.seconds
    return UpdateResult(version, metrics, diff, emb)
