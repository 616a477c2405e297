"""Bad data into ``recsys train``, end to end at the command line.

Small, valid datasets (own CSV files described by a YAML spec, and a MovieLens
100K / latest directory) are corrupted one way at a time: a malformed row, a
field that does not parse, bytes that are not UTF-8 in a file declared UTF-8,
an unknown item reference, empty files, duplicate ids, a negative timestamp, a
NaN weight. Each must end with exit code 2 and a one-line ``error:`` message
naming the file and the line (no traceback, nothing published). With
``--max-bad-rows N`` the bad rows are skipped, counted and reported, and the
published version's manifest records ``dataset.bad_rows`` = the count.

The default suite drives the command in process (``typer`` runner: TensorFlow
is imported once); the ``reliability`` variants run real ``recsys`` processes.
"""

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner

from artifact.latest import list_versions, read_latest
from recsys.cli import app

runner = CliRunner()

N_USERS, N_ITEMS, PER_USER = 24, 30, 20
TRAIN_FAST = ["--epochs", "1", "--batch-size", "64", "--embedding-dim", "8", "--seed", "3"]


# --------------------------------------------------------------------------- datasets


def _events() -> list[str]:
    rows = []
    for u in range(N_USERS):
        for j in range(PER_USER):
            item = (u * 7 + j * 3) % N_ITEMS
            rows.append(f"u{u:02d},i{item:02d},{1_600_000_000 + u * 1000 + j * 10},{1 + j % 5}.0")
    return rows


def files_dataset(d: Path) -> Path:
    """events.csv (header = line 1), items.csv, users.csv and spec.yaml; returns the spec."""
    d.mkdir(parents=True, exist_ok=True)
    (d / "events.csv").write_text("user_id,item_id,timestamp,weight\n" + "\n".join(_events()) + "\n")
    (d / "items.csv").write_text(
        "item_id,title,category\n" + "\n".join(f"i{i:02d},thing {i},c{i % 3}" for i in range(N_ITEMS)) + "\n"
    )
    (d / "users.csv").write_text("user_id,age\n" + "\n".join(f"u{u:02d},{20 + u}" for u in range(N_USERS)) + "\n")
    spec = d / "spec.yaml"
    spec.write_text(
        "interactions: {path: events.csv, columns: {user_id: user_id, item_id: item_id, timestamp: timestamp, weight: weight}}\n"
        "items: {path: items.csv}\n"
        "users: {path: users.csv}\n"
    )
    return spec


def _ratings() -> list[tuple[int, int, int, int]]:
    """(user, item, rating, timestamp) rows shared by the MovieLens formats."""
    return [
        (u, (u * 7 + j * 3) % N_ITEMS + 1, 1 + j % 5, 880_000_000 + u * 1000 + j * 10)
        for u in range(1, N_USERS + 1)
        for j in range(PER_USER)
    ]


def movielens_100k(d: Path) -> Path:
    """u.data (tab separated, no header: line i = rating i), u.item, u.user."""
    d.mkdir(parents=True, exist_ok=True)
    lines = [f"{u}\t{item}\t{rating}\t{ts}" for u, item, rating, ts in _ratings()]
    (d / "u.data").write_text("\n".join(lines) + "\n")

    def flags(i: int) -> str:  # u.item's 19 genre flags, genre i % 19 set
        return "|".join("1" if g == i % 19 else "0" for g in range(19))

    (d / "u.item").write_bytes(
        "\n".join(f"{i}|Film {i} (1995)|01-Jan-1995||http://x|{flags(i)}" for i in range(1, N_ITEMS + 1)).encode("latin-1")
        + b"\n"
    )
    (d / "u.user").write_text("\n".join(f"{u}|{20 + u}|{'MF'[u % 2]}|student|1{u:04d}" for u in range(1, N_USERS + 1)) + "\n")
    return d


