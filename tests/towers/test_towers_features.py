"""Each feature kind: output shape, OOV behaviour, training-split-only fitting."""

import numpy as np
import pandas as pd
import pytest
import tensorflow as tf

from towers.features import build_encoder, raw_column
from towers.spec import FeatureKind, FeatureSpec


def _run(layer, values):
    return layer(tf.constant(values)).numpy()


def spec(kind, **kw):
    return FeatureSpec(name="f", kind=FeatureKind(kind), embedding_dim=kw.pop("embedding_dim", 4), **kw)


def test_id_lookup_sends_unseen_values_to_one_oov_row():
    layer = build_encoder(spec("id"), np.array(["a", "b", "b"], dtype=object))
    out = _run(layer, np.array(["a", "b", "zzz", "yyy"]))
    assert out.shape == (4, 4)
    assert not np.allclose(out[0], out[1])
    np.testing.assert_allclose(out[2], out[3])  # both unknown -> the same OOV bucket
    assert not np.allclose(out[2], out[0])


def test_vocabulary_comes_from_training_values_only():
    layer = build_encoder(spec("categorical"), np.array(["x", "y"], dtype=object))
    assert layer.lookup.get_vocabulary()[1:] == ["x", "y"]  # index 0 is the OOV token


def test_max_tokens_keeps_the_most_frequent():
    values = np.array(["rare"] + ["common"] * 5 + ["mid"] * 3, dtype=object)
    layer = build_encoder(spec("categorical", max_tokens=3), values)
    assert layer.lookup.get_vocabulary()[1:] == ["common", "mid"]


def test_hashed_is_deterministic_and_needs_no_vocabulary():
    layer = build_encoder(spec("hashed", num_bins=64), np.array([], dtype=object))
    out = _run(layer, np.array(["u1", "u1", "u2"]))
    np.testing.assert_allclose(out[0], out[1])
    assert out.shape == (3, 4)


def test_multi_categorical_pools_tokens_and_handles_empty_lists():
    layer = build_encoder(spec("multi_categorical"), np.array(["a|b", "b", "c"], dtype=object))
    out = _run(layer, np.array(["a|b", "a", "b", ""]))
    np.testing.assert_allclose(out[0], (out[1] + out[2]) / 2, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(out[3], 0.0)  # no tokens -> zero vector, not NaN


def test_text_is_vectorised_and_mean_pooled():
    layer = build_encoder(spec("text", sequence_length=4), np.array(["red shoe", "blue shoe", "red hat"], dtype=object))
    out = _run(layer, np.array(["Red shoe!", "red shoe", "unknownword"]))
    np.testing.assert_allclose(out[0], out[1], rtol=1e-6)  # lower-cased, punctuation stripped
    assert np.isfinite(out).all()


def test_numeric_standardises_and_imputes_missing():
    layer = build_encoder(spec("numeric"), np.array([1.0, 2.0, 3.0, np.nan], dtype=np.float32))
    out = _run(layer, np.array([2.0, np.nan, 3.0], dtype=np.float32))
    assert out.shape == (3, 1)
    assert out[0, 0] == pytest.approx(0.0, abs=1e-6)  # the mean
    assert out[1, 0] == 0.0  # NaN -> 0 after standardising
    assert out[2, 0] == pytest.approx(1 / np.std([1.0, 2.0, 3.0]), rel=1e-5)


def test_numeric_buckets_add_an_embedding_with_a_bucket_for_missing():
    layer = build_encoder(spec("numeric", buckets=4), np.arange(100, dtype=np.float32))
    out = _run(layer, np.array([1.0, 2.0, 99.0, np.nan], dtype=np.float32))
    assert out.shape == (4, 1 + 4)
    np.testing.assert_allclose(out[0, 1:], out[1, 1:])  # same quantile bucket
    assert not np.allclose(out[0, 1:], out[2, 1:])
    assert not np.allclose(out[3, 1:], out[0, 1:])


def test_timestamp_gets_buckets_by_default():
    s = spec("timestamp")
    assert s.buckets == 20
    layer = build_encoder(s, np.linspace(1e9, 1.1e9, 500).astype(np.float32))
    assert _run(layer, np.array([1.05e9], dtype=np.float32)).shape == (1, 1 + 4)


def test_raw_column_joins_lists_and_coerces_numbers():
    multi = FeatureSpec(name="g", kind=FeatureKind.MULTI_CATEGORICAL)
    assert list(raw_column(multi, pd.Series([["a", "b"], [], None]))) == ["a|b", "", ""]
    num = FeatureSpec(name="n", kind=FeatureKind.NUMERIC)
    out = raw_column(num, pd.Series(["1.5", None, "x"]))
    assert out.dtype == np.float32 and out[0] == 1.5 and np.isnan(out[1]) and np.isnan(out[2])
