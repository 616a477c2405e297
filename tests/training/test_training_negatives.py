"""The three softmaxes: in-batch (logQ), full catalog, mixed (in-batch + uniform),
checked against their definitions."""

import numpy as np
import pytest
import tensorflow as tf

from towers.spec import ids_only_spec
from towers.tower import build_tower
from training.config import Negatives, TrainConfig
from training.model import CANDIDATE_PREFIX, ITEM_ROW, QUERY_PREFIX, SAMPLING_PROBABILITY, TwoTowerModel

USERS = np.array(["u0", "u1", "u2"], dtype=object)
ITEMS = np.array(["i0", "i1", "i2", "i3", "i4"], dtype=object)


def _model(negatives: str, temperature: float = 0.5, **kw) -> TwoTowerModel:
    tf.keras.utils.set_random_seed(0)
    spec = ids_only_spec(4)
    query = build_tower(spec.query, {"user_id": USERS}, 4, "q")
    cand = build_tower(spec.candidate, {"item_id": ITEMS}, 4, "c")
    config = TrainConfig(negatives=Negatives(negatives), temperature=temperature, embedding_l2=0.0, **kw)
    p = np.array([0.4, 0.3, 0.1, 0.1, 0.1], np.float32)
    return TwoTowerModel(query, cand, ["user_id"], ["item_id"], config, catalog={"item_id": ITEMS}, sampling_probability=p)


def _batch(users, rows):
    rows = np.asarray(rows, np.int64)
    p = np.array([0.4, 0.3, 0.1, 0.1, 0.1], np.float32)
    return {
        QUERY_PREFIX + "user_id": tf.constant(USERS[users].astype(str)),
        CANDIDATE_PREFIX + "item_id": tf.constant(ITEMS[rows].astype(str)),
        ITEM_ROW: tf.constant(rows),
        SAMPLING_PROBABILITY: tf.constant(p[rows]),
    }


def test_full_softmax_is_cross_entropy_over_the_whole_catalog():
    model = _model("full", temperature=0.5)
    users, rows = [0, 1, 2, 0], [1, 1, 3, 4]  # item 1 twice: no double counting
    loss = float(model.compute_loss(_batch(users, rows), training=True))
    q = model.query_tower({"user_id": tf.constant(USERS[users].astype(str))}).numpy()
    e = model.candidate_tower({"item_id": tf.constant(ITEMS.astype(str))}).numpy()
    logits = q @ e.T / 0.5
    logits -= logits.max(axis=1, keepdims=True)
    log_softmax = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
    expected = -log_softmax[np.arange(4), rows].sum()  # the task sums over the batch
    assert loss == pytest.approx(expected, rel=1e-4)


def test_in_batch_softmax_is_unchanged_logq_corrected():
    model = _model("in_batch", temperature=1.0, remove_accidental_hits=False)
    users, rows = [0, 1, 2], [0, 2, 4]
    loss = float(model.compute_loss(_batch(users, rows), training=True))
    q = model.query_tower({"user_id": tf.constant(USERS[users].astype(str))}).numpy()
    c = model.candidate_tower({"item_id": tf.constant(ITEMS[rows].astype(str))}).numpy()
    p = np.array([0.4, 0.3, 0.1, 0.1, 0.1])[rows]
    logits = q @ c.T - np.log(p)[None, :]
    log_softmax = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
    assert loss == pytest.approx(-np.trace(log_softmax), rel=1e-4)


def test_mixed_negatives_append_uniform_items_with_their_expected_counts():
    model = _model("mixed", mixed_negatives=7)
    rows = tf.constant([0, 3], tf.int64)
    cand = model.candidate_tower({"item_id": tf.constant(ITEMS[[0, 3]].astype(str))})
    tf.random.set_seed(1)
    candidates, ids, expected = model._with_uniform_negatives(cand, rows, tf.constant([0.4, 0.1]), training=False)
    ids = ids.numpy()
    assert candidates.shape == (2 + 7, 4) and ids[:2].tolist() == [0, 3]
    assert ((ids[2:] >= 0) & (ids[2:] < 5)).all()
    # each appended row is the candidate tower's embedding of the sampled item
    np.testing.assert_allclose(
        candidates.numpy()[2:], model.candidate_tower({"item_id": tf.constant(ITEMS[ids[2:]].astype(str))}).numpy(), rtol=1e-6
    )
    p = np.array([0.4, 0.3, 0.1, 0.1, 0.1])
    np.testing.assert_allclose(expected.numpy(), 2 * p[ids] + 7 / 5, rtol=1e-6)  # B * p(item) + M / N
    assert np.isfinite(float(model.compute_loss(_batch([0, 1], [0, 3]), training=True)))


def test_in_batch_is_the_default_and_the_others_need_the_catalog():
    assert TrainConfig().negatives is Negatives.IN_BATCH
    spec = ids_only_spec(4)
    query = build_tower(spec.query, {"user_id": USERS}, 4, "q")
    cand = build_tower(spec.candidate, {"item_id": ITEMS}, 4, "c")
    for negatives in ("full", "mixed"):
        with pytest.raises(ValueError, match="catalog"):
            TwoTowerModel(query, cand, ["user_id"], ["item_id"], TrainConfig(negatives=negatives))


@pytest.mark.parametrize("negatives", ["full", "mixed"])
def test_evaluation_with_factorized_top_k_works_whatever_the_training_softmax(negatives):
    model = _model(negatives, mixed_negatives=3)
    e = model.candidate_tower({"item_id": tf.constant(ITEMS.astype(str))}).numpy()
    model.attach_top_k_metrics(e, ks=(1, 5))
    model.compute_loss(_batch([0, 1, 2], [0, 2, 4]), training=False)  # what Model.evaluate runs
    top5 = {m.name: float(m.result()) for m in model.task.factorized_metrics[0]._top_k_metrics}
    assert top5["factorized_top_k/top_5_categorical_accuracy"] == 1.0  # every item is in a 5-item catalog's top 5
