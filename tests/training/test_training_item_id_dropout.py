"""Placing items training never saw (issue 20, cold items added by ``recsys update-catalog``):
item-id dropout (``TrainConfig.item_id_dropout``, training/model.py: training candidates' ids
replaced by the out-of-vocabulary id) and the candidate tower's cold path (``TowerSpec.cold_path``:
an unknown id is embedded by a projection of its metadata, trained by a loss of its own).

Data: 4 taste clusters of 50 items, each item's ``category`` its cluster; 240 users, 90% of
each user's items in their own cluster."""

import json

import numpy as np
import pandas as pd
import pytest

from tests.taste_clusters import CLUSTERS, PER_CLUSTER, taste_clusters
from tests.training.small_specs import category_spec


def _oov_row(model) -> np.ndarray:
    return model.candidate_tower.get_layer("item_id_id").embed.embeddings.numpy()[0].copy()


@pytest.mark.parametrize("dropout", [0.0, 0.3])
def test_the_oov_row_trains_only_with_item_id_dropout(dropout: float) -> None:
    """In-batch negatives never show the tower an id outside its vocabulary: without dropout the
    OOV row keeps its initial value (lazy Adam moves only rows a batch touches); with it, it trains."""
    import tensorflow as tf

    from training.config import TrainConfig
    from training.prepared import prepare
    from training.trainer import build_model, train

    prep = prepare(taste_clusters(21, categories=True), category_spec())
    rows = np.arange(len(prep.user_rows))
    config = TrainConfig(epochs=2, batch_size=256, seed=9, item_id_dropout=dropout, validation_fraction=0)
    tf.keras.utils.set_random_seed(config.seed)
    initial = _oov_row(build_model(prep, category_spec(), config, rows))  # train() builds the same model from the same seed
    trained = train(prep, category_spec(), config, rows, np.zeros(0, np.int64), verbose=0).model
    moved = float(np.abs(_oov_row(trained) - initial).max())
    if dropout:
        assert moved > 1e-3
    else:
        assert moved == 0.0


def test_dropout_draws_are_seeded_per_step() -> None:
    """The same step and seed drop the same candidates; another step drops others."""
    import tensorflow as tf

    from training.config import TrainConfig
    from training.prepared import prepare
    from training.trainer import build_model

    prep = prepare(taste_clusters(21, categories=True), category_spec())
    model = build_model(prep, category_spec(), TrainConfig(item_id_dropout=0.5, seed=3), np.arange(len(prep.user_rows)))
    seen: list[tf.Tensor] = []
    real = model.candidate_tower

    def recording(inputs: dict[str, tf.Tensor], training: bool) -> tf.Tensor:
        seen.append(inputs["item_id"])
        return real(inputs, training=training)

    model.candidate_tower = recording
    ids = {"item_id": tf.constant(prep.item_ids[:64].astype(str)), "category": tf.constant(["c0"] * 64)}
    for step in (0, 0, 1):
        model.optimizer.iterations.assign(step)
        model._candidates(ids, training=True, salt=0)
    model._candidates(ids, training=False, salt=0)
    dropped = [np.asarray(t.numpy() == b"") for t in seen]
    assert np.array_equal(dropped[0], dropped[1]) and not np.array_equal(dropped[0], dropped[2])
    assert 10 < dropped[0].sum() < 54 and not dropped[3].any()  # about half in training; none in evaluation


def test_the_cold_loss_trains_the_cold_projection_and_nothing_else() -> None:
    """The cold path's loss moves its own projection only: every other variable's gradient is
    the main loss's alone, so known items and queries train exactly as without it."""
    import tensorflow as tf

    from tests.training.batches import training_batches
    from training.config import TrainConfig
    from training.model import ITEM_ROW, QUERY_PREFIX
    from training.prepared import prepare
    from training.trainer import build_model

    prep = prepare(taste_clusters(21, categories=True), category_spec(cold_path=True))
    rows = np.arange(len(prep.user_rows))
    config = TrainConfig(batch_size=128, seed=2)
    model = build_model(prep, category_spec(cold_path=True), config, rows)
    assert model.cold_path
    with training_batches(prep, rows, 128, seed=2) as ds:
        batch = next(iter(ds))
    with tf.GradientTape(persistent=True) as tape:
        query = model.query_tower({n: batch[QUERY_PREFIX + n] for n in model.query_names}, training=True)
        cold = model._cold_loss(query, batch, batch[ITEM_ROW])
        total = model.compute_loss(batch, training=True)
    variables = model.trainable_variables
    grads = tape.gradient(cold, variables)
    moved = {v.name for v, g in zip(variables, grads, strict=True) if g is not None and np.abs(tf.convert_to_tensor(g)).max() > 0}
    assert moved == {v.name for v in variables if "cold_projection" in v.name} and len(moved) == 2, moved
    assert float(cold) > 0 and np.isfinite(float(total))
    plain = build_model(prep, category_spec(cold_path=False), config, rows)
    assert not plain.cold_path