def movielens_latest(d: Path) -> Path:
    """ratings.csv and movies.csv (UTF-8, header = line 1)."""
    d.mkdir(parents=True, exist_ok=True)
    rows = [f"{u},{item},{rating}.0,{ts}" for u, item, rating, ts in _ratings()]
    (d / "ratings.csv").write_text("userId,movieId,rating,timestamp\n" + "\n".join(rows) + "\n")
    (d / "movies.csv").write_text(
        "movieId,title,genres\n" + "\n".join(f"{i},Film {i} (1995),Drama|Comedy" for i in range(1, N_ITEMS + 1)) + "\n"
    )
    return d


def replace_line(path: Path, line: int, text: bytes | str) -> None:
    """Replace 1-based ``line`` of ``path`` by ``text`` (bytes are written as they are)."""
    raw = path.read_bytes().split(b"\n")
    raw[line - 1] = text if isinstance(text, bytes) else text.encode()
    path.write_bytes(b"\n".join(raw))


# --------------------------------------------------------------------------- corruptions
# each: (dataset builder, corrupt(dir) (its result unused), file name, line or None, words the message must hold)

Case = tuple[Callable[[Path], Path], Callable[[Path], object], str, int | None, tuple[str, ...]]

CASES: dict[str, Case] = {
    "files-malformed-row": (
        files_dataset,
        lambda d: replace_line(d / "events.csv", 5, "u00,i01,1600000000,1.0,extra"),
        "events.csv",
        5,
        ("field",),
    ),
    "files-unparseable-timestamp": (
        files_dataset,
        lambda d: replace_line(d / "events.csv", 6, "u00,i01,yesterday,1.0"),
        "events.csv",
        6,
        ("timestamp",),
    ),
    "files-latin1-in-utf8-events": (
        files_dataset,
        lambda d: replace_line(d / "events.csv", 7, "jos\xe9,i01,1600000007,1.0".encode("latin-1")),
        "events.csv",
        7,
        ("utf-8",),
    ),
    "files-latin1-in-utf8-items": (
        files_dataset,
        lambda d: replace_line(d / "items.csv", 4, "i02,caf\xe9 cr\xe8me,c2".encode("latin-1")),
        "items.csv",
        4,
        ("utf-8",),
    ),
    "files-unknown-item": (
        files_dataset,
        lambda d: replace_line(d / "events.csv", 8, "u00,i_nowhere,1600000008,1.0"),
        "events.csv",
        8,
        ("unknown item_id", "i_nowhere"),
    ),
    "files-empty-events": (files_dataset, lambda d: (d / "events.csv").write_text(""), "events.csv", None, ("empty",)),
    "files-header-only-events": (
        files_dataset,
        lambda d: (d / "events.csv").write_text("user_id,item_id,timestamp,weight\n"),
        "events.csv",
        None,
        ("empty",),
    ),
    "files-empty-items": (files_dataset, lambda d: (d / "items.csv").write_text(""), "items.csv", None, ("empty",)),
    "files-duplicate-item-id": (
        files_dataset,
        lambda d: replace_line(d / "items.csv", 9, "i03,another thing,c0"),
        "items.csv",
        5,
        ("duplicate item_id", "i03"),
    ),
    "files-duplicate-user-id": (
        files_dataset,
        lambda d: replace_line(d / "users.csv", 10, "u01,99"),
        "users.csv",
        3,
        ("duplicate user_id", "u01"),
    ),
    "files-negative-timestamp": (
        files_dataset,
        lambda d: replace_line(d / "events.csv", 9, "u00,i01,-5,1.0"),
        "events.csv",
        9,
        ("negative timestamp",),
    ),
    "files-nan-weight": (
        files_dataset,
        lambda d: replace_line(d / "events.csv", 10, "u00,i01,1600000010,NaN"),
        "events.csv",
        10,
        ("weight", "nan"),
    ),
    "ml100k-malformed-row": (movielens_100k, lambda d: replace_line(d / "u.data", 5, "1\t2\t3"), "u.data", 5, ("fields",)),
    "ml100k-unparseable-user": (
        movielens_100k,
        lambda d: replace_line(d / "u.data", 6, "abc\t2\t3\t880000000"),
        "u.data",
        6,
        ("user_id", "abc"),
    ),
    "ml100k-unknown-item": (
        movielens_100k,
        lambda d: replace_line(d / "u.data", 7, "1\t999\t3\t880000000"),
        "u.data",
        7,
        ("unknown item_id", "999"),
    ),
    "ml100k-negative-timestamp": (
        movielens_100k,
        lambda d: replace_line(d / "u.data", 8, "1\t2\t3\t-5"),
        "u.data",
        8,
        ("negative timestamp",),
    ),
    "ml100k-nan-rating": (
        movielens_100k,
        lambda d: replace_line(d / "u.data", 9, "1\t2\tnan\t880000000"),
        "u.data",
        9,
        ("weight",),
    ),
    "ml100k-empty-ratings": (movielens_100k, lambda d: (d / "u.data").write_text(""), "u.data", None, ("empty",)),
    "ml100k-duplicate-item-id": (
        movielens_100k,
        lambda d: replace_line(d / "u.item", 6, (d / "u.item").read_bytes().split(b"\n")[1]),
        "u.item",
        2,
        ("duplicate item_id",),
    ),
    "mllatest-latin1-in-utf8-movies": (
        movielens_latest,
        lambda d: replace_line(d / "movies.csv", 4, "3,Caf\xe9 (1995),Drama".encode("latin-1")),
        "movies.csv",
        4,
        ("utf-8",),
    ),
}


