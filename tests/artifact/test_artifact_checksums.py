"""sha256 of a version's files (artifact.checksums)."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

from artifact.checksums import sha256_file, sha256_of, tree_checksums


def test_sha256_file_is_the_files_sha256(tmp_path: Path) -> None:
    data = bytes(range(256)) * 5000
    (tmp_path / "a.bin").write_bytes(data)
    assert sha256_file(tmp_path / "a.bin") == hashlib.sha256(data).hexdigest()


def test_tree_checksums_lists_every_file_but_the_manifest(tmp_path: Path) -> None:
    (tmp_path / "index").mkdir()
    (tmp_path / "index" / "a.npy").write_bytes(b"a")
    (tmp_path / "items.parquet").write_bytes(b"items")
    (tmp_path / "manifest.json").write_text("{}")
    assert tree_checksums(tmp_path) == {
        "index/a.npy": hashlib.sha256(b"a").hexdigest(),
        "items.parquet": hashlib.sha256(b"items").hexdigest(),
    }


def test_a_paced_digest_pauses_as_it_reads_and_gives_the_same_digest() -> None:
    data = b"x" * (1 << 20)
    pauses: list[int] = []
    digest = sha256_of(io.BytesIO(data), pause=lambda: pauses.append(1), pause_every=1 << 16)
    assert digest == hashlib.sha256(data).hexdigest()
    assert len(pauses) >= 4  # file_digest reads in blocks of 256 KiB: at least one pause per block
