"""Training batches through ``tf.data`` from prepared shards, each worker its own.

A worker reads the shards ``files[worker::workers]`` (file-level sharding: disjoint,
and together covering every shard once per epoch). Per epoch the worker's shards come
in a seeded order, ``mix`` at a time: their fit examples (histories cut per shard,
:func:`training.stream.shard.shard_examples`) are pooled, shuffled and cut into
batches; a remainder carries over to the next group, so only the epoch's last batch
is short. Memory: ``mix`` shards' examples (and a batch's remainder), whatever the size
of the log.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import tensorflow as tf
from rich.console import Console

from training.stream.prepare import Prepared, ShardInfo
from training.stream.shard import Examples, read_shard, shard_examples

console = Console(stderr=True)

DEFAULT_MIX = 4  # shards pooled per shuffle: a batch's users come from this many shards


def worker_shards(prepared: Prepared, worker: int = 0, workers: int = 1) -> list[ShardInfo]:
    """The shards worker ``worker`` of ``workers`` reads (every ``workers``-th, from ``worker``)."""
    if not 0 <= worker < workers:
        raise ValueError(f"worker {worker} of {workers}")
    return prepared.shards[worker::workers]


def epoch_batches(
    root: Path,
    shards: list[ShardInfo],
    parts: tuple[int, ...],
    histories: dict[str, int],
    batch_size: int,
    seed: int,
    epoch: int,
    mix: int = DEFAULT_MIX,
) -> Iterator[Examples]:
    """One epoch of batches of the examples of ``parts`` from ``shards`` (seeded by ``seed`` and ``epoch``)."""
    rng = np.random.default_rng([seed, epoch])
    order = rng.permutation(len(shards))
    carry: Examples | None = None
    for start in range(0, len(order), max(1, mix)):
        group = [shard_examples(read_shard(root / shards[k].file), parts, histories) for k in order[start : start + mix]]
        pooled = Examples.concat(([carry] if carry is not None else []) + group)
        pooled = pooled.take(rng.permutation(len(pooled)))
        full = len(pooled) - len(pooled) % batch_size
        yield from pooled.take(slice(0, full)).batches(batch_size)
        carry = pooled.take(slice(full, len(pooled))).compact()
        del group, pooled  # before the next group is read: one group's examples in memory at a time
    if carry is not None and len(carry):
        yield carry


def shard_dataset(
    prepared: Prepared,
    parts: tuple[int, ...],
    histories: dict[str, int],
    batch_size: int,
    seed: int,
    features: Callable[[tf.Tensor, tf.Tensor, dict[str, tf.Tensor]], dict[str, tf.Tensor]],
    worker: int = 0,
    workers: int = 1,
    mix: int = DEFAULT_MIX,
) -> tf.data.Dataset:
    """Batches of this worker's examples of ``parts``, mapped to the towers' inputs by
    ``features(user_rows, item_rows, histories)``; a new seeded order each epoch
    (each pass over the dataset is an epoch)."""
    shards = worker_shards(prepared, worker, workers)
    console.log(
        f"worker {worker} of {workers} reads {len(shards)} of {len(prepared.shards)} shards "
        f"({prepared.rows_of(parts, shards):,} examples): "
        f"{', '.join(s.file for s in shards[:4])}{' ...' if len(shards) > 4 else ''}"
    )
    if not shards:
        raise ValueError(f"worker {worker} of {workers} has no shard: the preparation has {len(prepared.shards)}")
    epochs = itertools.count()

    def batches() -> Iterator[Examples]:
        return epoch_batches(prepared.root, shards, parts, histories, batch_size, seed, next(epochs), mix)

    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.OFF  # workers read their own
    return examples_dataset(batches, histories, features, options)


def examples_dataset(
    batches: Callable[[], Iterator[Examples]],
    histories: dict[str, int],
    features: Callable[[tf.Tensor, tf.Tensor, dict[str, tf.Tensor]], dict[str, tf.Tensor]],
    options: tf.data.Options | None = None,
) -> tf.data.Dataset:
    """``tf.data`` over the batches ``batches()`` yields (called once per pass), each as
    (user rows, item rows, history matrices) mapped to the towers' inputs by ``features``."""

    def generate() -> Iterator[tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]]:
        for batch in batches():
            yield batch.user_rows, batch.item_rows, batch.histories()

    signature = (
        tf.TensorSpec([None], tf.int64),
        tf.TensorSpec([None], tf.int64),
        {name: tf.TensorSpec([None, length], tf.int32) for name, length in histories.items()},
    )
    ds = tf.data.Dataset.from_generator(generate, output_signature=signature)
    if options is not None:
        ds = ds.with_options(options)
    return ds.map(features, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)
