"""The history feature in training: windows, per-example histories without the
future (both splits), a leakage check on data whose past says nothing about
the present, and training/serving agreement through the published version."""

import json

import numpy as np
import pandas as pd
import pytest

from tests.training.batches import training_batches
from towers.spec import FeatureKind, ModelSpec, TowerSpec, history_feature, ids_only_spec, storefront_spec
from training.config import SplitKind, TrainConfig
from training.data.synthetic import generate_storefront
from training.data.tables import CanonicalData
from training.evaluate import evaluate_split, pair_query_inputs
from training.history import example_windows, joined, user_windows, windows_before
from training.model import ITEM_ROW, QUERY_PREFIX, embed
from training.pipeline import run_pipeline, split_with_validation
from training.prepared import make_dataset, prepare, sampling_probabilities
from training.trainer import train


def _data(users, items, times, source="test") -> CanonicalData:
    inter = pd.DataFrame({"user_id": users, "item_id": items, "timestamp": np.asarray(times, dtype=np.int64)})
    return CanonicalData(
        interactions=inter,
        items=pd.DataFrame({"item_id": sorted(set(items))}),
        users=pd.DataFrame({"user_id": sorted(set(users))}),
        source=source,
    )


def _with_history(spec: ModelSpec, **kw) -> ModelSpec:
    static = [f for f in spec.query.features if f.kind is not FeatureKind.HISTORY]
    feats = [*static, history_feature(spec.embedding_dim, **kw)]
    return spec.model_copy(update={"query": spec.query.model_copy(update={"features": feats})})


def test_windows_by_hand_ties_broken_by_table_position():
    users = np.array([0, 1, 0, 0, 1, 2])
    times = np.array([5, 1, 3, 3, 2, 0])  # rows 2 and 3: same user, same second
    w = example_windows(users, times, np.arange(6), length=2)
    got = [w.order[w.start[j] : w.end[j]].tolist() for j in range(6)]
    assert got == [[2, 3], [], [], [2], [1], []]  # row 3 sees row 2 (earlier in the table), never the reverse
    w = example_windows(users, times, np.array([3, 0, 2]), length=5)  # only the rows given are known
    assert [w.order[w.start[j] : w.end[j]].tolist() for j in range(3)] == [[2], [2, 3], []]
    u = user_windows(users, times, np.array([0, 2, 3, 4]), num_users=4, length=2)
    ids = np.array(["a", "b", "c", "d", "e", "f"], dtype=object)
    assert joined(ids, np.arange(6), u, "|").tolist() == ["d|a", "e", "", ""]  # last 2, oldest first


def test_windows_before_cut_test_pairs_from_the_known_rows_only():
    users = np.array([0, 0, 0, 0, 1, 0])
    times = np.array([1, 2, 3, 4, 1, 2])  # row 5: same second as row 1, later in the table
    known = np.array([0, 2, 3, 4])
    w = windows_before(users, times, known, np.array([3, 1, 5, 4, 0]), length=2)
    got = [w.order[w.start[j] : w.end[j]].tolist() for j in range(5)]
    # a pair sees known rows strictly before it: never itself, never a later one, never another user's
    assert got == [[0, 2], [0], [0], [], []]
    same = example_windows(users, times, known, length=2)
    again = windows_before(users, times, known, known, length=2)
    assert [same.order[a:b].tolist() for a, b in zip(same.start, same.end, strict=True)] == [
        again.order[a:b].tolist() for a, b in zip(again.start, again.end, strict=True)
    ]


def test_p1_pairs_are_queried_with_the_training_items_before_them():
    # u1: a(10) b(20) [c(30) test] d(40) e(50); u2: a(5) [b(6) test]
    data = _data(["u1"] * 5 + ["u2"] * 2, ["a", "b", "c", "d", "e", "a", "b"], [10, 20, 30, 40, 50, 5, 6])
    prep = prepare(data, _with_history(ids_only_spec(4), history_length=3))
    train, test = np.array([0, 1, 3, 4, 5]), np.array([2, 6])
    pairs = pair_query_inputs(prep, train, test)
    assert pairs["recent_item_ids"].tolist() == ["a|b", "a"]  # not "b|d|e", which came after c
    assert pairs["user_id"].tolist() == ["u1", "u2"]
    assert prep.query_inputs(train)["recent_item_ids"].tolist() == ["b|d|e", "a"]  # the service's (latest) query


def _chain_data(n_users: int, per_user: int, n_keys: int, seed: int) -> CanonicalData:
    """Per user, a walk along one fixed cycle of items: each item is followed by
    g(item). Only the item just before an interaction tells which it is."""
    rng = np.random.default_rng(seed)
    g = rng.permutation(n_keys)
    users, items, times = [], [], []
    for u in range(n_users):
        key = int(rng.integers(n_keys))
        for t in range(per_user):
            users.append(f"u{u:04d}")
            items.append(f"i{key:03d}")
            times.append(t)
            key = int(g[key])
    return _data(users, items, times)


