"""The real MovieLens 100K in ../shared/data/ml-100k (skipped when absent)."""

from __future__ import annotations

from pathlib import Path

import pytest

from training.data.sources import load_source

ML_100K = Path(__file__).resolve().parents[4] / "shared" / "data" / "ml-100k"

pytestmark = [
    pytest.mark.movielens,
    pytest.mark.skipif(not (ML_100K / "u.data").is_file(), reason=f"{ML_100K} not present"),
]


def test_real_movielens_100k() -> None:
    data = load_source(f"movielens:{ML_100K}", progress=False)
    assert len(data.interactions) == 100_000
    assert len(data.items) == 1682
    assert len(data.users) == 943
    assert data.report.count == 0
    assert data.interactions["weight"].between(1, 5).all()
    items = data.items.set_index("item_id")
    assert items.loc["1", "title"] == "Toy Story (1995)"
    assert items.loc["1", "genres"] == ["Animation", "Children's", "Comedy"]
    assert data.items["title"].str.contains("é").any()  # latin-1 decoded
    assert data.fingerprint() == load_source(f"movielens:{ML_100K}", progress=False).fingerprint()
