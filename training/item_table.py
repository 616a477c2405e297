"""The item table a catalog update reads (``recsys update-catalog --items FILE``).

FILE is a CSV or Parquet file, or a YAML file whose ``items:`` entry is the
same mapping a ``files:`` source's spec uses (path, format, columns,
multi_valued; other entries, such as ``interactions:``, are ignored, so a
training spec serves as it is). It is read by the ``files:`` reader, then held
to the rules training holds items to, plus the columns the served version's
candidate tower reads:

* a column the tower needs is missing, the table is empty, or an id occurs
  twice: an error (``DataError``, naming the columns / the lines);
* a row without an id, an id holding a history feature's separator, a value of
  a numeric tower feature that is not a finite number (blank is allowed: the
  tower imputes it), or a CSV line pandas cannot split: a bad row, reported by
  file, line and column; more than ``max_bad_rows`` of them is an error.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from towers.spec import FeatureKind, ModelSpec
from training.data.bad_rows import BadRowReport, DataError
from training.data.files import read_entities  # the files: reader's own item-table path, reused as is
from training.data.files_spec import ItemsFile
from training.data.progress import QUIET

_YAML = (".yaml", ".yml")


class _ItemsOnly(BaseModel):
    """The part of a files spec a catalog update reads."""

    model_config = ConfigDict(extra="ignore")

    items: ItemsFile


@dataclass
class ItemTable:
    """The valid rows of an item table, with where they came from."""

    frame: pd.DataFrame  # item_id (str, unique) + metadata columns
    lines: np.ndarray  # 1-based line (CSV) or record (Parquet) of each row
    file: str
    report: BadRowReport  # every skipped row


def _items_file(path: Path) -> tuple[Path, ItemsFile]:
    """(folder relative paths resolve against, the items file description)."""
    if path.suffix.lower() not in _YAML:
        return path.parent, ItemsFile(path=str(path))
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as error:
        raise DataError(f"cannot read the items spec: {error}", file=str(path)) from error
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        raise DataError(f"invalid YAML: {error}", file=str(path), line=None if mark is None else mark.line + 1) from error
    if not isinstance(raw, dict) or "items" not in raw:
        raise DataError("the items spec must be a YAML mapping with an 'items' entry (as in a files: spec)", file=str(path))
    try:
        return path.parent, _ItemsOnly.model_validate(raw).items
    except ValidationError as error:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in error.errors())
        raise DataError(f"invalid items spec: {problems}", file=str(path)) from error


def _needed_columns(frame: pd.DataFrame, spec: ModelSpec, file: str) -> None:
    needed = [f.name for f in spec.candidate.features]
    missing = [name for name in needed if name not in frame.columns]
    if missing:
        raise DataError(
            f"the item table lacks column(s) {', '.join(missing)} that the served version's candidate tower reads "
            f"(it reads {', '.join(needed)}; columns present: {', '.join(map(str, frame.columns))})",
            file=file,
            column=missing[0],
        )


def _flag(
    report: BadRowReport, bad: np.ndarray, mask: np.ndarray, file: str, lines: np.ndarray, column: str, reasons: list[str] | str
) -> None:
    new = mask & ~bad
    if new.any():
        picked = reasons if isinstance(reasons, str) else [r for r, n in zip(reasons, new, strict=True) if n]
        report.add_many(file, lines[new], column, picked)
        bad |= new


def _bad_rows(frame: pd.DataFrame, lines: np.ndarray, file: str, spec: ModelSpec, report: BadRowReport) -> np.ndarray:
    bad = np.zeros(len(frame), dtype=bool)
    ids = frame["item_id"]
    _flag(report, bad, (ids.isna() | (ids.fillna("") == "")).to_numpy(dtype=bool), file, lines, "item_id", "missing item_id")
    for f in spec.query.features:
        if f.kind is FeatureKind.HISTORY:
            holds = ids.fillna("").str.contains(f.separator, regex=False).to_numpy(dtype=bool)
            _flag(
                report,
                bad,
                holds,
                file,
                lines,
                "item_id",
                f"item_id holds {f.separator!r}, the separator of the history feature {f.name}",
            )
    for f in spec.candidate.features:
        if f.kind.dtype != "float32" or pd.api.types.is_numeric_dtype(frame[f.name]):
            continue
        text = frame[f.name].astype("string").str.strip()
        blank = (text.isna() | (text == "")).to_numpy(dtype=bool)
        values = pd.to_numeric(text, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
        unparseable = ~blank & ~np.isfinite(values)
        reasons = [f"{f.name} {v!r} is not a finite number" for v in text.fillna("").tolist()]
        _flag(report, bad, unparseable, file, lines, f.name, reasons)
    return bad


def _unique(frame: pd.DataFrame, lines: np.ndarray, file: str) -> None:
    dup = frame["item_id"].duplicated(keep=False).to_numpy()
    if not dup.any():
        return
    first = frame["item_id"][dup].iloc[0]
    where = lines[(frame["item_id"] == first).to_numpy()].tolist()
    raise DataError(
        f"duplicate item_id {first!r} (lines {', '.join(map(str, where))}); "
        f"{frame['item_id'][dup].nunique()} id(s) are duplicated; item_id must be unique",
        file=file,
        line=int(where[0]),
        column="item_id",
    )


def read_item_table(path: str | Path, spec: ModelSpec, max_bad_rows: int = 0) -> ItemTable:
    """Read and check the item table at ``path`` for a version whose feature spec is ``spec``."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise DataError("item table not found", file=str(path))
    base, described = _items_file(path)
    report = BadRowReport()
    frame, lines, file = read_entities(base, described, "item_id", report, QUIET, "items")
    if not len(frame) and not report.count:
        raise DataError("items table is empty", file=file)
    _needed_columns(frame, spec, file)
    lines = np.asarray(lines, dtype=np.int64)
    bad = _bad_rows(frame, lines, file, spec, report)
    frame, lines = frame.loc[~bad].reset_index(drop=True), lines[~bad]
    _unique(frame, lines, file)
    report.check(max_bad_rows)
    if not len(frame):
        raise DataError(f"items table has no valid rows left after skipping bad rows:\n{report.summary()}", file=file)
    frame["item_id"] = frame["item_id"].astype(str)
    return ItemTable(frame=frame, lines=lines, file=file, report=report)