def test_p1_scores_a_sequence_model_on_what_came_before_each_pair():
    data = _chain_data(300, 8, 40, seed=1)
    spec = ModelSpec(
        embedding_dim=16,
        query=TowerSpec(features=[history_feature(16, history_length=2)]),
        candidate=TowerSpec(features=[ids_only_spec(16).candidate.features[0]]),
    )
    prep = prepare(data, spec)
    config = TrainConfig(split=SplitKind.RANDOM, epochs=8, batch_size=128, learning_rate=0.02, embedding_l2=0.0, seed=3)
    split, _, _ = split_with_validation(prep, config)
    model = train(prep, spec, config, split.train, np.zeros(0, np.int64), verbose=0).model
    users = embed(model.query_tower, prep.query_inputs(split.train))
    items = embed(model.candidate_tower, prep.item_inputs)
    per_pair = evaluate_split(prep, split, users, items, config, query_tower=model.query_tower)
    latest = evaluate_split(prep, split, users, items, config)
    assert per_pair["top_k_accuracy_queries"].startswith("per pair")
    # the item before a test pair is a training item 80% of the time, and then names it
    assert per_pair["model"]["top_10_accuracy"] > 0.6, per_pair["model"]
    # the user's latest items came after most test pairs: they name something else
    assert latest["model"]["top_10_accuracy"] < per_pair["model"]["top_10_accuracy"] - 0.3, latest["model"]
    assert per_pair["model"]["recall_at_10"] == latest["model"]["recall_at_10"]  # P2 metrics: per user either way


@pytest.mark.parametrize("split", [SplitKind.TEMPORAL, SplitKind.RANDOM])
def test_no_training_example_sees_its_target_or_anything_after_it(split):
    rng = np.random.default_rng(0)
    n_users, per_user, n_items, length = 30, 25, 200, 6
    users = np.repeat([f"u{u:02d}" for u in range(n_users)], per_user)
    items = np.concatenate([rng.choice(n_items, per_user, replace=False) for _ in range(n_users)])  # no repeats per user
    items = np.array([f"i{i:03d}" for i in items], dtype=object)
    times = rng.integers(0, 40, size=len(users))  # many ties in time
    perm = rng.permutation(len(users))  # table order unrelated to time
    data = _data(users[perm], items[perm], times[perm])
    spec = _with_history(ids_only_spec(8), history_length=length)
    prep = prepare(data, spec)
    _, fit_rows, _ = split_with_validation(prep, TrainConfig(split=split))
    t = prep.times
    row_of = {(prep.user_rows[r], prep.item_rows[r]): r for r in fit_rows}
    seen = 0
    with training_batches(prep, fit_rows, 16, seed=1) as ds:  # the trainer's input path
        batches = list(ds)
    for batch in batches:
        for uid, item_row, hist in zip(
            batch[QUERY_PREFIX + "user_id"].numpy(),
            batch[ITEM_ROW].numpy(),
            batch[QUERY_PREFIX + "recent_item_ids"].numpy(),
            strict=True,
        ):
            u = int(np.flatnonzero(prep.user_ids == uid.decode())[0])
            r = row_of[(u, int(item_row))]
            before = [q for q in fit_rows if prep.user_rows[q] == u and (t[q], q) < (t[r], r)]
            before.sort(key=lambda q: (t[q], q))
            expected = [prep.item_ids[prep.item_rows[q]] for q in before[-length:]]
            history = [prep.item_ids[r - 1] for r in hist[::-1] if r > 0]  # catalog rows + 1, newest first
            assert (hist[len(history) :] == 0).all()  # padding only after the oldest item
            assert history == expected
            assert prep.item_ids[item_row] not in history
            hist_rows = [row_of[(u, int(np.flatnonzero(prep.item_ids == x)[0]))] for x in history]
            assert all((t[q], q) < (t[r], r) for q in hist_rows)  # nothing at or after the target
            seen += 1
    assert seen == len(fit_rows)


def test_query_inputs_hold_each_users_last_known_items_oldest_first():
    data = _data(["u1", "u1", "u1", "u2", "u1"], ["a", "b", "c", "a", "d"], [30, 10, 20, 5, 40])
    prep = prepare(data, _with_history(ids_only_spec(4), history_length=2))
    known = np.array([0, 1, 2, 3])  # row 4 ("d", the latest) is not known
    assert prep.query_inputs(known)["recent_item_ids"].tolist() == ["c|a", "a"]
    assert prep.query_inputs(np.arange(len(prep.user_rows)))["recent_item_ids"].tolist() == ["a|d", "a"]  # every row known
    with pytest.raises(ValueError, match="separator"):
        prepare(_data(["u1"], ["x|y"], [1]), _with_history(ids_only_spec(4)))


def _pairs_data(n_users: int, pairs: int, n_keys: int, seed: int, reverse_time: bool) -> CanonicalData:
    """Per user: x1, y1, x2, y2, ... in time. Each y is drawn at random; each x
    is g(the y after it), g a fixed permutation. Nothing before an x tells
    which x it is; the interaction after it does."""
    rng = np.random.default_rng(seed)
    g = rng.permutation(n_keys)
    users, items, times = [], [], []
    for u in range(n_users):
        ys = rng.integers(0, n_keys, size=pairs)
        seq = [name for y in ys for name in (f"x{g[y]:03d}", f"y{y:03d}")]
        users += [f"u{u:04d}"] * len(seq)
        items += seq
        times += list(range(len(seq)))
    stamps = np.asarray(times)
    return _data(users, items, -stamps if reverse_time else stamps)


