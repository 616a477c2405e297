"""Metric functions against hand-computed cases."""

import math

import numpy as np
import pytest

from training.metrics import popularity_score_fn, ranking_metrics, recall_vs_exact, top_k_accuracy, top_k_indices

SCORES = np.array(
    [
        [0.9, 0.8, 0.1, 0.5, 0.3],  # user 0: order 0,1,3,4,2
        [0.1, 0.2, 0.3, 0.4, 0.5],  # user 1: order 4,3,2,1,0
    ],
    dtype=np.float32,
)


def score_fn(users):
    return SCORES[users]


def test_top_k_indices_best_first():
    assert top_k_indices(SCORES, 3).tolist() == [[0, 1, 3], [4, 3, 2]]


def test_top_k_accuracy_counts_pairs_in_top_k():
    users = np.array([0, 0, 1])
    items = np.array([1, 2, 3])  # ranks 1, 4, 1
    out = top_k_accuracy(score_fn, users, items, ks=(1, 2, 5))
    assert out == {"top_1_accuracy": 0.0, "top_2_accuracy": pytest.approx(2 / 3), "top_5_accuracy": 1.0}


def test_ranking_metrics_exclude_training_items_and_match_hand_computation():
    # user 0 trained on item 0, test items {3, 2}; after exclusion top is 1,3,4,2
    # user 1 trained on nothing, test item {0}: ranked last (5th)
    out = ranking_metrics(
        score_fn,
        np.array([0, 1]),
        [np.array([3, 2]), np.array([0])],
        [np.array([0]), np.array([], dtype=int)],
        num_items=5,
        recall_ks=(2, 4),
        ndcg_k=2,
        coverage_k=2,
    )
    assert out["recall_at_2"] == pytest.approx((1 / 2 + 0) / 2)
    assert out["recall_at_4"] == pytest.approx((2 / 2 + 0) / 2)
    ndcg_user0 = (1 / math.log2(3)) / (1 + 1 / math.log2(3))  # hit at rank 2 of 2 relevant
    assert out["ndcg_at_2"] == pytest.approx(ndcg_user0 / 2)
    assert out["coverage_at_2"] == pytest.approx(len({1, 3, 4}) / 5)


def test_popularity_scores_by_training_counts():
    fn = popularity_score_fn(np.array([2, 2, 1]), 4)
    assert fn(np.array([0, 5])).tolist() == [[0, 1, 2, 0], [0, 1, 2, 0]]


def test_recall_vs_exact():
    assert recall_vs_exact(np.array([[1, 2], [3, 4]]), np.array([[2, 1], [3, 5]])) == pytest.approx(0.75)


def test_per_user_values_average_to_the_reported_metrics():
    from training.metrics import ranking_metrics_per_user

    rng = np.random.default_rng(0)
    scores = rng.random((6, 20)).astype(np.float32)
    users = np.arange(6)
    test = [rng.choice(20, 3, replace=False) for _ in users]
    test[4] = np.zeros(0, dtype=np.int64)  # a user without test items is not counted
    train = [np.array([u]) for u in users]
    per_user, coverage = ranking_metrics_per_user(lambda u: scores[u], users, test, train, 20)
    averaged = ranking_metrics(lambda u: scores[u], users, test, train, 20)
    assert len(per_user["ndcg_at_10"]) == 5
    for key, values in per_user.items():
        assert averaged[key] == pytest.approx(values.mean())
    assert averaged["coverage_at_10"] == coverage


def test_paired_bootstrap_separates_a_real_difference_from_none():
    from training.metrics import paired_bootstrap

    rng = np.random.default_rng(1)
    b = rng.random(500)
    same = paired_bootstrap(b, b.copy())
    assert same["difference"] == 0.0 and same["ci95_low"] == 0.0 == same["ci95_high"] and same["p_not_better"] == 1.0
    better = paired_bootstrap(b + 0.05 + 0.01 * rng.standard_normal(500), b, resamples=1000, seed=3)
    assert better["ci95_low"] > 0.04 and better["ci95_high"] < 0.06 and better["p_not_better"] == 0.0
    noisy = paired_bootstrap(b + rng.standard_normal(500), b)  # no real difference, much noise
    assert noisy["ci95_low"] < 0 < noisy["ci95_high"] and 0.05 < noisy["p_not_better"] < 0.95
    with pytest.raises(ValueError):
        paired_bootstrap(b, b[:-1])
