"""LATEST and version names (artifact.latest): the one rule both halves read them by."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from artifact import latest
from artifact.latest import (
    LATEST_MAX_BYTES,
    LatestError,
    check_version_name,
    is_version_name,
    list_versions,
    next_version,
    read_latest,
    write_latest,
)


def test_write_latest_replaces_the_file_and_leaves_no_temporary(tmp_path: Path) -> None:
    write_latest(tmp_path, "100")
    before = os.stat(tmp_path / "LATEST").st_ino
    write_latest(tmp_path, "200")
    assert read_latest(tmp_path) == "200" and (tmp_path / "LATEST").read_text() == "200\n"
    assert os.stat(tmp_path / "LATEST").st_ino != before  # a new file renamed over the old one, never rewritten in place
    assert sorted(p.name for p in tmp_path.iterdir()) == ["LATEST"]


def test_a_write_that_fails_before_the_rename_leaves_the_old_name(tmp_path: Path, monkeypatch) -> None:
    write_latest(tmp_path, "100")

    def full_disk(src: object, dst: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", full_disk)
    with pytest.raises(OSError, match="No space left"):
        write_latest(tmp_path, "200")
    assert read_latest(tmp_path) == "100"


@pytest.mark.parametrize(("content", "expected"), [(None, None), (b"", None), (b" \n", None), (b"  17\n", "17")])
def test_read_latest_strips_and_reads_nothing_as_none(tmp_path: Path, content: bytes | None, expected: str | None) -> None:
    if content is not None:
        (tmp_path / "LATEST").write_bytes(content)
    assert read_latest(tmp_path) == expected


def test_latest_up_to_the_cap_is_read_and_above_it_refused(tmp_path: Path) -> None:
    (tmp_path / "LATEST").write_text("1796601143".ljust(LATEST_MAX_BYTES - 1) + "\n")  # exactly the cap: still a name
    assert read_latest(tmp_path) == "1796601143"
    (tmp_path / "LATEST").write_text("1796601143".ljust(LATEST_MAX_BYTES) + "\n")  # one byte more
    with pytest.raises(LatestError) as info:
        read_latest(tmp_path)
    assert info.value.reason == "latest_too_large"


def test_a_huge_latest_is_refused_without_reading_it(tmp_path: Path, monkeypatch) -> None:
    with open(tmp_path / "LATEST", "wb") as fh:
        fh.truncate(1 << 30)  # a sparse GiB of NUL bytes
    reads: list[int] = []
    real_open = open

    class Counting:
        def __init__(self, fh):
            self.fh = fh

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.fh.close()

        def read(self, n=-1):
            reads.append(n)
            return self.fh.read(n)

    monkeypatch.setattr(latest, "open", lambda *a, **k: Counting(real_open(*a, **k)), raising=False)
    with pytest.raises(LatestError) as info:
        read_latest(tmp_path)
    assert info.value.reason == "latest_too_large"
    assert reads == [LATEST_MAX_BYTES + 1]


def test_a_latest_that_is_not_text_is_refused(tmp_path: Path) -> None:
    (tmp_path / "LATEST").write_bytes(b"\xff\xfe17")
    with pytest.raises(LatestError) as info:
        read_latest(tmp_path)
    assert info.value.reason == "latest_unreadable"


@pytest.mark.parametrize("name", ["0", "1795425276", "9" * 20])
def test_version_names(name: str) -> None:
    assert is_version_name(name) and check_version_name(name) == name


@pytest.mark.parametrize("name", ["", "9" * 21, "-1", "1.5", " 17", "17\n", "../1", ".staging-17-3", "١٧", "0x11"])
def test_what_is_not_a_version_name_is_refused_echoing_it(name: str) -> None:
    assert not is_version_name(name)
    with pytest.raises(LatestError) as info:
        check_version_name(name, "the name in LATEST")
    shown = name.encode("unicode_escape").decode("ascii")
    assert info.value.reason == "invalid_version_name"
    assert info.value.detail == f"the name in LATEST {shown!r} is not a version name (1 to 20 digits)"


def test_list_versions_keeps_version_folders_only_in_numeric_order(tmp_path: Path) -> None:
    for name in ("10", "9", "100", ".staging-11-4", "notes", "١٢"):
        (tmp_path / name).mkdir()
    (tmp_path / "12").write_text("a file, not a version")
    assert list_versions(tmp_path) == ["9", "10", "100"]
    assert list_versions(tmp_path / "absent") == []


def test_next_version_is_the_clock_or_above_every_version(tmp_path: Path) -> None:
    assert next_version(tmp_path, clock=lambda: 1000.7) == "1000"
    (tmp_path / "5000").mkdir()
    assert next_version(tmp_path, clock=lambda: 1000.7) == "5001"
