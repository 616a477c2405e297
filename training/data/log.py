"""The interaction log as Parquet files, for a log that need not be held in memory.

A source given a folder (``recsys train`` gives one) writes its interactions there a chunk
at a time, in canonical columns (``user_id``, ``item_id`` as strings, ``timestamp`` int64,
``weight`` float64, the last two when the source has them), and hands the run an
:class:`InteractionLog` instead of a DataFrame. The run's preparation reads the files
(:func:`training.stream.prepare.prepare_shards`); validation
(:mod:`training.data.log_checks`) and the fingerprint read them a batch at a time.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

TYPES = {"user_id": pa.string(), "item_id": pa.string(), "timestamp": pa.int64(), "weight": pa.float64()}
# where each row came from, for error messages (a source read from files writes them): not data, not fingerprinted
PROVENANCE = {"source_file": pa.string(), "source_line": pa.int64()}
FILE_ROWS = 4_000_000  # rows per file of a written log
BATCH_ROWS = 1 << 18  # rows read at a time


@dataclass(frozen=True)
class InteractionLog:
    """Parquet files holding the interactions in canonical columns, in order (file, row)."""

    files: tuple[Path, ...]
    rows: int
    columns: tuple[str, ...]

    @classmethod
    def of(cls, files: list[Path]) -> InteractionLog:
        """The log of ``files`` (their rows and columns from the Parquet footers)."""
        if not files:
            raise ValueError("an interaction log needs at least one file")
        schema = pq.read_schema(files[0])
        rows = sum(pq.ParquetFile(f).metadata.num_rows for f in files)
        return cls(tuple(Path(f) for f in files), rows, tuple(schema.names))

    def batches(self, columns: list[str] | None = None, rows: int = BATCH_ROWS) -> Iterator[pa.RecordBatch]:
        """The log's rows in order, ``rows`` at a time (a batch never spans two files)."""
        for file in self.files:
            yield from pq.ParquetFile(file).iter_batches(batch_size=rows, columns=columns)

    def frames(self, columns: list[str] | None = None, rows: int = BATCH_ROWS) -> Iterator[pd.DataFrame]:
        """:meth:`batches` as DataFrames (ids as ``str``)."""
        for batch in self.batches(columns, rows):
            yield batch.to_pandas()

    @property
    def data_columns(self) -> tuple[str, ...]:
        """The log's columns but its provenance."""
        return tuple(c for c in self.columns if c not in PROVENANCE)

    def empty_frame(self) -> pd.DataFrame:
        """No rows, the log's data columns: what ``CanonicalData.interactions`` holds beside a log."""
        return pq.read_schema(self.files[0]).empty_table().select(list(self.data_columns)).to_pandas()


class LogWriter:
    """Writes an interaction log into ``folder`` (which must not hold one), a table at a time."""

    def __init__(self, folder: Path, columns: tuple[str, ...], file_rows: int = FILE_ROWS) -> None:
        unknown = [c for c in columns if c not in TYPES and c not in PROVENANCE]
        if unknown or "user_id" not in columns or "item_id" not in columns:
            raise ValueError(
                f"log columns must include user_id and item_id, among {list(TYPES) + list(PROVENANCE)}; got {list(columns)}"
            )
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        if any(self.folder.glob("part-*.parquet")):
            raise FileExistsError(f"{self.folder} already holds an interaction log")
        self.schema = pa.schema([(c, TYPES.get(c) or PROVENANCE[c]) for c in columns])
        self.file_rows = file_rows
        self.files: list[Path] = []
        self.rows = 0
        self._writer: pq.ParquetWriter | None = None
        self._in_file = 0

    def write(self, frame: pd.DataFrame) -> None:
        """Append ``frame``'s rows (its canonical columns, cast to the log's types)."""
        table = pa.Table.from_pandas(frame[self.schema.names], schema=self.schema, preserve_index=False)
        start = 0
        while start < table.num_rows:
            if self._writer is None or self._in_file >= self.file_rows:
                self._next_file()
            assert self._writer is not None
            take = min(table.num_rows - start, self.file_rows - self._in_file)
            self._writer.write_table(table.slice(start, take))
            self._in_file += take
            self.rows += take
            start += take

    def _next_file(self) -> None:
        if self._writer is not None:
            self._writer.close()
        path = self.folder / f"part-{len(self.files):05d}.parquet"
        self._writer = pq.ParquetWriter(path, self.schema)
        self.files.append(path)
        self._in_file = 0

    def close(self) -> InteractionLog:
        """Finish the last file; the log written (one empty file when nothing was)."""
        if self._writer is None:
            self._next_file()
        assert self._writer is not None
        self._writer.close()
        self._writer = None
        return InteractionLog(tuple(self.files), self.rows, tuple(self.schema.names))
