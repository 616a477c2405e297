"""The quality harness's scoring: P1 per pair when the model queries per pair,
and the one-knob tuning (EASE, SVD) picking on validation, refitting on train."""

import numpy as np
import pandas as pd

from benchmarks.movielens import Protocol, evaluate
from benchmarks.quality.baselines import tuned_one_knob
from towers.spec import ids_only_spec
from training.config import SplitKind
from training.data.tables import CanonicalData
from training.prepared import prepare
from training.split import Split

N_ITEMS, N_USERS = 30, 12


def _prep(seed: int = 0):
    rng = np.random.default_rng(seed)
    users = np.repeat([f"u{u:02d}" for u in range(N_USERS)], 10)
    items = np.concatenate([rng.choice(N_ITEMS, 10, replace=False) for _ in range(N_USERS)])
    inter = pd.DataFrame({"user_id": users, "item_id": [f"i{i:02d}" for i in items], "timestamp": np.arange(len(users))})
    data = CanonicalData(
        interactions=inter,
        items=pd.DataFrame({"item_id": [f"i{i:02d}" for i in range(N_ITEMS)]}),
        users=pd.DataFrame({"user_id": sorted(set(users))}),
        source="test",
    )
    return prepare(data, ids_only_spec(4))


def test_p1_uses_the_pair_scores_when_given_and_p2_stays_per_user():
    prep = _prep()
    rows = np.arange(len(prep.user_rows))
    train, test = rows[rows % 5 != 0], rows[rows % 5 == 0]
    ranked = np.arange(N_ITEMS, 0, -1, dtype=np.float32)  # item 0 best ... item 29 worst, for every user

    def per_user(users):
        return np.broadcast_to(ranked, (len(users), N_ITEMS))

    def per_pair(pairs):  # pair j's own item on top
        return np.eye(N_ITEMS, dtype=np.float32)[prep.item_rows[test[pairs]]]

    by_user = evaluate(per_user, prep, train, test)
    by_pair = evaluate(per_user, prep, train, test, pair_score_fn=per_pair)
    assert by_user["top_10_accuracy"] == np.mean(prep.item_rows[test] < 10) < 1.0
    assert by_pair["top_10_accuracy"] == 1.0
    for key in ("recall_at_10", "ndcg_at_10", "recall_at_100"):
        assert by_pair[key] == by_user[key]


class _Noisy:
    """A 'model' whose scores are the truth plus noise shrinking with its knob."""

    def __init__(self, truth: np.ndarray, knob: float) -> None:
        self.scores = truth + np.random.default_rng(int(knob)).normal(scale=1.0 / knob, size=truth.shape)

    def score(self, users):
        return self.scores[users]


def test_one_knob_tuning_keeps_the_best_validation_value_and_refits_on_train():
    prep = _prep(1)
    rows = np.arange(len(prep.user_rows))
    split = Split(train=rows[rows % 5 != 0], test=rows[rows % 5 == 0])
    proto = Protocol(
        "P2", SplitKind.TEMPORAL, split, fit_rows=split.train[split.train % 4 != 1], val_rows=split.train[split.train % 4 == 1]
    )
    truth = np.zeros((prep.num_users, N_ITEMS), np.float32)
    truth[prep.user_rows, prep.item_rows] = 1.0
    fitted = []

    def fit(matrix, knob):
        fitted.append(int(matrix.sum()))
        return _Noisy(truth, knob)

    result, best = tuned_one_knob(prep, proto, "knob", [0.01, 100.0, 0.02], fit)
    assert best == 100.0 and result["hyperparameters"] == {"knob": 100.0}  # the least noisy
    assert [r["knob"] for r in result["validation"]["sweep"]] == [0.01, 100.0, 0.02]
    assert fitted[:3] == [len(proto.fit_rows)] * 3 and fitted[3] == len(split.train)  # tuned on fit rows, refit on train
    assert result["test"]["recall_at_10"] > 0.5