def _data_arg(builder: Callable[[Path], Path], target: Path) -> str:
    made = builder(target)
    return f"files:{made}" if builder is files_dataset else f"movielens:{made}"


def _where(file: str, line: int | None) -> str:
    return f"{file}:{line}" if line is not None else file


# --------------------------------------------------------------------------- default suite (in process)


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_data_exits_2_naming_file_and_line(case: str, tmp_path: Path) -> None:
    builder, corrupt, file, line, words = CASES[case]
    data = _data_arg(builder, tmp_path / "data")
    corrupt(tmp_path / "data")
    root = tmp_path / "models"
    result = runner.invoke(app, ["train", "--data", data, "--model-root", str(root), *TRAIN_FAST])
    output = result.output
    error_lines = [ln for ln in output.splitlines() if ln.startswith("error:")]
    print(f"\n[{case}] exit {result.exit_code}: {error_lines[:1]}")
    assert result.exit_code == 2, output[-3000:]
    assert isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in output
    assert error_lines, output[-2000:]
    assert _where(file, line) in output, f"the message does not name {_where(file, line)}:\n{output[-2000:]}"
    for word in words:
        assert word.lower() in output.lower(), (word, output[-2000:])
    assert read_latest(root) is None and list_versions(root) == []


BAD_ROWS = {  # events.csv line -> a row that is bad in its own way
    5: "u00,i01,1600000000,1.0,extra",  # one field too many
    6: "u00,i01,yesterday,1.0",  # timestamp not a number nor a date
    8: "u00,i_nowhere,1600000008,1.0",  # unknown item
    9: "u00,i01,-5,1.0",  # negative timestamp
    10: "u00,i01,1600000010,NaN",  # NaN weight
    11: "u_nobody,i01,1600000011,1.0",  # unknown user
}


def _files_with_bad_rows(d: Path) -> Path:
    spec = files_dataset(d)
    for line, text in BAD_ROWS.items():
        replace_line(d / "events.csv", line, text)
    return spec


def test_too_many_bad_rows_is_refused_with_the_count(tmp_path: Path) -> None:
    spec = _files_with_bad_rows(tmp_path / "data")
    root = tmp_path / "models"
    n = len(BAD_ROWS)
    result = runner.invoke(
        app, ["train", "--data", f"files:{spec}", "--model-root", str(root), "--max-bad-rows", str(n - 1), *TRAIN_FAST]
    )
    assert result.exit_code == 2, result.output[-3000:]
    assert f"{n} bad row" in result.output and f"limit of {n - 1}" in result.output
    assert "Traceback" not in result.output and read_latest(root) is None


@pytest.fixture(scope="module")
def tolerated_run(tmp_path_factory: pytest.TempPathFactory):
    """One in-process ``recsys train --max-bad-rows N`` over a files dataset with N bad rows."""
    tmp = tmp_path_factory.mktemp("tolerated")
    spec = _files_with_bad_rows(tmp / "data")
    root = tmp / "models"
    result = runner.invoke(
        app, ["train", "--data", f"files:{spec}", "--model-root", str(root), "--max-bad-rows", str(len(BAD_ROWS)), *TRAIN_FAST]
    )
    return result, root


