"""users.parquet's query inputs: what the service feeds the query tower for each known user,
made for some user rows at a time.

A history feature's stored value is the user's latest training items joined into one
string, and those strings grow with the log (a million users with 50 recent items each
are 0.4 GB of text). So they are never put together for every user at once: the user
vectors are embedded a batch of users at a time, the index's session queries cut only the
picked users' histories, and users.parquet is written a part at a time (:meth:`tables`).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import tensorflow as tf

from training.model import embed
from training.prepared import PreparedData, subset_inputs
from training.stream.reduce import UserLists

TABLE_ROWS = 65_536  # users per part of users.parquet


@dataclass(frozen=True)
class StoredInputs:
    """Per user row, the query tower's raw inputs as users.parquet stores them: the user's
    columns, and each history feature its latest items (``latest``; None without one)."""

    prep: PreparedData
    latest: UserLists | None

    def __len__(self) -> int:
        return self.prep.num_users

    def take(self, users: np.ndarray) -> dict[str, np.ndarray]:
        """The inputs of the user rows ``users``, in that order."""
        users = np.asarray(users, dtype=np.int64)
        if self.latest is None:
            return subset_inputs(self.prep.user_inputs, users)
        return self.prep.latest_query_inputs(self.latest, users)

    def rows(self, start: int, stop: int) -> dict[str, np.ndarray]:
        """The inputs of user rows ``start..stop-1``."""
        return self.take(np.arange(start, min(stop, len(self)), dtype=np.int64))

    def with_history(self) -> np.ndarray:
        """The user rows whose stored history is not empty (every row without a history feature)."""
        if self.latest is None:
            return np.arange(len(self), dtype=np.int64)
        return np.flatnonzero(self.latest.lengths)

    def tables(self, rows: int = TABLE_ROWS) -> Iterator[pa.Table]:
        """users.parquet (``user_id`` then the inputs, in user row order), ``rows`` users at a time."""
        for start in range(0, len(self), rows):
            stop = min(start + rows, len(self))
            frame = pd.DataFrame({"user_id": self.prep.user_ids[start:stop], **self.rows(start, stop)})
            yield pa.Table.from_pandas(frame, preserve_index=False)


@dataclass(frozen=True)
class QueryVectors:
    """Per user row, the query tower's vector of the user's stored inputs, embedded for the rows
    asked for. A million users' vectors (0.26 GB at dim 64) are never all held: the evaluation
    reads its sample's users and the index's tuning its sample's, a few thousand each."""

    tower: tf.keras.Model
    inputs: StoredInputs

    def __len__(self) -> int:
        return len(self.inputs)

    @property
    def dim(self) -> int:
        return int(self.tower.output_shape[-1])

    def __getitem__(self, rows: np.ndarray | int) -> np.ndarray:
        """The vectors of user ``rows`` (an array of rows: [n, dim]; one row: [dim])."""
        picked = np.asarray(rows, dtype=np.int64)
        vectors = embed(self.tower, self.inputs.take(np.atleast_1d(picked)))
        return vectors[0] if picked.ndim == 0 else vectors
