"""The YAML spec of a user's own Parquet/CSV data, validated with pydantic.

Example::

    interactions:
      path: events.csv               # relative paths resolve against the spec's folder
      format: csv                    # optional: csv | parquet, else from the extension
      columns: {user_id: customer, item_id: sku, timestamp: ts, weight: qty}
    items:                           # optional: bare items from the interactions if omitted
      path: products.parquet
      columns: {item_id: sku}        # other columns are kept as metadata
      multi_valued: {genres: "|"}    # split these string columns into lists
    users:                           # optional, like items
      path: customers.csv
      columns: {user_id: customer}

``columns`` maps a canonical column name to the file's column name; extra
entries rename other columns (``title: product_name``). Unmapped canonical ids
default to a column of the same name.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

from training.data.bad_rows import DataError


class _Columns(BaseModel):
    """Canonical name → the file's column name; extra entries are renames."""

    model_config = ConfigDict(extra="allow")

    def mapping(self) -> dict[str, str]:
        """Every canonical → source column pair that is set."""
        pairs = {k: v for k, v in self.model_dump().items() if v is not None}
        for key, value in pairs.items():
            if not isinstance(value, str) or not value:
                raise DataError(f"columns.{key} must be a non-empty column name, got {value!r}")
        return pairs


class InteractionColumns(_Columns):
    """Column mapping of the interactions file."""

    user_id: str = "user_id"
    item_id: str = "item_id"
    timestamp: str | None = None
    weight: str | None = None


class ItemColumns(_Columns):
    """Column mapping of the items file."""

    item_id: str = "item_id"


class UserColumns(_Columns):
    """Column mapping of the users file."""

    user_id: str = "user_id"


class TableFile(BaseModel):
    """One file: where it is, how to read it, how to map its columns."""

    model_config = ConfigDict(extra="forbid")

    path: str
    format: Literal["csv", "parquet"] | None = None
    sep: str | None = None  # csv only; "," (or tab for .tsv) when unset
    encoding: str = "utf-8"  # csv only
    multi_valued: dict[str, str] = {}

    @field_validator("multi_valued")
    @classmethod
    def _separators(cls, value: dict[str, str]) -> dict[str, str]:
        for column, sep in value.items():
            if not sep:
                raise ValueError(f"multi_valued.{column}: the separator must not be empty")
        return value


class InteractionsFile(TableFile):
    """The interactions file."""

    columns: InteractionColumns = InteractionColumns()


class ItemsFile(TableFile):
    """The items file."""

    columns: ItemColumns = ItemColumns()


class UsersFile(TableFile):
    """The users file."""

    columns: UserColumns = UserColumns()


class FilesSpec(BaseModel):
    """The whole spec: interactions required, items and users optional."""

    model_config = ConfigDict(extra="forbid")

    interactions: InteractionsFile
    items: ItemsFile | None = None
    users: UsersFile | None = None


def load_spec(path: str | Path) -> FilesSpec:
    """Parse and validate the YAML spec at ``path`` (DataError naming the file on failure)."""
    path = Path(path)
    if not path.is_file():
        raise DataError("files spec not found", file=str(path))
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        raise DataError(f"invalid YAML: {error}", file=str(path), line=None if mark is None else mark.line + 1) from error
    if not isinstance(raw, dict):
        raise DataError("the files spec must be a YAML mapping with an 'interactions' key", file=str(path))
    try:
        return FilesSpec.model_validate(raw)
    except ValidationError as error:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or '(top)'}: {e['msg']}" for e in error.errors())
        raise DataError(f"invalid files spec: {problems}", file=str(path)) from error
