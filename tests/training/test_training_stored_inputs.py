"""training.stored_inputs: users.parquet's query inputs made some users at a time are those
made for every user at once; the tables written a part at a time hold the same rows."""

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from towers.spec import storefront_spec
from training.config import TrainConfig
from training.data.synthetic import generate_storefront
from training.export import TableParts, write_parts
from training.index_queries import index_session_queries, sample_queries
from training.model import embed
from training.prepared import prepare
from training.stored_inputs import QueryVectors, StoredInputs
from training.stream.prepare import FIT
from training.stream.reduce import latest_items
from training.stream.run import rows_prepared
from training.trainer import build_model


@pytest.fixture(scope="module")
def stored(tmp_path_factory):
    data = generate_storefront(items=150, users=120, interactions=2500, seed=4)
    data.users = pd.concat([data.users, data.users.iloc[:1].assign(user_id="u-none")], ignore_index=True)  # no interactions
    spec = storefront_spec(8)
    prep = prepare(data, spec)
    prepared = rows_prepared(prep, {FIT: np.arange(2500)}, tmp_path_factory.mktemp("s") / "p", seed=0)
    length = max(f.history_length for f in prep.history)
    return spec, prep, StoredInputs(prep, latest_items(prepared, (FIT,), length))


def test_stored_inputs_of_some_users_are_those_of_every_user(stored) -> None:
    _, prep, inputs = stored
    whole = prep.latest_query_inputs(inputs.latest)
    some = np.array([7, 0, 120, 7])
    for name, column in inputs.take(some).items():
        assert column.tolist() == whole[name][some].tolist(), name
    assert inputs.rows(100, 500)["user_id"].tolist() == whole["user_id"][100:].tolist()
    assert inputs.take(np.array([120]))["recent_item_ids"].tolist() == [""]  # the user without interactions
    having = [u for u, h in enumerate(whole["recent_item_ids"].tolist()) if h]
    assert inputs.with_history().tolist() == having and 120 not in having


def test_users_table_written_in_parts_is_the_table_of_every_user(stored, tmp_path) -> None:
    _, prep, inputs = stored
    write_parts(TableParts(len(inputs), lambda: inputs.tables(rows=50)), tmp_path / "users.parquet")
    assert pq.ParquetFile(tmp_path / "users.parquet").metadata.num_row_groups == 3
    written = pd.read_parquet(tmp_path / "users.parquet")
    expected = pd.DataFrame({"user_id": prep.user_ids, **prep.latest_query_inputs(inputs.latest)})
    pd.testing.assert_frame_equal(written, expected, check_dtype=False)


def test_a_table_in_parts_must_hold_the_rows_it_announces_and_is_written_empty_from_its_schema(tmp_path) -> None:
    schema = pa.schema([("user_id", pa.string())])
    part = pa.table({"user_id": ["a", "b"]})
    with pytest.raises(ValueError, match="2 rows written, 3 announced"):
        write_parts(TableParts(3, lambda: iter([part])), tmp_path / "a.parquet")
    write_parts(TableParts(0, lambda: iter([]), schema=schema), tmp_path / "b.parquet")
    assert pq.read_table(tmp_path / "b.parquet").schema.equals(schema) and pq.read_table(tmp_path / "b.parquet").num_rows == 0


def test_session_queries_cut_from_stored_inputs_made_per_user_are_those_of_the_whole_column(stored) -> None:
    spec, prep, inputs = stored
    whole = prep.latest_query_inputs(inputs.latest)
    defaults: dict[str, str | float] = {"user_id": "", "age": 30.0, "country": "", "segment": ""}
    seen = []

    def embed(columns):
        seen.append(columns["recent_item_ids"].tolist())
        return np.zeros((len(columns["recent_item_ids"]), 8), np.float32)

    a = index_session_queries(embed, spec, whole, defaults, 0.5, 60, seed=3)
    b = index_session_queries(embed, spec, inputs, defaults, 0.5, 60, seed=3)
    assert a is not None and b is not None and len(a.histories) == 30
    assert a.histories.tolist() == b.histories.tolist() and seen[0] == seen[1]


def test_query_vectors_made_for_the_rows_read_are_those_of_every_user_at_once(stored) -> None:
    spec, prep, inputs = stored
    model = build_model(prep, spec, TrainConfig(seed=0), np.arange(2500))
    vectors, every = QueryVectors(model.query_tower, inputs), embed(model.query_tower, inputs)
    assert len(vectors) == len(every) == prep.num_users and vectors.dim == every.shape[1] == 8
    rows = np.array([120, 3, 3, 64])
    np.testing.assert_allclose(vectors[rows], every[rows], atol=1e-6, rtol=0)
    np.testing.assert_allclose(vectors[5], every[5], atol=1e-6, rtol=0)
    # the index's tuning sample draws the same users, and so the same vectors, from either
    items = np.random.default_rng(0).normal(size=(150, 8)).astype(np.float32)
    a, b = sample_queries(every, items, size=40, seed=2), sample_queries(vectors, items, size=40, seed=2)
    assert a.user_rows.tolist() == b.user_rows.tolist() and a.describe() == b.describe()
    np.testing.assert_allclose(np.concatenate([a.tuning, a.checking]), np.concatenate([b.tuning, b.checking]), atol=1e-6)
