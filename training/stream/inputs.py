"""The trainer's input: batches from prepared shards, one input pipeline per worker.

Single machine: one pipeline reads every shard, an epoch is one pass. Several workers
(``MultiWorkerMirroredStrategy``): ``distribute_datasets_from_function`` gives each
worker's pipeline its id, the pipeline reads its own shards
(:func:`training.stream.dataset.worker_shards`) in batches of the per-replica size, and
since workers' shares differ by a few rows, the pipelines repeat and an epoch is the
number of full per-replica batches of the smallest share (every worker steps together)."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import tensorflow as tf
from rich.console import Console

from training.prepared import PreparedData, batch_features
from training.stream.dataset import shard_dataset, worker_shards
from training.stream.run import ExampleSource, rows_source

console = Console(stderr=True)


@contextmanager
def examples_of(
    prep: PreparedData, rows: np.ndarray, run_dir: Path | None, seed: int, validation: np.ndarray | None = None
) -> Iterator[ExampleSource]:
    """``rows`` (and early stopping's ``validation`` rows) as an example source, prepared
    under ``run_dir`` (kept with the run, so a resumed run reads the same shards) or in a
    temporary folder removed on exit."""
    if run_dir is not None:
        yield rows_source(prep, rows, Path(run_dir) / "examples", seed, validation)
        return
    with tempfile.TemporaryDirectory(prefix="recsys-examples-") as tmp:
        yield rows_source(prep, rows, Path(tmp) / "prepared", seed, validation)


def workers_of(strategy: tf.distribute.Strategy | None) -> int:
    """The number of workers (input pipelines) of ``strategy``: 1 but under MultiWorkerMirroredStrategy."""
    if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return 1
    spec = strategy.cluster_resolver.cluster_spec()
    return sum(spec.num_tasks(job) for job in ("chief", "worker") if job in spec.jobs)


def training_input(
    prep: PreparedData,
    source: ExampleSource,
    sampling_p: np.ndarray,
    batch_size: int,
    seed: int,
    strategy: tf.distribute.Strategy,
) -> tuple[tf.data.Dataset | tf.distribute.DistributedDataset, int | None]:
    """(dataset, steps per epoch or None for a whole pass) for ``model.fit``."""
    histories = {f.name: f.history_length for f in prep.history}
    workers = workers_of(strategy)
    if workers <= 1:
        features = batch_features(prep, sampling_p)
        batches = -(-source.prepared.rows_of(source.parts) // batch_size)  # the last one short
        ds = shard_dataset(source.prepared, source.parts, histories, batch_size, seed, features)
        return ds.apply(tf.data.experimental.assert_cardinality(batches)), None
    per_replica = max(1, batch_size // strategy.num_replicas_in_sync)
    shares = [source.prepared.rows_of(source.parts, worker_shards(source.prepared, w, workers)) for w in range(workers)]
    steps = max(1, min(shares) // per_replica)
    console.log(f"{workers} workers, examples per worker {shares}: {steps} steps of {per_replica} per replica per epoch")

    def pipeline(context: tf.distribute.InputContext) -> tf.data.Dataset:
        features = batch_features(prep, sampling_p)
        return shard_dataset(
            source.prepared,
            source.parts,
            histories,
            context.get_per_replica_batch_size(batch_size),
            seed,
            features,
            worker=context.input_pipeline_id,
            workers=context.num_input_pipelines,
        ).repeat()

    return strategy.distribute_datasets_from_function(pipeline), steps