def _x_target_accuracy(data: CanonicalData, k: int = 5) -> float:
    """Train a history-only query tower on the first users; top-k accuracy of
    the x interactions of held-out users, each queried with its own
    (per-example) history exactly as training builds it."""
    spec = ModelSpec(
        embedding_dim=16,
        query=TowerSpec(features=[history_feature(16, history_length=3)]),
        candidate=TowerSpec(features=[ids_only_spec(16).candidate.features[0]]),
    )
    prep = prepare(data, spec)
    users = prep.user_rows
    held_out = users >= int(prep.num_users * 0.8)
    fit_rows, test_rows = np.flatnonzero(~held_out), np.flatnonzero(held_out)
    config = TrainConfig(epochs=8, batch_size=128, learning_rate=0.02, embedding_l2=0.0, seed=3)
    model = train(prep, spec, config, fit_rows, np.zeros(0, np.int64), verbose=0).model
    item_emb = embed(model.candidate_tower, prep.item_inputs)
    ds = make_dataset(prep, test_rows, sampling_probabilities(prep.item_counts(fit_rows)), 512)
    hits = total = 0
    for batch in ds:
        q = model.training_query_tower({"recent_item_ids": batch[QUERY_PREFIX + "recent_item_ids"]}).numpy()
        target = batch[ITEM_ROW].numpy()
        is_x = np.char.startswith(prep.item_ids[target].astype(str), "x")
        top = np.argsort(-(q @ item_emb.T), axis=1)[:, :k]
        hits += int(((top == target[:, None]).any(axis=1) & is_x).sum())
        total += int(is_x.sum())
    return hits / total


def test_history_never_sees_the_future_on_data_only_the_future_predicts():
    keys, k = 40, 5  # chance for an x: about k / keys = 0.125
    clean = _x_target_accuracy(_pairs_data(250, 8, keys, seed=0, reverse_time=False), k)
    # the same data with time reversed: "before" is now the original future, so a
    # history that saw the future is exactly what this model gets
    leaky = _x_target_accuracy(_pairs_data(250, 8, keys, seed=0, reverse_time=True), k)
    assert leaky > 0.6, f"the check has no power: a future-seeing history reached only {leaky:.3f}"
    assert clean < 0.25, f"history leaks the future: top-{k} accuracy {clean:.3f} vs chance {k / keys:.3f}"


@pytest.fixture(scope="module")
def published(tmp_path_factory):
    root = tmp_path_factory.mktemp("models")
    data = generate_storefront(items=200, users=120, interactions=4000, seed=2)
    spec = _with_history(storefront_spec(32), history_length=10, shared_embedding=True, pooling="recency")
    result = run_pipeline(data, root, TrainConfig(epochs=2, batch_size=256), spec=spec, verbose=0)
    return root, result, data


def test_published_users_hold_their_last_training_items_in_time_order(published):
    root, result, data = published
    users = pd.read_parquet(root / result.version / "users.parquet")
    prep = prepare(data, result.spec)
    split, _, _ = split_with_validation(prep, TrainConfig())
    inter = data.interactions
    train = inter.iloc[split.train].assign(pos=split.train).sort_values(["timestamp", "pos"])
    for uid, hist in zip(users["user_id"], users["recent_item_ids"], strict=True):
        expected = train.loc[train["user_id"] == uid, "item_id"].tolist()[-10:]
        assert hist == "|".join(expected)
    assert users["recent_item_ids"].map(len).gt(0).any()
    manifest = json.loads((root / result.version / "manifest.json").read_text())
    history_input = next(q for q in manifest["query_inputs"] if q["name"] == "recent_item_ids")
    assert history_input == {"name": "recent_item_ids", "dtype": "string", "kind": "history", "default": ""}
    assert manifest["training"]["negatives"] == "in_batch"  # the softmax the version was trained with


def test_service_query_vectors_equal_the_ones_evaluation_scored(published):
    from serving.version.loader import load_version

    root, result, _ = published
    loaded = load_version(root, result.version)
    assert loaded.user_vectors is not None
    users = pd.read_parquet(root / result.version / "users.parquet")
    assert users["user_id"].tolist() == list(prepare(published[2], result.spec).user_ids)  # same row order
    every_user = np.arange(len(result.query_embeddings))
    np.testing.assert_allclose(loaded.user_vectors, result.query_embeddings[every_user], atol=1e-5, rtol=0)
    # and the served SavedModel reads the history: dropping it changes the vector
    columns = {qi.name: loaded.user_features[qi.name][:5] for qi in loaded.query_inputs}
    columns["recent_item_ids"] = np.array([""] * 5, dtype=object)
    assert not np.allclose(loaded.embed(columns), loaded.user_vectors[:5], atol=1e-3)