def test_tolerated_bad_rows_are_counted_and_recorded_in_the_manifest(tolerated_run) -> None:
    result, root = tolerated_run
    n = len(BAD_ROWS)
    assert result.exit_code == 0, result.output[-3000:]
    versions = list_versions(root)
    assert len(versions) == 1 and read_latest(root) == versions[0]
    manifest = json.loads((root / versions[0] / "manifest.json").read_text())
    print(f"\ntolerated: exit 0, version {versions[0]}, manifest dataset.bad_rows={manifest['dataset']['bad_rows']}")
    assert manifest["dataset"]["bad_rows"] == n
    assert manifest["dataset"]["num_interactions"] == N_USERS * PER_USER - n
    assert f"{n} bad rows" in result.output


def test_tolerated_bad_rows_are_each_reported_by_file_and_line(tolerated_run) -> None:
    """README: "--max-bad-rows raises the tolerance; skipped rows are still reported" (by
    file, line and column): each skipped row's location is in the command's output."""
    result, _ = tolerated_run
    assert result.exit_code == 0
    missing = [line for line in BAD_ROWS if f"events.csv:{line}" not in result.output]
    assert not missing, f"skipped rows not reported: events.csv lines {missing}\n{result.output[-2000:]}"


# --------------------------------------------------------------------------- reliability: real processes


@pytest.mark.reliability
@pytest.mark.parametrize(
    "case",
    [
        "files-malformed-row",
        "files-latin1-in-utf8-events",
        "files-duplicate-item-id",
        "files-empty-events",
        "ml100k-unknown-item",
        "mllatest-latin1-in-utf8-movies",
    ],
)
def test_bad_data_in_a_real_process_exits_2_without_traceback(case: str, tmp_path: Path, cli) -> None:
    builder, corrupt, file, line, _words = CASES[case]
    data = _data_arg(builder, tmp_path / "data")
    corrupt(tmp_path / "data")
    root = tmp_path / "models"
    done = cli.run("train", "--data", data, "--model-root", str(root), *TRAIN_FAST, timeout=300)
    print(f"\n[{case}] process exit {done.returncode}: {[ln for ln in done.stderr.splitlines() if ln.startswith('error:')][:1]}")
    assert done.returncode == 2, done.stderr[-3000:]
    assert "Traceback" not in done.stderr + done.stdout
    assert _where(file, line) in done.stderr, done.stderr[-2000:]
    assert done.stdout.strip() == ""
    assert read_latest(root) is None


@pytest.mark.reliability
def test_movielens_with_tolerated_bad_rows_publishes_and_counts_them(tmp_path: Path, cli) -> None:
    d = movielens_100k(tmp_path / "ml")
    bad = {5: "1\t2\t3", 6: "abc\t2\t3\t880000000", 7: "1\t999\t3\t880000000", 8: "1\t2\t3\t-5", 9: "1\t2\tnan\t880000000"}
    for line, text in bad.items():
        replace_line(d / "u.data", line, text)
    root = tmp_path / "models"
    done = cli.run(
        "train", "--data", f"movielens:{d}", "--model-root", str(root), "--max-bad-rows", str(len(bad)), *TRAIN_FAST, timeout=600
    )
    assert done.returncode == 0, done.stderr[-3000:]
    version = read_latest(root)
    assert version is not None
    manifest = json.loads((root / version / "manifest.json").read_text())
    print(f"\nmovielens tolerated: exit 0, version {version}, dataset.bad_rows={manifest['dataset']['bad_rows']}")
    summary = json.loads(done.stdout[done.stdout.rindex('{\n  "version"') :])  # after Keras' progress lines
    assert summary["version"] == version and list_versions(root) == [version]
    assert manifest["dataset"]["bad_rows"] == len(bad)
    assert manifest["dataset"]["num_interactions"] == N_USERS * PER_USER - len(bad)
    assert f"{len(bad)} bad rows" in done.stderr
