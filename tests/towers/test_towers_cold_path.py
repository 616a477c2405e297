"""The candidate tower's cold path (towers/tower.py ``with_cold_path``, ``TowerSpec.cold_path``): an
item whose id is out of vocabulary is embedded by a projection of its metadata of its own; known ids
keep the usual path."""

import numpy as np
import pandas as pd
import pytest
import tensorflow as tf
from pydantic import ValidationError

from towers.spec import ModelSpec, TowerSpec, ids_only_spec, movielens_spec, spec_for_columns
from towers.tower import COLD_PROJECTION, build_tower, has_cold_path, tower_inputs


def _items() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "item_id": ["a", "b", "c", "d"],
            "genres": [["Drama"], ["Comedy", "Drama"], ["Action"], []],
            "title": ["One (1995)", "Two (1996)", "Three (1997)", "Four (1998)"],
            "year": [1995.0, 1996.0, 1997.0, np.nan],
        }
    )


def _tower(cold_path: bool) -> tf.keras.Model:
    spec = movielens_spec(8).candidate.model_copy(update={"cold_path": cold_path})
    return build_tower(spec, tower_inputs(spec, _items()), 8, "candidate_tower")


def _embed(tower: tf.keras.Model, frame: pd.DataFrame) -> np.ndarray:
    spec = movielens_spec(8).candidate
    inputs = tower_inputs(spec, frame)
    return tower({k: tf.constant(v.astype(str) if v.dtype == object else v) for k, v in inputs.items()}).numpy()


def test_unknown_ids_take_the_cold_projection_and_known_ids_do_not() -> None:
    tower = _tower(cold_path=True)
    assert has_cold_path(tower) and not has_cold_path(_tower(cold_path=False))
    rows = pd.concat([_items(), _items().assign(item_id=["new1", "new2", "new3", "new4"])], ignore_index=True)
    before = _embed(tower, rows)
    cold = tower.get_layer(f"candidate_tower_{COLD_PROJECTION}")
    kernel, bias = cold.get_weights()
    cold.set_weights([np.zeros_like(kernel), np.full_like(bias, 7.0)])
    after = _embed(tower, rows)
    np.testing.assert_array_equal(after[:4], before[:4])  # known ids: the usual path, untouched
    np.testing.assert_array_equal(after[4:], np.full((4, 8), 7.0, np.float32))  # unknown ids: the cold projection alone
    assert not np.allclose(before[4:], after[4:])


def test_unknown_ids_are_placed_by_their_metadata_alone() -> None:
    tower = _tower(cold_path=True)
    one = _embed(tower, _items().assign(item_id=["x1", "x2", "x3", "x4"]))
    two = _embed(tower, _items().assign(item_id=["y1", "y2", "y3", "y4"]))
    np.testing.assert_allclose(one, two, atol=1e-6)  # which unknown id it is does not matter
    assert np.linalg.norm(one[0] - one[2]) > 1e-3  # other metadata, another vector


def test_cold_path_belongs_to_a_candidate_tower_with_metadata() -> None:
    query = {"features": [{"name": "user_id", "kind": "id"}]}
    with pytest.raises(ValidationError, match="candidate tower"):
        ModelSpec.model_validate(
            {"query": {**query, "cold_path": True}, "candidate": {"features": [{"name": "item_id", "kind": "id"}]}}
        )
    with pytest.raises(ValidationError, match="metadata feature"):
        ModelSpec.model_validate(
            {"query": query, "candidate": {"features": [{"name": "item_id", "kind": "id"}], "cold_path": True}}
        )
    hashed = [{"name": "item_id", "kind": "hashed"}, {"name": "genres", "kind": "multi_categorical"}]
    with pytest.raises(ValidationError, match="of kind id"):
        ModelSpec.model_validate({"query": query, "candidate": {"features": hashed, "cold_path": True}})
    assert not movielens_spec().candidate.cold_path and not ids_only_spec().candidate.cold_path  # opt-in (BENCHMARKS.md)
    base = movielens_spec()
    base = base.model_copy(update={"candidate": base.candidate.model_copy(update={"cold_path": True})})
    assert not spec_for_columns(base, {"user_id"}, {"item_id"}).candidate.cold_path  # no metadata left
    assert spec_for_columns(base, {"user_id"}, {"item_id", "genres"}).candidate.cold_path
    assert TowerSpec.model_validate({"features": [{"name": "item_id", "kind": "id"}]}).cold_path is False
