"""The history feature: spec, encoder (last N, masking, pooling) and the shared item table."""

import numpy as np
import pandas as pd
import pytest
import tensorflow as tf
import yaml
from pydantic import ValidationError

from towers.features import LookupEmbedding, build_encoder
from towers.spec import (
    FeatureKind,
    HistoryPooling,
    ModelSpec,
    TowerSpec,
    history_feature,
    movielens_spec,
    spec_for_columns,
)
from towers.tower import build_tower, input_defaults, tower_inputs

VOCAB = np.array(["a", "b", "c", "d"], dtype=object)


def _encoder(pooling: str = "mean", length: int = 3):
    spec = history_feature(4, history_length=length, pooling=pooling)
    return build_encoder(spec, VOCAB)


def _rows(enc, ids):
    """Embedding rows of ``ids`` in the encoder's own table."""
    table = enc.embed.embeddings.numpy()
    return table[enc.lookup(tf.constant(ids)).numpy()]


def test_mean_keeps_the_last_n_and_masks_empty_and_unknown_ids():
    enc = _encoder("mean", length=3)
    out = enc(tf.constant(["a|b|c|d", "b", "", "zzz|c||", "a|a"])).numpy()
    np.testing.assert_allclose(out[0], _rows(enc, ["b", "c", "d"]).mean(axis=0), rtol=1e-5, atol=1e-7)  # oldest ("a") dropped
    np.testing.assert_allclose(out[1], _rows(enc, ["b"])[0], rtol=1e-5, atol=1e-7)
    np.testing.assert_array_equal(out[2], np.zeros(4, np.float32))  # empty history -> zeros
    np.testing.assert_allclose(out[3], _rows(enc, ["c"])[0], rtol=1e-5, atol=1e-7)  # unknown and empty tokens masked
    np.testing.assert_allclose(out[4], _rows(enc, ["a"])[0], rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("pooling", ["recency", "attention"])
def test_weighted_pooling_counts_positions_from_the_newest_item(pooling):
    enc = _encoder(pooling, length=3)
    x = tf.constant(["a|b|c", "c|d", ""])
    if pooling == "recency":
        # at initialisation (all position logits 0) recency pooling is the plain mean
        np.testing.assert_allclose(enc(x).numpy()[0], _rows(enc, ["a", "b", "c"]).mean(axis=0), rtol=1e-5)
    enc.position_logits.assign([50.0, 0.0, 0.0])  # all weight on the newest item
    out = enc(x).numpy()
    np.testing.assert_allclose(out[0], _rows(enc, ["c"])[0], rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(out[1], _rows(enc, ["d"])[0], rtol=1e-4, atol=1e-6)  # newest of a shorter history
    np.testing.assert_array_equal(out[2], np.zeros(4, np.float32))
    assert np.isfinite(out).all()


def test_shared_history_reads_the_candidate_item_table():
    item_ids = LookupEmbedding(VOCAB, 4, name="item_id_id")
    spec = history_feature(16, shared_embedding=True, pooling=HistoryPooling.MEAN)
    enc = build_encoder(spec, VOCAB, shared_item_ids=item_ids)
    out = enc(tf.constant(["a|c"])).numpy()
    rows = item_ids(tf.constant(["a", "c"])).numpy()
    np.testing.assert_allclose(out[0], rows.mean(axis=0), rtol=1e-5, atol=1e-7)  # width = the item table's, not 16
    assert enc.embed is item_ids.embed  # one table, trained by both towers
    with pytest.raises(ValueError, match="candidate tower's item_id"):
        build_encoder(spec, VOCAB)


def test_query_tower_with_history_and_its_defaults():
    spec = TowerSpec(features=[movielens_spec().query.features[0], history_feature(8)])
    assert movielens_spec().query.features[0].name == "user_id"
    users = pd.DataFrame({"user_id": ["u1", "u2"], "recent_item_ids": [["a", "b"], []]})
    inputs = tower_inputs(spec, users)
    assert inputs["recent_item_ids"].tolist() == ["a|b", ""]  # list cells joined like multi_categorical
    tower = build_tower(spec, {"user_id": inputs["user_id"], "recent_item_ids": VOCAB}, 8, "q")
    assert tower({k: tf.constant(v.astype(str)) for k, v in inputs.items()}).shape == (2, 8)
    assert input_defaults(spec, inputs)["recent_item_ids"] == ""
    # without the column (it comes from the interactions) the history is skipped, not an error
    assert set(tower_inputs(spec, users[["user_id"]])) == {"user_id"}


def test_history_spec_fields_round_trip_and_validate(tmp_path):
    base = movielens_spec(32)
    static = [f for f in base.query.features if f.kind is not FeatureKind.HISTORY]
    spec = base.model_copy(
        update={
            "query": base.query.model_copy(
                update={"features": [*static, history_feature(32, pooling="recency", history_length=20)]}
            )
        }
    )
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(spec.model_dump(mode="json")))
    loaded = ModelSpec.from_file(path)
    h = loaded.history_features[0]
    assert (h.kind, h.pooling, h.history_length, h.separator) == (FeatureKind.HISTORY, HistoryPooling.RECENCY, 20, "|")
    # the history comes from the interactions: kept when the user table lacks a column of that name
    assert "recent_item_ids" in spec_for_columns(loaded, {"user_id"}, {"item_id"}).query.names
    with pytest.raises(ValidationError, match="query tower"):
        ModelSpec.model_validate(
            {
                "query": {"features": [{"name": "user_id", "kind": "id"}]},
                "candidate": {"features": [{"name": "item_id", "kind": "id"}, {"name": "h", "kind": "history"}]},
            }
        )
    with pytest.raises(ValidationError, match="item_id of kind id"):
        ModelSpec.model_validate(
            {
                "query": {"features": [{"name": "h", "kind": "history", "shared_embedding": True}]},
                "candidate": {"features": [{"name": "item_id", "kind": "hashed"}]},
            }
        )
    with pytest.raises(ValidationError):
        history_feature(8, history_length=0)


@pytest.mark.parametrize("pooling,shared", [("mean", False), ("recency", False), ("attention", False), ("attention", True)])
def test_training_tower_fed_catalog_rows_equals_the_exported_tower_fed_strings(pooling, shared):
    from towers.spec import ids_only_spec
    from towers.tower import training_tower

    catalog = np.array(["c", "zz", "a", "d", "b"], dtype=object)  # row order unlike the vocabulary's; "zz" unknown
    cand = build_tower(ids_only_spec(8).candidate, {"item_id": VOCAB}, 8, "candidate")
    spec = TowerSpec(
        features=[
            movielens_spec().query.features[0],
            history_feature(8, history_length=3, pooling=pooling, shared_embedding=shared),
        ],
        hidden_units=[16],
        dropout=0.1,
    )
    tower = build_tower(
        spec,
        {"user_id": np.array(["u1", "u2"], dtype=object), "recent_item_ids": VOCAB},
        8,
        "q",
        shared_item_ids=cand.get_layer("item_id_id") if shared else None,
    )
    enc = tower.get_layer("recent_item_ids_history")
    if pooling != "mean":
        enc.position_logits.assign([1.0, -0.5, 0.3])
    rows_tower = training_tower(tower, spec, catalog)
    assert training_tower(tower, TowerSpec(features=[spec.features[0]]), catalog) is tower  # nothing to feed differently
    assert {v.ref() for v in rows_tower.trainable_variables} == {v.ref() for v in tower.trainable_variables}  # one set of weights
    histories = ["a|b|c|d", "b", "", "zz|c", "d|zz|a"]
    rows = np.zeros((len(histories), 3), np.int32)  # catalog rows + 1, newest first, 0 = nothing
    for j, h in enumerate(histories):
        newest = [t for t in h.split("|") if t][::-1][:3]
        rows[j, : len(newest)] = [list(catalog).index(t) + 1 for t in newest]
    users = tf.constant(["u1", "u2", "u1", "zzz", "u2"])
    want = tower({"user_id": users, "recent_item_ids": tf.constant(histories)}).numpy()
    got = rows_tower({"user_id": users, "recent_item_ids": tf.constant(rows)}).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    assert not np.allclose(want[0], want[2], atol=1e-4)  # the history moves the vector
