"""load_source: scheme dispatch, validation, the bad-row limit and progress output."""

from __future__ import annotations

import sys
import types
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import yaml

from training.data.bad_rows import DataError
from training.data.progress import Done, Progress
from training.data.sources import load_source


def write_100k(directory: Path, data_lines: list[str]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "u.data").write_text("".join(f"{x}\n" for x in data_lines))
    (directory / "u.item").write_text("".join(f"{i}|Movie {i} (1990)|||x|" + "|".join(["0"] * 19) + "\n" for i in (1, 2)))
    (directory / "u.user").write_text("1|20|M|writer|12345\n2|30|F|other|54321\n")
    return directory


def test_synthetic_is_sized_seeded_and_validated() -> None:
    data = load_source("synthetic", items=120, users=30, interactions=900, seed=4, progress=False)
    assert (len(data.items), len(data.users), len(data.interactions)) == (120, 30, 900)
    assert "seed=4" in data.source and data.report.count == 0
    again = load_source("synthetic", items=120, users=30, interactions=900, seed=4, progress=False)
    assert again.fingerprint() == data.fingerprint()


def test_movielens_scheme_and_bad_row_limit(tmp_path: Path) -> None:
    directory = write_100k(tmp_path / "ml", ["1\t1\t5\t10", "2\t2\t4\t20", "1\t7\t3\t30", "garbage"])
    with pytest.raises(DataError) as caught:
        load_source(f"movielens:{directory}", progress=False)
    assert "2 bad row(s)" in str(caught.value) and "u.data:3" in str(caught.value)
    data = load_source(f"movielens:{directory}", max_bad_rows=2, progress=False)
    assert data.report.count == 2 and len(data.interactions) == 2
    assert data.source == f"movielens-100k:{directory}"


def test_files_scheme(tmp_path: Path) -> None:
    (tmp_path / "e.csv").write_text("user_id,item_id\na,x\nb,y\n")
    (tmp_path / "s.yaml").write_text(yaml.safe_dump({"interactions": {"path": "e.csv"}}))
    data = load_source(f"files:{tmp_path / 's.yaml'}", progress=False)
    assert sorted(data.items["item_id"]) == ["x", "y"]


def test_tfds_scheme(monkeypatch: pytest.MonkeyPatch) -> None:
    module = types.SimpleNamespace(  # `import tensorflow_datasets` returns whatever sys.modules holds
        load=lambda name, split, data_dir=None: [
            {
                "user_id": b"1",
                "movie_id": b"2",
                "user_rating": 3.0,
                "timestamp": 4,
                "movie_title": b"T (1999)",
                "movie_genres": [1],
            }
        ],
        as_numpy=lambda ds: ds,
    )
    monkeypatch.setitem(sys.modules, "tensorflow_datasets", module)
    data = load_source("tfds:movielens/100k-ratings", progress=False)
    assert data.items["genres"].tolist() == [["Adventure"]]


@pytest.mark.parametrize("spec", ["csv:/x", "synthetic:big", "", "movielens:", "files:  "])
def test_unknown_or_incomplete_specs_list_accepted_forms(spec: str) -> None:
    with pytest.raises(DataError) as caught:
        load_source(spec, progress=False)
    message = str(caught.value)
    for form in ("synthetic", "movielens:PATH", "tfds:NAME", "files:PATH"):
        assert form in message


def test_progress_lines_and_quiet(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    directory = write_100k(tmp_path / "ml", ["1\t1\t5\t10"])
    load_source(f"movielens:{directory}", progress=True)
    err = capsys.readouterr().err
    assert "reading u.data" in err and "validating" in err
    load_source(f"movielens:{directory}", progress=False)
    assert capsys.readouterr().err == ""

    class Recorder(Progress):
        def __init__(self) -> None:
            self.titles: list[str] = []

        @contextmanager
        def step(self, title: str) -> Iterator[Done]:
            self.titles.append(title)
            with super().step(title) as done:
                yield done

    recorder = Recorder()
    load_source(f"movielens:{directory}", progress=recorder)
    assert recorder.titles == ["reading u.data", "reading u.item", "reading u.user", "validating"]
