"""MovieLens readers (100K, 1M, latest CSV) on small files written to tmp_path."""

from __future__ import annotations

import math
import re
import tempfile
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st

from training.data.bad_rows import DataError
from training.data.movielens import detect_format, load_movielens, read_movielens
from training.data.tables import validate_canonical

GENRES = 19


def item_line(item_id: int | str, title: str, flags: list[int] | None = None, date: str = "01-Jan-1995") -> str:
    flags = flags if flags is not None else [0] * GENRES
    return f"{item_id}|{title}|{date}||http://x|" + "|".join(map(str, flags))


def write_100k(directory: Path, data: list[str], items: list[str], users: list[str] | None = None) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "u.data").write_bytes("".join(f"{line}\n" for line in data).encode("latin-1"))
    (directory / "u.item").write_bytes("".join(f"{line}\n" for line in items).encode("latin-1"))
    if users is not None:
        (directory / "u.user").write_bytes("".join(f"{line}\n" for line in users).encode("latin-1"))
    return directory


def flags(*on: int) -> list[int]:
    return [1 if i in on else 0 for i in range(GENRES)]


USERS = ["1|24|M|technician|85711", "2|53|F|other|94043", "3|23|M|writer|"]
ITEMS = [
    item_line(1, "Toy Story (1995)", flags(3, 4, 5)),
    item_line(2, "Café au lait (1993)", flags(8)),
    item_line(3, "Les Misérables (1995)", flags(8, 18), date=""),
    item_line(4, "unknown", flags(0), date=""),
    item_line(5, "No Year Here", flags(), date="03-Feb-1977"),
]
DATA = ["1\t1\t5\t881250949", "2\t2\t3\t891717742", "3\t3\t4\t878887116", "1\t2\t1\t100"]


def test_100k_tables_latin1_and_types(tmp_path: Path) -> None:
    data = load_movielens(write_100k(tmp_path, DATA, ITEMS, USERS))
    assert data.source.startswith("movielens-100k:")
    assert list(data.items.columns) == ["item_id", "title", "genres", "year"]
    assert list(data.users.columns) == ["user_id", "age", "gender", "occupation", "zip_prefix"]
    assert list(data.interactions.columns) == ["user_id", "item_id", "timestamp", "weight"]
    items = data.items.set_index("item_id")
    assert items.loc["2", "title"] == "Café au lait (1993)"
    assert items.loc["3", "title"] == "Les Misérables (1995)"
    assert items.loc["1", "genres"] == ["Animation", "Children's", "Comedy"]
    assert items.loc["3", "genres"] == ["Drama", "Western"]
    assert items.loc["4", "genres"] == ["unknown"]
    assert items.loc["1", "year"] == 1995.0 and items.loc["5", "year"] == 1977.0
    assert math.isnan(items["year"].loc["4"])
    users = data.users.set_index("user_id")
    assert users.loc["2", "age"] == 53.0 and users.loc["2", "occupation"] == "other"
    assert users.loc["1", "zip_prefix"] == "857" and users.loc["3", "zip_prefix"] == ""
    assert users.loc["1", "gender"] == "M"
    inter = data.interactions
    assert inter["user_id"].tolist() == ["1", "2", "3", "1"]
    assert inter["timestamp"].dtype == np.int64 and inter["weight"].dtype == np.float64
    assert inter["weight"].tolist() == [5.0, 3.0, 4.0, 1.0]
    assert data.report.count == 0


