"""MovieLens 100K through the project's own loader, splits and metric functions,
so every model in the benchmarks is scored by exactly the same code.

- P1 (random, seed 42, 80/20) and P2 (per-user temporal, last 20%) come from
  ``training.split`` via ``training.pipeline.split_with_validation`` — the same
  test split *and* the same validation carve (from train) that
  ``run_pipeline`` uses for the project's model.
- Scores are dense ``score_fn(user_rows) -> [n, num_items]`` functions; the
  metrics are ``training.metrics.top_k_accuracy`` (P1) and
  ``training.metrics.ranking_metrics`` (P2, training items excluded).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from towers.spec import ids_only_spec
from training.config import SplitKind, TrainConfig
from training.data.sources import load_source
from training.data.tables import CanonicalData
from training.metrics import ScoreFn, ranking_metrics, top_k_accuracy
from training.pipeline import split_with_validation
from training.prepared import PreparedData, prepare
from training.split import Split

PROTOCOLS = {"P1": SplitKind.RANDOM, "P2": SplitKind.TEMPORAL}
# what each protocol reports (BENCHMARKS.md) and the one metric tuned on validation
REPORTED = {
    "P1": ("top_10_accuracy", "top_50_accuracy", "top_100_accuracy"),
    "P2": ("recall_at_10", "recall_at_100", "ndcg_at_10", "coverage_at_10"),
}
TUNING_METRIC = {"P1": "top_100_accuracy", "P2": "ndcg_at_10"}


@dataclass
class Protocol:
    """One evaluation protocol on one dataset: test split plus validation carve."""

    name: str  # "P1" | "P2"
    kind: SplitKind
    split: Split  # train / test row positions
    fit_rows: np.ndarray  # train minus validation (what tuned models fit while tuning)
    val_rows: np.ndarray  # validation rows carved from train

    @property
    def config(self) -> TrainConfig:
        return TrainConfig(split=self.kind)


def load(path: Path) -> tuple[CanonicalData, PreparedData]:
    """Canonical MovieLens tables and their row-indexed form (ids-only inputs;
    row order = the users/items tables' order, as in ``run_pipeline``)."""
    data = load_source(f"movielens:{path}", progress=False)
    return data, prepare(data, ids_only_spec(32))


def protocol(prep: PreparedData, name: str) -> Protocol:
    kind = PROTOCOLS[name]
    split, fit_rows, val_rows = split_with_validation(prep, TrainConfig(split=kind))
    return Protocol(name=name, kind=kind, split=split, fit_rows=fit_rows, val_rows=val_rows)


def evaluate(
    score_fn: ScoreFn,
    prep: PreparedData,
    train_rows: np.ndarray,
    test_rows: np.ndarray,
    pair_score_fn: ScoreFn | None = None,
) -> dict[str, float]:
    """P1 metrics over every (user, item) test pair (nothing excluded) and P2
    metrics over every user with test items (their ``train_rows`` items
    excluded). Mirrors ``training.evaluate.evaluate_split`` without sampling.
    ``pair_score_fn`` (positions into ``test_rows``): P1 with a query per pair
    (a history model: its user's training items before it), else per user."""
    if pair_score_fn is None:
        out = top_k_accuracy(score_fn, prep.user_rows[test_rows], prep.item_rows[test_rows])
    else:
        out = top_k_accuracy(pair_score_fn, np.arange(len(test_rows)), prep.item_rows[test_rows])
    test_by_user = prep.items_by_user(test_rows)
    train_by_user = prep.items_by_user(train_rows)
    users = np.array([u for u in range(prep.num_users) if len(test_by_user[u])], dtype=np.int64)
    out.update(
        ranking_metrics(
            score_fn,
            users,
            [test_by_user[u] for u in users],
            [train_by_user[u] for u in users],
            prep.num_items,
        )
    )
    return out


def evaluate_test(
    score_fn: ScoreFn, prep: PreparedData, proto: Protocol, pair_score_fn: ScoreFn | None = None
) -> dict[str, float]:
    return evaluate(score_fn, prep, proto.split.train, proto.split.test, pair_score_fn)


def evaluate_validation(score_fn: ScoreFn, prep: PreparedData, proto: Protocol) -> dict[str, float]:
    return evaluate(score_fn, prep, proto.fit_rows, proto.val_rows)


def published_order(rows: np.ndarray, seed: int = 42) -> np.ndarray:
    """``rows`` in one fixed shuffled order: the published TFRS code trains on
    MovieLens shuffled once (``shuffle(100_000, seed=42, reshuffle_each_iteration=False)``)."""
    return np.random.default_rng(seed).permutation(rows)


# --------------------------------------------------------------------------- P3 (sessions)
@dataclass
class Sessions:
    """Users held out of training: the first half of each one's interactions
    (time order) is given as the session, the second half is to be found."""

    users: np.ndarray  # user rows
    given: list[np.ndarray]  # item rows, oldest first
    target: list[np.ndarray]  # item rows


@dataclass
class SessionProtocol:
    """P3: ``fraction`` of the users (seeded) never seen in training; each is
    queried with the first half of their interactions as recent items."""

    name: str
    train_rows: np.ndarray  # every interaction of the users kept for training
    test: Sessions
    fit_rows: np.ndarray  # train_rows minus the validation users (tuning the baselines)
    validation: Sessions  # the same construction over a seeded share of the training users


def sessions(prep: PreparedData, users: np.ndarray) -> Sessions:
    """Each user's interactions by (time, position), halved: given | target."""
    from training.history import time_order

    rows = np.flatnonzero(np.isin(prep.user_rows, users))
    order = time_order(prep.user_rows, prep.times, rows)
    sorted_users = prep.user_rows[order]
    starts = np.searchsorted(sorted_users, users, side="left")
    ends = np.searchsorted(sorted_users, users, side="right")
    given, target = [], []
    for start, end in zip(starts, ends, strict=True):
        seq = prep.item_rows[order[start:end]]
        half = len(seq) // 2
        given.append(seq[:half])
        target.append(np.setdiff1d(seq[half:], seq[:half]))
    return Sessions(users=np.asarray(users, dtype=np.int64), given=given, target=target)


def session_protocol(prep: PreparedData, fraction: float = 0.1, seed: int = 42) -> SessionProtocol:
    rng = np.random.default_rng(seed)
    active = np.unique(prep.user_rows)
    held = np.sort(rng.choice(active, max(1, round(len(active) * fraction)), replace=False))
    kept = np.setdiff1d(active, held)
    val = np.sort(rng.choice(kept, max(1, round(len(kept) * fraction)), replace=False))
    train_rows = np.flatnonzero(~np.isin(prep.user_rows, held))
    fit_rows = np.flatnonzero(~np.isin(prep.user_rows, np.r_[held, val]))
    return SessionProtocol("P3", train_rows, sessions(prep, held), fit_rows, sessions(prep, val))


def evaluate_sessions(score_fn: ScoreFn, s: Sessions, num_items: int) -> tuple[dict[str, float], dict[str, np.ndarray]]:
    """Recall@10/100, NDCG@10 (and coverage@10) over sessions, the given items
    excluded; ``score_fn`` takes positions into ``s``. Returns the means and
    the per-user values (for the paired bootstrap)."""
    from training.metrics import ranking_metrics_per_user

    per_user, coverage = ranking_metrics_per_user(score_fn, np.arange(len(s.users)), s.target, s.given, num_items)
    means = {k: float(v.mean()) for k, v in per_user.items()}
    means["coverage_at_10"] = coverage
    return means, per_user


def session_matrix(s: Sessions, num_items: int) -> np.ndarray:
    """Binary (sessions x items) matrix of the given items: a folded-in user row."""
    x = np.zeros((len(s.users), num_items), dtype=np.float32)
    for j, items in enumerate(s.given):
        x[j, items] = 1.0
    return x


def per_user_test(score_fn: ScoreFn, prep: PreparedData, proto: Protocol) -> dict[str, list[float]]:
    """Per test user (every user with test items, in row order): Recall@10/100
    and NDCG@10 with training items excluded, as :func:`evaluate` averages them."""
    from training.metrics import ranking_metrics_per_user

    test_by_user = prep.items_by_user(proto.split.test)
    train_by_user = prep.items_by_user(proto.split.train)
    users = np.array([u for u in range(prep.num_users) if len(test_by_user[u])], dtype=np.int64)
    per_user, _ = ranking_metrics_per_user(
        score_fn, users, [test_by_user[u] for u in users], [train_by_user[u] for u in users], prep.num_items
    )
    return {k: v.tolist() for k, v in per_user.items()}