@pytest.fixture(scope="module")
def version(tmp_path_factory):
    """A published version trained with the cold path and item-id dropout: its exported candidate
    tower (what ``recsys update-catalog`` embeds new items with) and its known users' query vectors."""
    import tensorflow as tf

    from training.config import TrainConfig
    from training.pipeline import run_pipeline

    root = tmp_path_factory.mktemp("dropout_version")
    config = TrainConfig(epochs=6, batch_size=256, seed=4, item_id_dropout=0.3)
    result = run_pipeline(taste_clusters(21, categories=True), root, config, spec=category_spec(cold_path=True), verbose=0)
    vdir = root / result.version
    manifest = json.loads((vdir / "manifest.json").read_text())
    assert manifest["training"]["item_id_dropout"] == 0.3  # recorded in the version's config
    tower = tf.saved_model.load(str(vdir / "candidate_model")).signatures["serving_default"]

    def embed(ids: list[str], categories: list[str]) -> np.ndarray:
        return tower(item_id=tf.constant(ids), category=tf.constant(categories))["embedding"].numpy()

    users = pd.read_parquet(vdir / "users.parquet")["user_id"].tolist()
    queries = result.query_embeddings[np.arange(len(result.query_embeddings))]  # every user's
    return embed, np.load(vdir / "item_embeddings.npy"), queries, users


def test_an_unseen_id_is_placed_by_its_metadata(version) -> None:
    embed, items, _, _ = version
    new = embed([f"new-{c}" for c in range(CLUSTERS)], [f"c{c}" for c in range(CLUSTERS)])
    again = embed([f"other-{c}" for c in range(CLUSTERS)], [f"c{c}" for c in range(CLUSTERS)])
    np.testing.assert_allclose(new, again, atol=1e-6)  # unseen ids all take the OOV row: the metadata decides
    scale = float(np.linalg.norm(new, axis=1).mean())
    gaps = [np.linalg.norm(new[a] - new[b]) for a in range(CLUSTERS) for b in range(a + 1, CLUSTERS)]
    assert min(gaps) > 0.2 * scale  # different genres, different vectors
    unit = items / np.linalg.norm(items, axis=1, keepdims=True)
    cos = (new / np.linalg.norm(new, axis=1, keepdims=True)) @ unit.T  # [cluster, item]
    cluster_of = np.arange(len(items)) // PER_CLUSTER
    rng = np.random.default_rng(0)
    nearer = []
    for c in range(CLUSTERS):  # a known item of its genre against a random item of another genre
        same = np.flatnonzero(cluster_of == c)
        other = rng.choice(np.flatnonzero(cluster_of != c), len(same))
        nearer.extend(cos[c, same] > cos[c, other])
    assert np.mean(nearer) >= 0.9, np.mean(nearer)


def test_users_find_the_unseen_item_of_their_taste(version) -> None:
    embed, items, queries, users = version
    new = embed([f"new-{c}" for c in range(CLUSTERS)], [f"c{c}" for c in range(CLUSTERS)])
    home = np.array([int(u[1:]) % CLUSTERS for u in users])
    best = np.argmax(queries @ new.T, axis=1)
    assert np.mean(best == home) >= 0.9
    # and it ranks above every known item of the other tastes
    scores = queries @ items.T
    own = (queries * new[home]).sum(axis=1)
    other = np.arange(len(items))[None, :] // PER_CLUSTER != home[:, None]
    assert np.mean(own > np.where(other, scores, -np.inf).max(axis=1)) >= 0.9