def test_100k_malformed_rows_reported_with_file_line_column(tmp_path: Path) -> None:
    lines = [
        "1\t1\t5\t881250949",  # 1 ok
        "1\t2\t3",  # 2 too few fields
        "x\t2\t3\t4",  # 3 user id
        "1\t2\tabc\t5",  # 4 rating
        "",  # 5 blank
        "2\t1\t3\t-5",  # 6 negative timestamp (validation)
        "1\t999\t3\t5",  # 7 unknown item (validation)
        "1\t2\t3\t4\t5",  # 8 too many fields
        "2\t3\t3\t1.5",  # 9 non-integer timestamp
        "9\t3\t3\t10",  # 10 unknown user (validation)
        "3\t5\t2\t50",  # 11 ok
    ]
    directory = write_100k(tmp_path, lines, ITEMS, USERS)
    data = load_movielens(directory, max_bad_rows=20)
    u_data = str(directory / "u.data")
    found = {(r.file, r.line, r.column) for r in data.report.rows}
    assert found == {
        (u_data, 2, None),
        (u_data, 3, "user_id"),
        (u_data, 4, "weight"),
        (u_data, 5, None),
        (u_data, 6, "timestamp"),
        (u_data, 7, "item_id"),
        (u_data, 8, None),
        (u_data, 9, "timestamp"),
        (u_data, 10, "user_id"),
    }
    assert data.interactions["item_id"].tolist() == ["1", "5"]
    assert data.lines["interactions"].tolist() == [1, 11]
    assert data.report.count + len(data.interactions) == len(lines)
    with pytest.raises(DataError) as caught:
        load_movielens(directory)  # default limit 0
    assert f"{u_data}:2" in str(caught.value) and "9 bad row(s)" in str(caught.value)
    with pytest.raises(DataError):
        load_movielens(directory, max_bad_rows=8)
    assert load_movielens(directory, max_bad_rows=9).report.count == 9


def test_100k_bad_item_lines(tmp_path: Path) -> None:
    items = ITEMS + [
        "6|Too Few Fields (1990)|01-Jan-1990",
        item_line(7, "Bad Flag (1991)", [2] + [0] * (GENRES - 1)),
        item_line("x8", "Bad Id (1992)"),
    ]
    directory = write_100k(tmp_path, DATA, items, USERS)
    data = load_movielens(directory, max_bad_rows=3)
    u_item = str(directory / "u.item")
    assert [(r.file, r.line, r.column) for r in data.report.rows] == [
        (u_item, 6, None),
        (u_item, 8, "item_id"),
        (u_item, 7, "genres"),
    ]
    assert len(data.items) == 5


def test_100k_duplicate_item_ids(tmp_path: Path) -> None:
    items = ITEMS + [item_line(2, "Again (1990)")]
    directory = write_100k(tmp_path, DATA, items, USERS)
    with pytest.raises(DataError) as caught:
        load_movielens(directory)
    assert "duplicate item_id '2'" in str(caught.value)
    assert "lines 2, 6" in str(caught.value)
    assert caught.value.file == str(directory / "u.item")


@pytest.mark.parametrize("empty", ["u.data", "u.item", "u.user"])
def test_100k_empty_files(tmp_path: Path, empty: str) -> None:
    directory = write_100k(tmp_path, DATA, ITEMS, USERS)
    (directory / empty).write_bytes(b"")
    with pytest.raises(DataError) as caught:
        load_movielens(directory)
    assert "is empty" in str(caught.value) and caught.value.file == str(directory / empty)


def test_100k_without_user_file_gets_bare_users(tmp_path: Path) -> None:
    data = load_movielens(write_100k(tmp_path, DATA, ITEMS))
    assert sorted(data.users["user_id"]) == ["1", "2", "3"]
    assert list(data.users.columns) == ["user_id"]


def test_path_to_a_file_inside_the_directory(tmp_path: Path) -> None:
    directory = write_100k(tmp_path, DATA, ITEMS, USERS)
    assert len(load_movielens(directory / "u.data").interactions) == 4
    assert detect_format(directory) == "100k"


def test_unrecognised_directory_names_the_files(tmp_path: Path) -> None:
    (tmp_path / "README").write_text("hi")
    with pytest.raises(DataError) as caught:
        load_movielens(tmp_path)
    message = str(caught.value)
    for name in ("u.data", "ratings.dat", "ratings.csv", "movies.csv"):
        assert name in message
    with pytest.raises(DataError, match="not found"):
        load_movielens(tmp_path / "missing")


def test_100k_missing_item_file(tmp_path: Path) -> None:
    directory = write_100k(tmp_path, DATA, ITEMS, USERS)
    (directory / "u.item").unlink()
    with pytest.raises(DataError, match=r"u\.item is missing"):
        load_movielens(directory)


