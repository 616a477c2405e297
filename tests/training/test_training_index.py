"""The ScaNN index: the former size rule, build, recall of what the service returns,
serialisation. The tuning of the operating point: test_training_index_tuning.py."""

import shutil

import numpy as np
import pytest
import scann

from tests.training.index_costs import modelled_costs
from training.index import (
    BRUTE_FORCE_BELOW,
    LARGE_CATALOG,
    build_index,
    index_params,
    index_recall,
    save_searcher,
    search_rescored,
)


@pytest.fixture(scope="module", autouse=True)
def _modelled_costs():
    """The tuner's choices asserted here must not ride on a shared machine's timing noise."""
    with modelled_costs():
        yield


def test_parameters_by_catalog_size() -> None:
    assert index_params(BRUTE_FORCE_BELOW - 1) == ("brute_force", {})
    kind, small = index_params(100_000)
    assert kind == "tree_ah" and small["num_leaves"] == 316 and small["num_leaves_to_search"] == 31 and small["reorder"] == 100
    assert index_params(300_000)[1]["reorder"] == 250
    _, large = index_params(1_000_000)
    assert large["num_leaves"] == 2000 and large["num_leaves_to_search"] == 25 and large["reorder"] == 50
    assert large["soar_lambda"] == 1.5 and "soar_lambda" not in small  # spilling for large catalogs only
    _, edge = index_params(LARGE_CATALOG)
    assert edge["num_leaves"] == int(2 * np.sqrt(LARGE_CATALOG)) and edge["num_leaves_to_search"] >= 20
    for n in (BRUTE_FORCE_BELOW, 250_000, LARGE_CATALOG, 5_000_000, 100_000_000):
        _, p = index_params(n)
        assert 20 <= p["num_leaves_to_search"] < p["num_leaves"] and p["training_sample_size"] <= n


def test_tree_index_finds_the_exact_neighbours_and_survives_a_move(tmp_path) -> None:
    rng = np.random.default_rng(0)
    centres = rng.standard_normal((300, 32))
    items = (centres[rng.integers(0, 300, 40_000)] + 0.5 * rng.standard_normal((40_000, 32))).astype(np.float32)
    queries = (centres[rng.integers(0, 300, 600)] + 0.5 * rng.standard_normal((600, 32))).astype(np.float32)
    searcher, info = build_index(items, queries)
    assert info.kind == "tree_ah" and info.recall_at_10_vs_exact is not None and info.recall_at_10_vs_exact >= 0.95
    save_searcher(searcher, tmp_path / "a")
    shutil.move(tmp_path / "a", tmp_path / "b")  # relative paths: the folder may be renamed
    loaded = scann.scann_ops_pybind.load_searcher(str(tmp_path / "b"))
    before, _ = searcher.search_batched(queries[:20], final_num_neighbors=10)
    after, _ = loaded.search_batched(queries[:20], final_num_neighbors=10)
    assert np.array_equal(np.asarray(before), np.asarray(after))


@pytest.mark.parametrize("n", [50, 1_500])
def test_small_catalogs_are_exact(n) -> None:
    """Below 1,000 items no tree is tried; at 1,500 trees are tried and brute force,
    re-scoring nothing, costs less (test_training_index_tuning.py)."""
    rng = np.random.default_rng(1)
    items = rng.standard_normal((n, 16)).astype(np.float32)
    queries = rng.standard_normal((30, 16)).astype(np.float32)
    searcher, info = build_index(items, queries)
    assert info.kind == "brute_force" and info.recall_at_10_vs_exact == pytest.approx(1.0)
    assert index_recall(searcher, items, queries, k=10) == pytest.approx(1.0)  # numpy's exact top-10


def test_tree_index_keeps_no_float_copy_and_recall_counts_the_re_scored_pool(tmp_path) -> None:
    """The serialised tree + AH index holds no dataset.npy (the service re-scores from
    item_embeddings.npy); the recorded recall is that of what the service returns with the
    serialised searcher as it is (its own leaves to search) and the recorded pool re-scored,
    on the checking half of the query sample, against numpy's exact top-10."""
    from training.index_queries import sample_queries

    rng = np.random.default_rng(2)
    centres = rng.standard_normal((300, 32))
    items = (centres[rng.integers(0, 300, 40_000)] + 0.5 * rng.standard_normal((40_000, 32))).astype(np.float32)
    queries = (centres[rng.integers(0, 300, 800)] + 0.5 * rng.standard_normal((800, 32))).astype(np.float32)
    searcher, info = build_index(items, queries, seed=3)
    save_searcher(searcher, tmp_path / "index")
    assert info.kind == "tree_ah" and not (tmp_path / "index" / "dataset.npy").exists()
    loaded = scann.scann_ops_pybind.load_searcher(str(tmp_path / "index"))
    checking = sample_queries(queries, items, seed=3).checking  # the same seeded split the build used
    rows, scores = search_rescored(loaded, items, checking, 10, info.params["reorder"])
    np.testing.assert_allclose(scores, np.einsum("qkd,qd->qk", items[rows], checking), rtol=1e-5, atol=1e-5)
    assert (np.diff(scores, axis=1) <= 0).all()
    recall = index_recall(loaded, items, checking, k=10, pool=info.params["reorder"])
    assert info.recall_at_10_vs_exact == pytest.approx(recall, abs=1e-3)
    assert recall >= index_recall(loaded, items, checking, k=10, pool=0)


def test_spilled_tree_returns_each_item_once_and_survives_serialisation(tmp_path) -> None:
    """The large-catalog settings (SOAR: every item in two leaves) on a small catalog:
    no item twice among a query's candidates although a query visits both leaves of
    many items (the service would fall back to exact scoring), a usable recall, and
    the same answers after save and load. (That spilling buys recall per leaf shows
    at scale: BENCHMARKS.md section 3; on a small catalog it can go either way.)"""
    from training.index import build_searcher

    rng = np.random.default_rng(3)
    centres = rng.standard_normal((300, 32))
    items = (centres[rng.integers(0, 300, 30_000)] + 0.7 * rng.standard_normal((30_000, 32))).astype(np.float32)
    queries = (centres[rng.integers(0, 300, 300)] + 0.7 * rng.standard_normal((300, 32))).astype(np.float32)
    _, large = index_params(1_000_000)
    params = {**large, "num_leaves": 200, "num_leaves_to_search": 4, "training_sample_size": len(items)}
    spilled = build_searcher(items, "tree_ah", params)
    assert "database_spilling" in str(spilled.config())  # the SOAR stanza reached ScaNN
    idx, _ = spilled.search_batched(queries, final_num_neighbors=params["reorder"])
    idx = np.asarray(idx)
    assert all(len(set(row[row >= 0].tolist())) == int((row >= 0).sum()) for row in idx)
    assert (idx >= 0).sum(axis=1).min() == params["reorder"]  # a full pool for every query
    assert index_recall(spilled, items, queries, k=10, pool=params["reorder"]) >= 0.9
    save_searcher(spilled, tmp_path / "index")
    again, _ = scann.scann_ops_pybind.load_searcher(str(tmp_path / "index")).search_batched(queries[:20], final_num_neighbors=10)
    before, _ = spilled.search_batched(queries[:20], final_num_neighbors=10)
    assert np.array_equal(np.asarray(before), np.asarray(again))
