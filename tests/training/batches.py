"""``recsys train``'s training batches for tests: the rows prepared as shards and read
through ``tf.data`` (training.stream), the trainer's own input path."""

from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import tensorflow as tf

from training.prepared import PreparedData, sampling_probabilities
from training.stream.inputs import examples_of, training_input


@contextmanager
def training_batches(prep: PreparedData, rows: np.ndarray, batch_size: int, seed: int) -> Iterator[tf.data.Dataset]:
    """The batches the trainer fits on for ``rows`` (valid inside the block: the shards live there)."""
    with examples_of(prep, rows, None, seed) as source:
        dataset, _ = training_input(
            prep, source, sampling_probabilities(prep.item_counts(rows)), batch_size, seed, tf.distribute.get_strategy()
        )
        yield dataset
