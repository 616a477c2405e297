"""DuckDB over Parquet files as the run uses it: a connection whose buffers are bounded and
spill to a folder, and a list of files read as one table in the order given."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pyarrow as pa


def connect(memory_limit: str | None, temp_dir: Path) -> duckdb.DuckDBPyConnection:
    """A connection holding at most ``memory_limit`` (DuckDB's syntax, e.g. ``1GB``), spilling
    into ``temp_dir``; row order comes from ORDER BY only."""
    con = duckdb.connect()
    con.execute("SET preserve_insertion_order = false")
    con.execute(f"SET temp_directory = '{temp_dir}'")
    if memory_limit:
        con.execute(f"SET memory_limit = '{memory_limit}'")
    return con


def ordered_files(con: duckdb.DuckDBPyConnection, files: list[Path]) -> str:
    """SQL of the rows of the Parquet ``files`` with ``filename``, ``file_row_number`` and
    ``file_index`` (the file's place in ``files``): by (file_index, file_row_number) they are
    the files' rows in order."""
    names = [str(Path(f)) for f in files]
    if not names:
        raise ValueError("no Parquet files given")
    con.register("file_order", pa.table({"filename": names, "file_index": list(range(len(names)))}))
    return (
        f"(SELECT s.*, o.file_index FROM read_parquet({names!r}, filename = true, file_row_number = true) s "
        "JOIN file_order o USING (filename))"
    )
