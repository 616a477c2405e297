"""The tfds MovieLens mapping (hand-made records) and load_tfds without a download."""

from __future__ import annotations

import sys
import types

import numpy as np
import pytest

from training.data.bad_rows import DataError
from training.data.tables import validate_canonical
from training.data.tfds_source import (
    TFDS_GENRES,
    load_tfds,
    normalise_name,
    tfds_ratings_to_frames,
)


def record(user: bytes, movie: bytes, rating: float, ts: int, **extra) -> dict:
    base = {
        "user_id": user,
        "movie_id": movie,
        "user_rating": np.float32(rating),
        "timestamp": np.int64(ts),
        "movie_title": b"Toy Story (1995)",
        "movie_genres": np.array([2, 3, 4], dtype=np.int64),
        "raw_user_age": np.float32(45.0),
        "bucketized_user_age": np.float32(45.0),
        "user_gender": np.bool_(True),
        "user_occupation_text": b"engineer",
        "user_occupation_label": np.int64(18),
        "user_zip_code": b"53706",
    }
    base.update(extra)
    return base


RECORDS = [
    record(
        b"138",
        b"357",
        4.0,
        879024327,
        movie_title="Caf\u00e9 One Flew Over (1975)".encode("utf-8"),
        movie_genres=np.array([7], dtype=np.int64),
    ),
    record(
        b"92",
        b"709",
        2.0,
        875654590,
        user_gender=np.bool_(False),
        raw_user_age=np.float32(32.0),
        user_occupation_text=b"entertainment",
        user_zip_code=b"80525",
        movie_title=b"Strictly Ballroom (1992)",
        movie_genres=np.array([4, 14], dtype=np.int64),
    ),
    record(b"138", b"709", 5.0, 879024400, movie_title=b"IGNORED second title (2000)"),
]


def test_mapping_builds_canonical_tables() -> None:
    data = tfds_ratings_to_frames(RECORDS, source="tfds:movielens/100k-ratings")
    assert list(data.items.columns) == ["item_id", "title", "genres", "year"]
    assert list(data.users.columns) == ["user_id", "age", "gender", "occupation", "zip_prefix"]
    assert list(data.interactions.columns) == ["user_id", "item_id", "timestamp", "weight"]
    items = data.items.set_index("item_id")
    assert items.loc["357", "title"] == "Café One Flew Over (1975)"
    assert items.loc["357", "genres"] == ["Drama"] and items.loc["357", "year"] == 1975.0
    assert items.loc["709", "genres"] == ["Comedy", "Romance"]
    assert items.loc["709", "title"] == "Strictly Ballroom (1992)"  # first record wins
    users = data.users.set_index("user_id")
    assert users.loc["138", "gender"] == "M" and users.loc["92", "gender"] == "F"
    assert users.loc["92", "age"] == 32.0 and users.loc["92", "occupation"] == "entertainment"
    assert users.loc["138", "zip_prefix"] == "537"
    assert data.interactions["weight"].tolist() == [4.0, 2.0, 5.0]
    assert data.interactions["timestamp"].dtype == np.int64
    result = validate_canonical(data)
    assert result.report.count == 0 and len(result.interactions) == 3


def test_1m_style_records_use_bucketized_age_and_names() -> None:
    one = record(b"1", b"1193", 5.0, 978300760, movie_genres=np.array([b"Drama"]))
    del one["raw_user_age"]
    one["bucketized_user_age"] = np.float32(35.0)
    data = tfds_ratings_to_frames([one])
    assert data.users["age"].tolist() == [35.0]
    assert data.items["genres"].tolist() == [["Drama"]]


def test_genre_list_matches_tfds_labels() -> None:
    assert TFDS_GENRES[0] == "Action" and TFDS_GENRES[7] == "Drama" and len(TFDS_GENRES) == 21
    data = tfds_ratings_to_frames([record(b"1", b"2", 3.0, 5, movie_genres=np.array([20], dtype=np.int64))])
    assert data.items["genres"].tolist() == [[]]  # "(no genres listed)" means none


def test_bad_records_are_reported_by_position() -> None:
    broken = dict(RECORDS[0])
    del broken["user_rating"]
    records = [
        RECORDS[0],
        record(b"", b"1", 3.0, 1),
        broken,
        record(b"5", b"6", 3.0, 1, movie_genres=np.array([99])),
        record(b"5", b"6", float("nan"), 1),
        record(b"5", b"", 3.0, 1),
    ]
    data = tfds_ratings_to_frames(records, source="tfds:x")
    found = [(r.file, r.line, r.column) for r in data.report.rows]
    assert found == [
        ("tfds:x", 2, "user_id"),
        ("tfds:x", 3, "user_rating"),
        ("tfds:x", 4, "movie_genres"),
        ("tfds:x", 5, "user_rating"),
        ("tfds:x", 6, "movie_id"),
    ]
    assert len(data.interactions) == 1 and data.lines["interactions"].tolist() == [1]


def test_names() -> None:
    assert normalise_name("tfds:movielens/100k-ratings") == "movielens/100k-ratings"
    assert normalise_name("movielens/1m-ratings") == "movielens/1m-ratings"
    with pytest.raises(DataError, match="supported: movielens/100k-ratings"):
        normalise_name("movielens/25m-ratings")


def test_missing_package_gives_install_hint(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "tensorflow_datasets", None)
    with pytest.raises(DataError, match="pip install"):
        load_tfds("movielens/100k-ratings")


def _fake_tfds(load) -> types.SimpleNamespace:
    """Stands in for the module: ``import tensorflow_datasets`` returns whatever ``sys.modules`` holds."""
    return types.SimpleNamespace(load=load, as_numpy=lambda dataset: iter(dataset))


def test_download_failure_is_a_data_error(monkeypatch: pytest.MonkeyPatch) -> None:
    def load(name, split, data_dir=None):
        raise ConnectionError("Name or service not known")

    monkeypatch.setitem(sys.modules, "tensorflow_datasets", _fake_tfds(load))
    with pytest.raises(DataError) as caught:
        load_tfds("tfds:movielens/1m-ratings")
    assert "network" in str(caught.value) and "ConnectionError" in str(caught.value)


def test_load_with_a_fake_tfds(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []

    def load(name, split, data_dir=None):
        calls.append((name, split))
        return RECORDS

    monkeypatch.setitem(sys.modules, "tensorflow_datasets", _fake_tfds(load))
    data = load_tfds("tfds:movielens/100k-ratings")
    assert calls == [("movielens/100k-ratings", "train")]
    assert data.source == "tfds:movielens/100k-ratings"
    assert len(data.interactions) == 3 and data.report.count == 0
