"""The compiled kernel that filters, re-scores and orders a batch's index candidates."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import recsys  # noqa: F401  (first: TF_USE_LEGACY_KERAS)
from serving.ranking import rank_candidates


def reference(idx, dist, wanted, exclude, embeddings, queries, allowed):
    """The same ranking written plainly, one query at a time."""
    rows_out, scores_out, counts, short = [], [], [], []
    for p in range(idx.shape[0]):
        cands = []
        for j in range(idx.shape[1]):
            r, d = int(idx[p, j]), float(dist[p, j])
            if r < 0 or r >= len(embeddings) or not np.isfinite(d):
                continue
            if allowed is not None and not allowed[p, j]:
                continue
            if r in set(exclude[p].tolist()):
                continue
            s = (
                np.float32(d)
                if queries is None
                else np.float32(np.dot(embeddings[r].astype(np.float64), queries[p].astype(np.float64)))
            )
            cands.append((r, s))
        rows = [r for r, _ in cands]
        if len(cands) < wanted[p] or len(set(rows)) != len(rows):
            short.append(True)
            counts.append(0)
            continue
        cands.sort(key=lambda c: (-c[1], c[0]))
        kept = cands[: wanted[p]]
        short.append(False)
        counts.append(len(kept))
        rows_out += [r for r, _ in kept]
        scores_out += [s for _, s in kept]
    return rows_out, scores_out, counts, short


def test_exclusions_filters_and_invalid_candidates_are_dropped() -> None:
    emb = np.eye(6, dtype=np.float32)
    idx = np.array([[5, 4, 3, 2, 1, 0, -1, 9]])
    dist = np.array([[9, 8, 7, 6, 5, 4, 3, 2]], dtype=np.float32)
    dist[0, 2] = np.nan  # row 3: not a valid candidate
    allowed = np.ones_like(idx, dtype=bool)
    allowed[0, 1] = False  # row 4 refused by a filter
    out = rank_candidates(idx, dist, np.array([2]), [np.array([5])], embeddings=emb, queries=None, allowed=allowed)
    assert out.rows.tolist() == [2, 1] and out.scores.tolist() == [6.0, 5.0]
    assert out.offsets.tolist() == [0, 2] and out.short.tolist() == [False]


def test_ties_are_broken_by_row_and_shortfalls_or_duplicates_are_marked() -> None:
    emb = np.zeros((10, 2), dtype=np.float32)
    idx = np.array([[7, 3, 9, 1], [1, 2, 3, 4], [4, 4, 5, 6]])
    dist = np.array([[1, 1, 2, 1], [1, 1, 1, 1], [3, 2, 1, 0]], dtype=np.float32)
    wanted = np.array([3, 5, 2])
    out = rank_candidates(idx, dist, wanted, [np.zeros(0, np.int64)] * 3, embeddings=emb, queries=None)
    assert out.rows.tolist() == [9, 1, 3]  # 9 (score 2), then the tied 1, 3 by row
    assert out.short.tolist() == [False, True, True]  # 4 candidates for 5; row 4 twice
    assert out.offsets.tolist() == [0, 3, 3, 3]


def test_pool_is_re_scored_exactly_against_the_embeddings() -> None:
    rng = np.random.default_rng(3)
    emb = rng.standard_normal((50, 8)).astype(np.float32)
    q = rng.standard_normal((2, 8)).astype(np.float32)
    idx = np.array([rng.permutation(50)[:20], rng.permutation(50)[:20]])
    approx = np.zeros(idx.shape, dtype=np.float32)  # the index's own scores are not used
    out = rank_candidates(idx, approx, np.array([5, 5]), [np.zeros(0, np.int64)] * 2, embeddings=emb, queries=q)
    for p in range(2):
        exact = emb[idx[p]] @ q[p]
        best = idx[p][np.argsort(-exact)[:5]]
        got = out.rows[out.offsets[p] : out.offsets[p + 1]]
        assert got.tolist() == best.tolist()
        np.testing.assert_allclose(out.scores[out.offsets[p] : out.offsets[p + 1]], np.sort(exact)[::-1][:5], rtol=1e-5)


def test_shapes_are_checked() -> None:
    emb = np.zeros((4, 2), dtype=np.float32)
    with pytest.raises(ValueError):
        rank_candidates(np.zeros((1, 3)), np.zeros((1, 2)), np.ones(1), [np.zeros(0)], embeddings=emb, queries=None)
    with pytest.raises(ValueError):
        rank_candidates(np.zeros((2, 3)), np.zeros((2, 3)), np.ones(1), [np.zeros(0)], embeddings=emb, queries=None)
    with pytest.raises(ValueError):
        rank_candidates(np.zeros((1, 3)), np.zeros((1, 3)), np.ones(1), [np.zeros(0)], embeddings=emb, queries=np.zeros((1, 3)))


@settings(max_examples=150, deadline=None)
@given(data=st.data(), queries=st.integers(1, 5), width=st.integers(1, 30), rescore=st.booleans(), masked=st.booleans())
def test_agrees_with_a_plain_reference(data, queries, width, rescore, masked) -> None:
    num_items = 25
    seed = data.draw(st.integers(0, 2**31 - 1))
    rng = np.random.default_rng(seed)
    emb = rng.integers(-3, 4, (num_items, 4)).astype(np.float32)  # small integers: ties happen
    q = rng.integers(-2, 3, (queries, 4)).astype(np.float32)
    idx = rng.integers(-2, num_items + 3, (queries, width))
    dist = rng.integers(-5, 6, (queries, width)).astype(np.float32)
    dist[rng.random(dist.shape) < 0.05] = np.nan
    wanted = rng.integers(1, 8, queries)
    exclude = [np.unique(rng.integers(0, num_items, rng.integers(0, 6))) for _ in range(queries)]
    allowed = rng.random(idx.shape) < 0.8 if masked else None
    got = rank_candidates(idx, dist, wanted, exclude, embeddings=emb, queries=q if rescore else None, allowed=allowed)
    rows, scores, counts, short = reference(idx, dist, wanted, exclude, emb, q if rescore else None, allowed)
    assert got.rows.tolist() == rows
    assert got.scores.tolist() == pytest.approx(scores)
    assert np.diff(got.offsets).tolist() == counts and got.short.tolist() == short
