"""Bad rows and data errors: what every reader reports about its input (``docs/CONTRACTS.md``
section 1). A row that breaks the contract in a recoverable way is a :class:`BadRow`
(file, line, column, reason), collected in a :class:`BadRowReport`; a break that makes the
data unusable raises :class:`DataError`."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

_SHOW_BAD_ROWS = 10


class DataError(Exception):
    """A hard error in the input data, located by file, line and column where known."""

    def __init__(
        self,
        message: str,
        file: str | None = None,
        line: int | None = None,
        column: str | None = None,
    ) -> None:
        self.message = message
        self.file = None if file is None else str(file)
        self.line = line
        self.column = column
        super().__init__(self._render())

    def _render(self) -> str:
        where = _location(self.file, self.line, self.column)
        return f"{where}: {self.message}" if where else self.message


def _location(file: str | None, line: int | None, column: str | None) -> str:
    """``file:line: column 'c'`` with the parts that are known."""
    parts = []
    if file is not None:
        parts.append(file if line is None else f"{file}:{line}")
    elif line is not None:
        parts.append(f"line {line}")
    if column is not None:
        parts.append(f"column '{column}'")
    return ": ".join(parts)


@dataclass(frozen=True)
class BadRow:
    """One input row that was skipped: where it was and why."""

    file: str
    line: int | None  # 1-based line (or record/row number for non-text sources)
    column: str | None
    reason: str

    def __str__(self) -> str:
        return f"{_location(self.file, self.line, self.column)}: {self.reason}"


class BadRowReport:
    """Every skipped row of a load, in the order they were found."""

    def __init__(self, rows: Iterable[BadRow] = ()) -> None:
        self.rows: list[BadRow] = list(rows)

    def add(self, file: str, line: int | None, column: str | None, reason: str) -> None:
        """Record one bad row."""
        self.rows.append(BadRow(str(file), None if line is None else int(line), column, reason))

    def add_many(
        self,
        file: str,
        lines: Sequence[int] | np.ndarray,
        column: str | None,
        reasons: str | Sequence[str],
    ) -> None:
        """Record several bad rows of one file and column (one reason, or one per line)."""
        file = str(file)
        if isinstance(reasons, str):
            reasons = [reasons] * len(lines)
        for line, reason in zip(np.asarray(lines).tolist(), reasons, strict=True):
            self.rows.append(BadRow(file, int(line), column, reason))

    def extend(self, other: BadRowReport) -> None:
        """Append the rows of another report."""
        self.rows.extend(other.rows)

    @property
    def count(self) -> int:
        """How many rows were skipped."""
        return len(self.rows)

    def __len__(self) -> int:
        return len(self.rows)

    def by_file(self) -> dict[str, int]:
        """Number of bad rows per file, in first-seen order."""
        return dict(Counter(row.file for row in self.rows))

    def summary(self, show: int = _SHOW_BAD_ROWS) -> str:
        """A human-readable summary: counts per file and the first ``show`` rows."""
        if not self.rows:
            return "no bad rows"
        per_file = ", ".join(f"{f}: {n}" for f, n in self.by_file().items())
        lines = [f"{self.count} bad row(s) ({per_file})"]
        lines += [f"  {row}" for row in self.rows[:show]]
        if self.count > show:
            lines.append(f"  ... and {self.count - show} more")
        return "\n".join(lines)

    def check(self, max_bad_rows: int = 0) -> None:
        """Raise :class:`DataError` when more than ``max_bad_rows`` rows were skipped."""
        if max_bad_rows < 0:
            raise ValueError("max_bad_rows must be >= 0")
        if self.count <= max_bad_rows:
            return
        error = DataError(
            f"{self.summary()}\nmore bad rows than the limit of {max_bad_rows}; "
            "fix the input or raise the limit (max_bad_rows) to skip them"
        )
        first = self.rows[0]  # the attributes locate the first bad row
        error.file, error.line, error.column = first.file, first.line, first.column
        raise error

    def __repr__(self) -> str:
        return f"BadRowReport(count={self.count}, by_file={self.by_file()})"
