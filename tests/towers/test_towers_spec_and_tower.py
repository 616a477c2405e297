"""Feature spec validation and loading; a whole tower from a spec."""

import numpy as np
import pandas as pd
import pytest
import tensorflow as tf
import yaml
from pydantic import ValidationError

from towers.spec import ModelSpec, TowerSpec, movielens_spec, spec_for_columns, storefront_spec
from towers.tower import build_tower, input_defaults, tower_inputs


def test_spec_round_trips_through_yaml(tmp_path):
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(movielens_spec(32).model_dump(mode="json")))
    loaded = ModelSpec.from_file(path)
    assert loaded == movielens_spec(32)
    assert loaded.candidate.names == ["item_id", "genres", "title", "year"]


def test_spec_rejects_duplicates_unknown_kinds_and_missing_item_id():
    with pytest.raises(ValidationError):
        TowerSpec.model_validate({"features": [{"name": "a", "kind": "id"}, {"name": "a", "kind": "id"}]})
    with pytest.raises(ValidationError):
        TowerSpec.model_validate({"features": [{"name": "a", "kind": "embedding"}]})
    with pytest.raises(ValidationError):
        ModelSpec.model_validate(
            {"query": {"features": [{"name": "user_id", "kind": "id"}]}, "candidate": {"features": [{"name": "x", "kind": "id"}]}}
        )


def test_spec_for_columns_drops_features_the_data_lacks():
    spec = spec_for_columns(movielens_spec(), {"user_id"}, {"item_id", "title", "genres", "year"})
    assert spec.query.names == ["user_id", "recent_item_ids"]  # the history comes from the interactions
    assert spec.candidate.names == ["item_id", "genres", "title", "year"]


def test_storefront_tower_maps_raw_rows_to_embeddings():
    items = pd.DataFrame(
        {
            "item_id": ["i1", "i2", "i3"],
            "category": ["books", "toys", "books"],
            "tags": [["new", "sale"], [], ["sale"]],
            "title": ["red book", "blue toy car", "green book"],
            "brand": ["acme", "zed", "acme"],
            "price": [9.5, np.nan, 20.0],
        }
    )
    spec = storefront_spec(16).candidate
    inputs = tower_inputs(spec, items)
    tower = build_tower(spec, inputs, 16, "candidate")
    out = tower({k: tf.constant(v.astype(str) if v.dtype == object else v) for k, v in inputs.items()}).numpy()
    assert out.shape == (3, 16) and np.isfinite(out).all()
    assert set(tower.input_names) == set(spec.names)
    defaults = input_defaults(spec, inputs)
    assert defaults["price"] == pytest.approx((9.5 + 20.0) / 2) and defaults["item_id"] == ""


def test_single_id_feature_of_output_width_is_plain_matrix_factorisation():
    spec = TowerSpec.model_validate({"features": [{"name": "user_id", "kind": "id", "embedding_dim": 8}]})
    tower = build_tower(spec, {"user_id": np.array(["a", "b"], dtype=object)}, 8, "q")
    assert not any(isinstance(layer, tf.keras.layers.Dense) for layer in tower.layers)
    spec2 = TowerSpec.model_validate({"features": [{"name": "user_id", "kind": "id", "embedding_dim": 8}], "hidden_units": [4]})
    tower2 = build_tower(spec2, {"user_id": np.array(["a", "b"], dtype=object)}, 8, "q2")
    assert sum(isinstance(layer, tf.keras.layers.Dense) for layer in tower2.layers) == 2


def test_tower_inputs_names_missing_columns():
    with pytest.raises(KeyError, match="genres"):
        tower_inputs(movielens_spec().candidate, pd.DataFrame({"item_id": ["a"], "title": ["t"], "year": [1.0]}))
