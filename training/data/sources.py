"""One entry point for every data source: ``load_source(spec)``.

``spec`` is one of:

* ``synthetic`` — the generated storefront, sized by ``items``/``users``/
  ``interactions`` and seeded by ``seed``;
* ``movielens:PATH`` — a MovieLens directory (100K, 1M or latest/25M CSV);
* ``tfds:NAME`` — ``tfds:movielens/100k-ratings`` or ``tfds:movielens/1m-ratings``
  (needs tensorflow-datasets and, the first time, a network);
* ``files:PATH`` — a YAML spec of the user's own Parquet/CSV files.

Every source goes through :func:`training.data.tables.validate_canonical` and
``report.check(max_bad_rows)``.
"""

from __future__ import annotations

from pathlib import Path

from training.data.bad_rows import DataError
from training.data.files import read_files
from training.data.movielens import read_movielens
from training.data.progress import Progress, console_progress
from training.data.synthetic import generate_storefront
from training.data.tables import CanonicalData, finalize
from training.data.tfds_source import read_tfds

ACCEPTED = (
    "synthetic",
    "movielens:PATH (a MovieLens 100K/1M/latest directory)",
    "tfds:NAME (movielens/100k-ratings or movielens/1m-ratings)",
    "files:PATH (a YAML spec of your Parquet/CSV files)",
)


def _accepted() -> str:
    return "; ".join(ACCEPTED)


def _read(
    spec: str, items: int, users: int, interactions: int, seed: int, progress: Progress, log_dir: Path | None
) -> CanonicalData:
    scheme, sep, argument = spec.strip().partition(":")
    scheme = scheme.strip().lower()
    if scheme == "synthetic" and not argument.strip():
        with progress.step("generating synthetic storefront") as done:
            data = generate_storefront(items=items, users=users, interactions=interactions, seed=seed, log_dir=log_dir)
            done(f"{items:,} items, {users:,} users, {interactions:,} interactions")
        return data
    if scheme in ("movielens", "tfds", "files"):
        if not sep or not argument.strip():
            raise DataError(f"data source {spec!r} needs a value after '{scheme}:'; accepted forms: {_accepted()}")
        argument = argument.strip()
        if scheme == "movielens":
            return read_movielens(argument, progress)
        if scheme == "tfds":
            return read_tfds(argument, progress=progress)
        return read_files(argument, progress, log_dir)
    raise DataError(f"unknown data source {spec!r}; accepted forms: {_accepted()}")


def load_source(
    spec: str,
    *,
    items: int = 2000,
    users: int = 1000,
    interactions: int = 50000,
    seed: int = 0,
    max_bad_rows: int = 0,
    progress: bool | Progress = True,
    log_dir: Path | None = None,
) -> CanonicalData:
    """Load the data source ``spec``, validate it and enforce the bad-row limit.

    ``items``/``users``/``interactions``/``seed`` apply to ``synthetic`` only.
    ``progress``: True prints a status line per file on stderr, False is quiet,
    or pass a :class:`training.data.progress.Progress`. ``log_dir``: an empty folder
    where a source that can writes its interactions as Parquet files instead of
    holding them (``synthetic``, and ``files:`` with Parquet interactions; :mod:`training.data.log`);
    others ignore it.
    """
    reporter = progress if isinstance(progress, Progress) else console_progress(bool(progress))
    data = _read(spec, items, users, interactions, seed, reporter, log_dir)
    with reporter.step("validating") as done:
        result = finalize(data, max_bad_rows)
        done(
            f"{result.num_interactions:,} interactions, {len(result.items):,} items, "
            f"{len(result.users):,} users, {result.report.count} bad rows"
        )
    return result