def write_1m(directory: Path, ratings: list[str], movies: list[str], users: list[str]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for name, lines in (("ratings.dat", ratings), ("movies.dat", movies), ("users.dat", users)):
        (directory / name).write_bytes("".join(f"{x}\n" for x in lines).encode("latin-1"))
    return directory


def test_1m_tables(tmp_path: Path) -> None:
    directory = write_1m(
        tmp_path,
        ["1::10::5::978300760", "2::20::3.5::978302109", "1::20::4::978301968"],
        ["10::Toy Story (1995)::Animation|Children's|Comedy", "20::Café Society (1995)::(no genres listed)"],
        ["1::F::1::10::48067", "2::M::56::16::70072"],
    )
    data = load_movielens(directory)
    assert data.source.startswith("movielens-1m:")
    items = data.items.set_index("item_id")
    assert items.loc["10", "genres"] == ["Animation", "Children's", "Comedy"]
    assert items.loc["20", "genres"] == [] and items.loc["20", "title"] == "Café Society (1995)"
    assert items.loc["20", "year"] == 1995.0
    users = data.users.set_index("user_id")
    assert users.loc["1", "occupation"] == "K-12 student"
    assert users.loc["2", "occupation"] == "self-employed"
    assert users.loc["2", "age"] == 56.0 and users.loc["1", "gender"] == "F"
    assert users.loc["2", "zip_prefix"] == "700"
    assert data.interactions["weight"].tolist() == [5.0, 3.5, 4.0]


def test_1m_bad_occupation_and_separator(tmp_path: Path) -> None:
    directory = write_1m(
        tmp_path,
        ["1::10::5::978300760", "1,10,5,978300760"],
        ["10::Toy Story (1995)::Animation"],
        ["1::F::1::10::48067", "2::M::56::99::70072"],
    )
    data = load_movielens(directory, max_bad_rows=2)
    found = [(Path(r.file).name, r.line, r.column) for r in data.report.rows]
    assert sorted(found, key=str) == sorted([("ratings.dat", 2, None), ("users.dat", 2, "occupation")], key=str)
    assert "99" in next(r.reason for r in data.report.rows if r.column == "occupation")


def write_latest(directory: Path, ratings: str, movies: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "ratings.csv").write_text(ratings, encoding="utf-8")
    (directory / "movies.csv").write_text(movies, encoding="utf-8")
    return directory


MOVIES_CSV = (
    "movieId,title,genres\n"
    "1,Toy Story (1995),Adventure|Animation\n"
    '2,"Lord of the Rings, The (1978)",Adventure|Fantasy\n'
    "3,Amélie (2001) ,Comedy|Romance\n"
    "4,Untitled,(no genres listed)\n"
)


def test_latest_csv_tables(tmp_path: Path) -> None:
    directory = write_latest(
        tmp_path,
        "userId,movieId,rating,timestamp\n1,1,4.0,964982703\n1,2,4.5,964981247\n7,3,0.5,1\n",
        MOVIES_CSV,
    )
    (directory / "tags.csv").write_text("garbage,,,\n\n")
    data = load_movielens(directory)
    assert data.source.startswith("movielens-latest:")
    items = data.items.set_index("item_id")
    assert items.loc["2", "title"] == "Lord of the Rings, The (1978)"
    assert items.loc["2", "year"] == 1978.0 and items.loc["3", "year"] == 2001.0
    assert items.loc["3", "title"] == "Amélie (2001)"
    assert items.loc["4", "genres"] == [] and math.isnan(items["year"].loc["4"])
    assert list(data.users.columns) == ["user_id"] and sorted(data.users["user_id"]) == ["1", "7"]
    assert data.interactions["weight"].tolist() == [4.0, 4.5, 0.5]


def test_latest_csv_bad_lines_and_missing_header(tmp_path: Path) -> None:
    directory = write_latest(
        tmp_path,
        "userId,movieId,rating,timestamp\n1,1,4.0,964982703\n1,2,,964981247\n",
        MOVIES_CSV + '5,"Too, Many",Drama,extra\n',
    )
    data = load_movielens(directory, max_bad_rows=2)
    found = {(Path(r.file).name, r.line, r.column) for r in data.report.rows}
    assert found == {("ratings.csv", 3, "weight"), ("movies.csv", 6, None)}
    (directory / "ratings.csv").write_text("user,movieId,rating,timestamp\n1,1,4,5\n")
    with pytest.raises(DataError) as caught:
        load_movielens(directory)
    assert caught.value.column == "userId" and "ratings.csv" in (caught.value.file or "")


# ------------------------------------------------------------------ properties
ROW = st.tuples(st.integers(0, 99_999), st.integers(1, 40), st.integers(1, 5), st.integers(0, 2**40))
KNOWN_USERS = 1000
GARBAGE = st.text(alphabet="0123456789 \t-+.eaxé|:,\x1f", max_size=20)
VALID_LINE = ROW.map(lambda r: f"{r[0] % KNOWN_USERS}\t{r[1]}\t{r[2]}\t{r[3]}")


@st.composite
def near_miss(draw: st.DrawFn) -> str:
    """A valid line with one field dropped, duplicated, or garbled (usually invalid)."""
    fields = draw(VALID_LINE).split("\t")
    index = draw(st.integers(0, 3))
    action = draw(st.sampled_from(["drop", "extra", "garble"]))
    if action == "drop":
        del fields[index]
    elif action == "extra":
        fields.insert(index, draw(GARBAGE.filter(lambda g: "\t" not in g)))
    else:
        fields[index] = draw(GARBAGE.filter(lambda g: "\t" not in g))
    return "\t".join(fields)


def _property_dir(root: Path, rows_or_lines: list[str], users: Iterable[int]) -> Path:
    items = [item_line(i, f"Movie {i} (1990)") for i in range(1, 41)]
    user_lines = [f"{u}|30|M|other|12345" for u in users]
    return write_100k(root, rows_or_lines, items, user_lines)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rows=st.lists(ROW, min_size=1, max_size=40))
