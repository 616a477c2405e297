"""A training run's preparation: written once (by the chief) beside the run, shared by
every worker, and read back as the run's split.

The folder is ``<model_root>/.runs/<run fingerprint>/prepared``: the fingerprint covers
the data, the spec and the config, so a resumed run finds its own preparation, and a
folder without ``prepared.json`` is an unfinished one (the chief writes it again)."""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from rich.console import Console

from training.config import TrainConfig
from training.prepared import PreparedData, interaction_rows
from training.split import Split
from training.stream.prepare import FIT, TEST, VALIDATION, Prepared, prepare_shards

console = Console(stderr=True)

WAIT_LOG_EVERY_S = 60.0
SHARDS_PER_WORKER = 4  # a worker's share is several users' hashes: the shares come out near equal


@dataclass(frozen=True)
class ExampleSource:
    """Where training examples come from: the prepared shards, the parts that are
    examples, and the parts early stopping validates on (none for a refit)."""

    prepared: Prepared
    parts: tuple[int, ...] = (FIT,)
    validation: tuple[int, ...] = (VALIDATION,)


def rows_table(prep: PreparedData) -> pa.Table:
    """The interactions as the vocabularies' rows and their times (position order), int32
    rows; mapped from the data's ids, not kept on ``prep``."""
    rows = interaction_rows(prep.data, prep.user_ids, prep.item_ids, dtype=np.int32)
    return pa.table({"user_row": rows.user_rows, "item_row": rows.item_rows, "time": rows.times})


def prepare_run(
    prep: PreparedData, config: TrainConfig, folder: Path, *, chief: bool = True, workers: int = 1, wait_s: float = 3600.0
) -> Prepared:
    """The run's preparation in ``folder``: reused when complete, else written by the
    chief (at least :data:`SHARDS_PER_WORKER` shards per worker); other workers wait for
    it (``wait_s`` at most, a line per minute)."""
    folder = Path(folder)
    if (folder / "prepared.json").exists():
        found = Prepared.read(folder)
        if found.interactions == prep.data.num_interactions:
            console.log(f"using the run's preparation in {folder} ({len(found.shards)} shards)")
            return found
        if not chief:
            raise RuntimeError(f"{folder} holds a preparation of {found.interactions:,} interactions, not this data's")
    if chief:
        shutil.rmtree(folder, ignore_errors=True)  # an unfinished or foreign preparation
        folder.parent.mkdir(parents=True, exist_ok=True)
        log = prep.data.log
        return prepare_shards(
            rows_table(prep) if log is None else list(log.files),
            prep.user_ids,
            prep.item_ids,
            folder,
            split=config.split,
            test_fraction=config.test_fraction,
            validation_fraction=config.validation_fraction,
            seed=config.seed,
            min_shards=SHARDS_PER_WORKER * workers,
            memory_limit=config.prepare_memory_limit,
        )
    start = last = time.monotonic()
    while not (folder / "prepared.json").exists():
        if time.monotonic() - start > wait_s:
            raise TimeoutError(f"no preparation in {folder} after {wait_s:.0f}s: is the chief running?")
        if time.monotonic() - last >= WAIT_LOG_EVERY_S:
            console.log(f"waiting for the chief's preparation in {folder}")
            last = time.monotonic()
        time.sleep(0.5)
    return prepare_run(prep, config, folder, chief=False, workers=workers, wait_s=0)


def split_of(prepared: Prepared) -> tuple[Split, np.ndarray, np.ndarray]:
    """(split, fit rows, validation rows) as positions in the interactions, sorted."""
    parts = np.full(prepared.interactions, -1, dtype=np.int8)
    for file in prepared.files():
        table = pq.read_table(file, columns=["position", "part"])
        parts[table.column("position").to_numpy()] = table.column("part").to_numpy()
    fit, val, test = (np.flatnonzero(parts == p) for p in (FIT, VALIDATION, TEST))
    return Split(train=np.flatnonzero((parts == FIT) | (parts == VALIDATION)), test=test), fit, val


def rows_prepared(prep: PreparedData, parts: dict[int, np.ndarray], folder: Path, seed: int) -> Prepared:
    """The interactions of ``prep`` given in ``parts`` (part -> rows; others left out) as
    prepared shards in ``folder`` (replaced): for callers that hold their own split
    (benchmarks, tests). As many shards as a single machine's run has, so that the same
    rows give the same batches as ``recsys train``."""
    labels = np.full(len(prep.user_rows), -1, dtype=np.int8)
    for part, rows in parts.items():
        labels[np.asarray(rows, dtype=np.int64)] = part
    shutil.rmtree(folder, ignore_errors=True)
    table = pa.table({"user_row": prep.user_rows, "item_row": prep.item_rows, "time": prep.times})
    return prepare_shards(table, prep.user_ids, prep.item_ids, folder, seed=seed, parts=labels, min_shards=SHARDS_PER_WORKER)


def rows_source(
    prep: PreparedData, rows: np.ndarray, folder: Path, seed: int, validation: np.ndarray | None = None
) -> ExampleSource:
    """Training examples ``rows`` of ``prep`` (and early stopping's ``validation`` rows) as
    prepared shards in ``folder`` (:func:`rows_prepared`)."""
    parts = {FIT: rows} if validation is None else {FIT: rows, VALIDATION: validation}
    return ExampleSource(rows_prepared(prep, parts, folder, seed), (FIT,))
