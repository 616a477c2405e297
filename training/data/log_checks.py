"""Validation of an interaction log held as Parquet files (:class:`training.data.log.InteractionLog`),
as DuckDB queries over the files: the rules of :func:`training.data.tables.validate_canonical`
for interactions, with bad rows located by file and row (1-based): the log's own, or the
source's where the log records them (``source_file``, ``source_line``).

A log without bad rows is returned as it is; otherwise its good rows, in order, are written
once into ``valid/`` inside the log's folder and that log is returned."""

from __future__ import annotations

import shutil

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa

from training.data.bad_rows import BadRowReport, DataError
from training.data.log import InteractionLog
from training.duckdb_files import connect, ordered_files

MEMORY_LIMIT = "1GB"  # DuckDB spills past it: the log never has to fit in memory

# (column, SQL condition, reason) in the order validate_canonical applies them; the first that holds is reported
_RULES: list[tuple[str, str, str]] = [
    ("user_id", "s.user_id IS NULL OR s.user_id = ''", "missing user_id"),
    ("item_id", "s.item_id IS NULL OR s.item_id = ''", "missing item_id"),
    ("timestamp", "s.timestamp IS NULL", "missing or non-finite timestamp (nan)"),
    ("timestamp", "s.timestamp < 0", "negative timestamp {}"),
    ("weight", "s.weight IS NULL OR NOT isfinite(s.weight)", "weight {} is not a finite number"),
    ("user_id", "u.known_user IS NULL", "unknown user_id {!r} (not in the users table)"),
    ("item_id", "i.known_item IS NULL", "unknown item_id {!r} (not in the items table)"),
]


def _check_types(con: duckdb.DuckDBPyConnection, source: str, log: InteractionLog) -> None:
    types = {row[0]: str(row[1]) for row in con.execute(f"DESCRIBE SELECT * FROM {source}").fetchall()}
    for column in ("user_id", "item_id"):
        if types.get(column) != "VARCHAR":
            raise DataError(f"interactions.{column} must hold str ids, found {types.get(column)}", file=str(log.files[0]))
    if "timestamp" in types and types["timestamp"] not in ("BIGINT", "INTEGER"):
        raise DataError(f"interactions.timestamp must be integer seconds, got {types['timestamp']}", file=str(log.files[0]))
    if "weight" in types and types["weight"] not in ("DOUBLE", "FLOAT"):
        raise DataError(f"interactions.weight must be numeric, got {types['weight']}", file=str(log.files[0]))


def _values(column: str) -> str:
    return f"CAST(s.{column} AS VARCHAR)"


def check_log(log: InteractionLog, item_ids: pd.Series, user_ids: pd.Series, report: BadRowReport) -> InteractionLog:
    """The log's good rows (``log`` itself when all are good); each bad row goes into ``report``."""
    folder = log.files[0].parent
    con = connect(MEMORY_LIMIT, folder / ".spill")
    try:
        con.register("known_users", pa.table({"known_user": pa.array(np.asarray(user_ids, dtype=object), pa.string())}))
        con.register("known_items", pa.table({"known_item": pa.array(np.asarray(item_ids, dtype=object), pa.string())}))
        source = ordered_files(con, list(log.files))
        _check_types(con, source, log)
        rules = [r for r in _RULES if r[0] in log.columns]
        which = "CASE " + " ".join(f"WHEN {cond} THEN {k}" for k, (_, cond, _) in enumerate(rules)) + " END"
        provenance = "source_file" in log.columns and "source_line" in log.columns  # the rows' own files and lines
        where = (
            "s.source_file, s.source_line" if provenance else "s.filename AS source_file, s.file_row_number + 1 AS source_line"
        )
        con.execute(
            f"CREATE TEMP TABLE checked AS SELECT s.file_index, s.file_row_number, {where}, {which} AS rule, "
            f"CASE {' '.join(f'WHEN {cond} THEN {_values(col)}' for col, cond, _ in rules)} END AS value "
            f"FROM {source} s LEFT JOIN known_users u ON s.user_id = u.known_user "
            "LEFT JOIN known_items i ON s.item_id = i.known_item"
        )
        bad = con.execute(
            "SELECT source_file, source_line, rule, value FROM checked WHERE rule IS NOT NULL ORDER BY file_index, file_row_number"
        ).fetchall()
        if not bad:
            return log
        for file, line, rule, value in bad:
            column, _, reason = rules[rule]
            report.add(file, line, column, reason.format("nan" if value is None else _shown(column, value)))
        out = folder / "valid"
        shutil.rmtree(out, ignore_errors=True)
        out.mkdir()
        columns = ", ".join(f"s.{c}" for c in log.columns)
        con.execute(
            f"COPY (SELECT {columns} FROM {source} s JOIN checked c USING (file_index, file_row_number) "
            "WHERE c.rule IS NULL ORDER BY s.file_index, s.file_row_number) "
            f"TO '{out / 'part-00000.parquet'}' (FORMAT parquet)"
        )
        return InteractionLog.of([out / "part-00000.parquet"])
    finally:
        con.close()


def _shown(column: str, value: str) -> object:
    """The value as the in-memory validator shows it (numbers as Python prints them)."""
    if column == "weight":
        return float(value)
    if column == "timestamp":
        return int(value)
    return value
