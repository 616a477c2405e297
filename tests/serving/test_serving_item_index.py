"""The index step on its own: item vectors checked at open, the full scan with its
tie-break, detecting distances that are exact dot products, filtered search."""

import numpy as np
import pytest

from serving.item_index import IndexOpenError, LocalIndex, open_embeddings
from tests.serving.retrieval.test_retrieval_execute import tree_ah_searcher


def _brute_force(emb: np.ndarray):
    import scann

    return scann.scann_ops_pybind.builder(np.ascontiguousarray(emb), 10, "dot_product").score_brute_force().build()


@pytest.fixture(scope="module")
def emb() -> np.ndarray:
    out = np.random.default_rng(3).standard_normal((200, 8)).astype(np.float32)
    out.flags.writeable = False
    return out


@pytest.mark.parametrize(
    ("array", "reason"),
    [
        (np.full((5, 4), np.nan, dtype=np.float32), "table_invalid"),
        (np.zeros((5, 3), dtype=np.float32), "shape_mismatch"),
        (np.zeros((4, 4), dtype=np.float32), "shape_mismatch"),
    ],
)
def test_item_vectors_are_checked_at_open(tmp_path, array, reason) -> None:
    np.save(tmp_path / "e.npy", array)
    with pytest.raises(IndexOpenError) as info:
        open_embeddings(tmp_path / "e.npy", 5, 4)
    assert info.value.reason == reason


def test_item_vectors_open_read_only(tmp_path, emb) -> None:
    np.save(tmp_path / "e.npy", emb.astype(np.float64))
    out = open_embeddings(tmp_path / "e.npy", 200, 8)
    assert out.dtype == np.float32 and not out.flags.writeable and out.flags.c_contiguous


def test_full_scan_keeps_the_best_eligible_and_breaks_ties_by_row() -> None:
    emb = np.array([[1.0], [3.0], [2.0], [3.0], [0.5], [3.0]], dtype=np.float32)
    index = LocalIndex(_brute_force(emb), emb, rescore_k=4)
    eligible = np.array([True, True, True, False, True, True])
    best = index.scan(np.array([1.0], dtype=np.float32), eligible, 3)
    assert best is not None  # no still_wanted callback: never stopped
    rows, scores = best
    assert rows.tolist() == [1, 5, 2]  # 3 is not eligible; 1 and 5 tie, lower row first
    np.testing.assert_allclose(scores, [3.0, 3.0, 2.0])
    every = index.scan(np.array([1.0], dtype=np.float32), eligible, 50)
    assert every is not None and every[0].tolist() == [1, 5, 2, 0, 4]  # every eligible item, no more


def test_distances_are_scores_only_for_exact_distances(emb) -> None:
    queries = emb[:4] + 0.1
    assert LocalIndex(_brute_force(emb), emb, rescore_k=50).check_distances_are_scores(queries)
    assert not LocalIndex(tree_ah_searcher(emb), emb, rescore_k=50).check_distances_are_scores(queries)


@pytest.mark.parametrize("searcher", [_brute_force, tree_ah_searcher])
def test_search_ranked_honours_masks_and_exclusions_with_distances_as_scores(emb, searcher) -> None:
    index = LocalIndex(searcher(emb), emb, rescore_k=200)
    index.check_distances_are_scores(emb[:2])
    queries = np.ascontiguousarray(emb[10:13] * 2.0)
    mask = np.zeros(200, dtype=bool)
    mask[::3] = True
    exclude = [np.array([0, 3, 6], dtype=np.int64), np.zeros(0, dtype=np.int64), np.arange(0, 200, 2, dtype=np.int64)]
    out = index.search_ranked(queries, 20, np.array([5, 5, 5]), exclude, [(0, mask)])
    assert not out.short.any()
    for p in range(3):
        rows = out.rows[out.offsets[p] : out.offsets[p + 1]]
        eligible = np.ones(200, dtype=bool)
        eligible[exclude[p]] = False
        if p == 0:
            eligible &= mask
        best = np.argsort(-(emb @ queries[p]) + np.where(eligible, 0, np.inf), kind="stable")[:5]
        assert rows.tolist() == best.tolist()  # every leaf searched, pool of all items: the exact best
        np.testing.assert_allclose(out.scores[out.offsets[p] : out.offsets[p + 1]], emb[rows] @ queries[p], rtol=1e-5, atol=1e-5)
