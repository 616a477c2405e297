"""Early stopping validates on known items only (training/trainer.py ``_ValidationMetric``): the
ranking holds the items of the fit rows, and a validation pair whose item the fit rows never show
does not count, whatever the model (issue 20: a cold path's scores for unknown items must not move
the epoch count that early stopping picks).

Data: tests/taste_clusters.py; the first 20 items never appear in the fit rows."""

import numpy as np
import pytest

from tests.taste_clusters import taste_clusters
from tests.training.small_specs import category_spec

UNKNOWN = 20  # item rows below this are absent from the fit rows


@pytest.fixture(scope="module")
def setting():
    """(prep, model, fit rows, validation rows with known items, validation rows with unknown items)."""
    from training.config import SplitKind, TrainConfig
    from training.prepared import prepare
    from training.trainer import build_model

    prep = prepare(taste_clusters(5, categories=True), category_spec())
    rows = np.arange(len(prep.user_rows))
    unknown = prep.item_rows < UNKNOWN
    order = np.lexsort((prep.times, prep.user_rows))
    rank = np.empty(len(rows), dtype=np.int64)
    rank[order] = np.arange(len(rows)) - np.searchsorted(prep.user_rows[order], prep.user_rows[order])
    late = rank >= 24  # each user's last 6 interactions validate
    fit = rows[~late & ~unknown]
    config = TrainConfig(split=SplitKind.TEMPORAL, validation_metric_k=10, seed=4)
    model = build_model(prep, category_spec(), config, fit)
    known_items = set(np.unique(prep.item_rows[fit]).tolist())
    val_known = rows[late & ~unknown & np.isin(prep.item_rows, list(known_items))]
    val_unknown = rows[late & unknown]
    assert len(val_known) > 100 and len(val_unknown) > 10
    return prep, model, fit, val_known, val_unknown


def _metric(setting, val_rows, split):
    """The metric over ``val_rows`` (it gathers what it scores from the shards when it is made)."""
    import tempfile
    from pathlib import Path

    from training.config import TrainConfig
    from training.stream.run import rows_source
    from training.trainer import _ValidationMetric

    prep, _model, fit, _, _ = setting
    with tempfile.TemporaryDirectory() as tmp:
        source = rows_source(prep, fit, Path(tmp) / "prepared", seed=4, validation=val_rows)
        return _ValidationMetric(prep, source, TrainConfig(split=split, validation_metric_k=10, seed=4), None)


def _by_hand(setting, val_rows) -> float:
    """Recall@10 per user over the known items only, the user's fit items excluded."""
    from training.model import embed
    from training.prepared import subset_inputs

    prep, model, fit, _, _ = setting
    known = np.unique(prep.item_rows[fit])
    queries = embed(model.query_tower, prep.query_inputs(fit))
    items = embed(model.candidate_tower, subset_inputs(prep.item_inputs, known))
    recalls = []
    for u in np.unique(prep.user_rows[val_rows]):
        scores = queries[u] @ items.T
        scores[np.isin(known, prep.item_rows[fit][prep.user_rows[fit] == u])] = -np.inf
        top = set(known[np.argsort(-scores, kind="stable")[:10]].tolist())
        wanted = set(prep.item_rows[val_rows][prep.user_rows[val_rows] == u].tolist())
        recalls.append(len(top & wanted) / len(wanted))
    return float(np.mean(recalls))


@pytest.mark.parametrize("split", ["temporal", "random"])
def test_pairs_with_unknown_items_do_not_count(setting, split) -> None:
    from training.config import SplitKind

    _prep, model, _fit, val_known, val_unknown = setting
    kind = SplitKind(split)
    only_unknown = _metric(setting, val_unknown, kind)
    assert not only_unknown.active  # nothing to validate on: no early stopping rather than a metric of unknown items
    mixed = _metric(setting, np.concatenate([val_known, val_unknown]), kind)
    assert mixed.active
    assert mixed.compute(model) == _metric(setting, val_known, kind).compute(model)


def test_pairs_with_known_items_count_ranked_among_known_items(setting) -> None:
    from training.config import SplitKind

    prep, model, _fit, val_known, val_unknown = setting
    mixed = _metric(setting, np.concatenate([val_known, val_unknown]), SplitKind.TEMPORAL)
    value = mixed.compute(model)
    assert value == pytest.approx(_by_hand(setting, val_known), abs=1e-6)
    one_user = val_known[prep.user_rows[val_known] == prep.user_rows[val_known][0]]
    assert _metric(setting, one_user, SplitKind.TEMPORAL).compute(model) == pytest.approx(_by_hand(setting, one_user), abs=1e-6)