def test_property_valid_rows_round_trip(rows: list[tuple[int, int, int, int]]) -> None:
    users = sorted({r[0] for r in rows})
    with tempfile.TemporaryDirectory() as tmp:
        lines = [f"{u}\t{i}\t{r}\t{t}" for u, i, r, t in rows]
        data = load_movielens(_property_dir(Path(tmp), lines, users))
    expected = pd.DataFrame(
        {
            "user_id": [str(r[0]) for r in rows],
            "item_id": [str(r[1]) for r in rows],
            "timestamp": np.array([r[3] for r in rows], dtype=np.int64),
            "weight": np.array([r[2] for r in rows], dtype=np.float64),
        }
    )
    pd.testing.assert_frame_equal(data.interactions, expected, check_dtype=False)
    assert data.report.count == 0


def _reference_valid(line: str) -> bool:
    """An independent statement of which u.data lines are good (users 0..999, items 1..40)."""
    fields = [f.strip(" ") for f in line.split("\t")]  # only spaces count as padding
    if len(fields) != 4 or not all(re.fullmatch(r"\d{1,18}", f) for f in fields[:2]):
        return False
    if not re.fullmatch(r"[+-]?\d{1,18}", fields[3]) or int(fields[3]) < 0:
        return False
    try:
        rating = float(fields[2])
    except ValueError:
        return False
    return math.isfinite(rating) and int(fields[0]) < KNOWN_USERS and 1 <= int(fields[1]) <= 40


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(lines=st.lists(st.one_of(VALID_LINE, near_miss(), GARBAGE), min_size=1, max_size=30))
def test_property_garbage_lines_are_counted_never_dropped(lines: list[str]) -> None:
    note(repr(lines))
    with tempfile.TemporaryDirectory() as tmp:
        data = read_movielens(_property_dir(Path(tmp), lines, range(KNOWN_USERS)))
    # the reader keeps or reports every line ...
    assert data.report.count + len(data.interactions) == len(lines)
    good = [i + 1 for i, x in enumerate(lines) if _reference_valid(x)]
    if not good:
        with pytest.raises(DataError, match="no valid rows left"):
            validate_canonical(data)
        return
    # ... and after validation exactly the reference's good lines remain
    result = validate_canonical(data)
    assert len(result.interactions) + result.report.count == len(lines)
    assert result.lines["interactions"].tolist() == good
    assert sorted(r.line or 0 for r in result.report.rows) == [i + 1 for i, x in enumerate(lines) if not _reference_valid(x)]
