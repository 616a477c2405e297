"""TensorFlow Datasets ``movielens/100k-ratings`` and ``movielens/1m-ratings``.

``tensorflow_datasets`` is an optional extra (``pip install '.[tfds]'``) and
is imported only when :func:`load_tfds` runs; the first load downloads the data,
so it needs network access. The record → table mapping is the pure function
:func:`tfds_ratings_to_frames`, which produces the same columns as the
MovieLens directory reader (:mod:`training.data.movielens`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import pandas as pd

from training.data.bad_rows import BadRowReport, DataError
from training.data.progress import QUIET, Progress
from training.data.tables import CanonicalData, finalize

SUPPORTED = ("movielens/100k-ratings", "movielens/1m-ratings")
# The ClassLabel names of tfds' movielens ``movie_genres`` feature, in label order.
TFDS_GENRES = [
    "Action",
    "Adventure",
    "Animation",
    "Children",
    "Comedy",
    "Crime",
    "Documentary",
    "Drama",
    "Fantasy",
    "Film-Noir",
    "Horror",
    "IMAX",
    "Musical",
    "Mystery",
    "Romance",
    "Sci-Fi",
    "Thriller",
    "Unknown",
    "War",
    "Western",
    "(no genres listed)",
]
_NO_GENRES = "(no genres listed)"
INSTALL_HINT = "pip install 'recsys-two-tower[tfds]' (or: pip install tensorflow-datasets)"


def normalise_name(name: str) -> str:
    """``tfds:movielens/100k-ratings`` or ``movielens/100k-ratings`` → the tfds name."""
    bare = name.strip()
    if bare.startswith("tfds:"):
        bare = bare[len("tfds:") :]
    if bare not in SUPPORTED:
        raise DataError(f"unsupported TFDS dataset {name!r}; supported: {', '.join(SUPPORTED)}")
    return bare


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, (bytes, bytearray, np.bytes_)):
        return bytes(value).decode("utf-8", errors="replace")
    if isinstance(value, np.ndarray) and value.ndim == 0:
        return _text(value.item())
    return str(value)


def _genres(value: Any) -> list[str]:
    names = []
    for g in np.atleast_1d(np.asarray(value if value is not None else [], dtype=object)).tolist():
        if isinstance(g, (int, np.integer)):
            name = TFDS_GENRES[int(g)] if 0 <= int(g) < len(TFDS_GENRES) else None
            if name is None:
                raise ValueError(f"genre label {g} is out of range")
        else:
            name = _text(g)
        if name and name != _NO_GENRES:
            names.append(name)
    return names


def _age(record: Mapping[str, Any]) -> float:
    for key in ("raw_user_age", "bucketized_user_age"):
        if key in record and record[key] is not None:
            return float(record[key])
    return float("nan")


def _gender(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, (bool, np.bool_)):
        return "M" if value else "F"
    return _text(value)


def tfds_ratings_to_frames(records: Iterable[Mapping[str, Any]], source: str = "tfds:movielens") -> CanonicalData:
    """Map tfds MovieLens rating examples (numpy values, bytes strings) to canonical tables.

    Uses ``user_id``, ``movie_id``, ``movie_title``, ``movie_genres`` (label ids
    or names), ``user_rating``, ``timestamp``, ``raw_user_age`` (or
    ``bucketized_user_age``), ``user_gender`` (True = male), ``user_occupation_text``
    and ``user_zip_code``. A record missing an id, rating or timestamp, or holding
    one that does not parse, is a bad row; its "line" is its 1-based position.
    The first record of each movie/user supplies the item/user metadata.
    """
    report = BadRowReport()
    inter: dict[str, list] = {"user_id": [], "item_id": [], "timestamp": [], "weight": []}
    lines: list[int] = []
    items: dict[str, tuple[str, list[str]]] = {}
    users: dict[str, tuple[float, str, str, str]] = {}
    for number, record in enumerate(records, start=1):
        column = "user_id"
        try:
            user = _text(record.get("user_id"))
            column = "movie_id"
            item = _text(record.get("movie_id"))
            if not user or not item:
                column = "user_id" if not user else "movie_id"
                raise ValueError(f"missing {column}")
            column = "user_rating"
            weight = float(record["user_rating"])
            if not np.isfinite(weight):
                raise ValueError(f"user_rating {weight} is not finite")
            column = "timestamp"
            timestamp = int(record["timestamp"])
            column = "movie_genres"
            genres = _genres(record.get("movie_genres"))
            column = "raw_user_age"
            age = _age(record)
        except KeyError as error:
            report.add(source, number, column, f"missing field {error.args[0]!r}")
            continue
        except (TypeError, ValueError, OverflowError) as error:
            report.add(source, number, column, str(error))
            continue
        inter["user_id"].append(user)
        inter["item_id"].append(item)
        inter["timestamp"].append(timestamp)
        inter["weight"].append(weight)
        lines.append(number)
        if item not in items:
            items[item] = (_text(record.get("movie_title")).strip(), genres)
        if user not in users:
            users[user] = (
                age,
                _gender(record.get("user_gender")),
                _text(record.get("user_occupation_text")),
                _text(record.get("user_zip_code"))[:3],
            )
    titles = pd.Series([t for t, _ in items.values()], dtype=str)
    item_frame = pd.DataFrame(
        {
            "item_id": pd.Series(list(items), dtype=str),
            "title": titles,
            "genres": pd.Series([g for _, g in items.values()], dtype=object),
            "year": pd.to_numeric(titles.str.extract(r"\((\d{4})\)\s*$")[0], errors="coerce").astype(float),
        }
    )
    user_values = list(users.values())
    user_frame = pd.DataFrame(
        {
            "user_id": pd.Series(list(users), dtype=str),
            "age": np.array([u[0] for u in user_values], dtype=np.float64),
            "gender": pd.Series([u[1] for u in user_values], dtype=str),
            "occupation": pd.Series([u[2] for u in user_values], dtype=str),
            "zip_prefix": pd.Series([u[3] for u in user_values], dtype=str),
        }
    )
    interactions = pd.DataFrame(
        {
            "user_id": pd.Series(inter["user_id"], dtype=str),
            "item_id": pd.Series(inter["item_id"], dtype=str),
            "timestamp": np.array(inter["timestamp"], dtype=np.int64),
            "weight": np.array(inter["weight"], dtype=np.float64),
        }
    )
    return CanonicalData(
        interactions,
        item_frame,
        user_frame,
        source,
        report,
        files={"interactions": source, "items": source, "users": source},
        lines={"interactions": np.array(lines, dtype=np.int64)},
    )


def _import_tfds() -> Any:
    try:
        import tensorflow_datasets as tfds
    except ImportError as error:
        raise DataError(
            f"tfds sources need tensorflow-datasets, which is not installed ({error}); install it with: {INSTALL_HINT}"
        ) from error
    return tfds


def read_tfds(name: str, *, data_dir: str | None = None, progress: Progress = QUIET) -> CanonicalData:
    """Download (first time) and map a tfds MovieLens ratings dataset, unvalidated."""
    bare = normalise_name(name)
    tfds = _import_tfds()
    with progress.step(f"loading tfds {bare}") as done:
        try:
            dataset = tfds.load(bare, split="train", data_dir=data_dir)
            data = tfds_ratings_to_frames(tfds.as_numpy(dataset), source=f"tfds:{bare}")
        except DataError:
            raise
        except Exception as error:
            raise DataError(
                f"could not load TFDS dataset {bare!r}: {type(error).__name__}: {error}. "
                "The first load downloads it, which needs network access; offline, point "
                "movielens:PATH at a local copy of the MovieLens files instead"
            ) from error
        done(f"{len(data.interactions):,} ratings")
    return data


def load_tfds(
    name: str,
    max_bad_rows: int = 0,
    *,
    data_dir: str | None = None,
    progress: Progress = QUIET,
) -> CanonicalData:
    """Load, validate and check a tfds MovieLens ratings dataset (see :func:`read_tfds`)."""
    return finalize(read_tfds(name, data_dir=data_dir, progress=progress), max_bad_rows)
