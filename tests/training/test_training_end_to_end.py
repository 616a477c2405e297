"""Tiny end to end: generate -> train -> publish -> load in a fresh process that
never imports this project -> ScaNN search returns the model's real top items."""

import json
import subprocess
import sys
import textwrap

import numpy as np
import pandas as pd
import pytest
import tensorflow as tf

from artifact.latest import read_latest
from artifact.manifest import parse_manifest
from training.config import TrainConfig
from training.data.sources import load_source
from training.data.synthetic import generate_storefront
from training.evaluate import split_sample
from training.pipeline import run_pipeline
from training.trainer import train

FRESH_PROCESS = textwrap.dedent(
    """
    import json, os, sys
    import numpy as np, pandas as pd
    import scann  # noqa: F401  (registers ScaNN ops; harmless otherwise)
    import tensorflow as tf
    assert "towers" not in sys.modules and "training" not in sys.modules and "recsys" not in sys.modules
    version_dir = sys.argv[1]
    manifest = json.load(open(os.path.join(version_dir, "manifest.json")))
    users = pd.read_parquet(os.path.join(version_dir, "users.parquet"))
    query = tf.saved_model.load(os.path.join(version_dir, "query_model")).signatures["serving_default"]
    row = users.iloc[:5]
    inputs = {}
    for spec in manifest["query_inputs"]:
        dtype = tf.string if spec["dtype"] == "string" else tf.float32
        inputs[spec["name"]] = tf.constant(row[spec["name"]].to_numpy().astype(str if dtype == tf.string else np.float32), dtype)
    emb = query(**inputs)["embedding"].numpy()
    searcher = scann.scann_ops_pybind.load_searcher(os.path.join(version_dir, "index"))
    neighbors, scores = searcher.search_batched(emb, final_num_neighbors=10)
    json.dump({"user_ids": row["user_id"].tolist(), "embedding": emb.tolist(),
               "neighbors": np.asarray(neighbors).tolist(), "scores": np.asarray(scores).tolist()}, sys.stdout)
    """
)


@pytest.fixture(scope="module")
def published(tmp_path_factory):
    root = tmp_path_factory.mktemp("models")
    data = generate_storefront(items=300, users=200, interactions=6000, seed=1)
    result = run_pipeline(data, root, TrainConfig(epochs=3, batch_size=256), verbose=0)
    return root, result, data


def test_version_has_every_contract_file_with_checksums(published):
    root, result, _ = published
    version = read_latest(root)
    assert version == result.version
    vdir = root / version
    manifest = json.loads((vdir / "manifest.json").read_text())
    for name in (
        "query_model/saved_model.pb",
        "candidate_model/saved_model.pb",
        "item_embeddings.npy",
        "items.parquet",
        "users.parquet",
        "seen.parquet",
        "metrics.json",
        "report.png",
    ):
        assert name in manifest["files"], name
    assert any(f.startswith("index/") for f in manifest["files"])
    assert manifest["schema_version"] == 2 and manifest["version"] == version
    assert parse_manifest(manifest, version).kind == "training"  # what training writes is the contract's form
    assert manifest["num_items"] == 300 and manifest["embedding_dim"] == 64
    items = pd.read_parquet(vdir / "items.parquet")
    assert len(items) == 300 and items["popularity"].sum() == result.metrics["evaluation"]["num_train_interactions"]
    assert np.load(vdir / "item_embeddings.npy").shape == (300, 64)
    assert not (root / ".runs").exists() or not any((root / ".runs").iterdir())  # checkpoints removed after publish


def test_metrics_compare_model_with_popularity_and_agree_with_factorized_top_k(published):
    _, result, _ = published
    ev = result.metrics["evaluation"]
    assert set(ev["model"]) == set(ev["popularity"])
    assert 0.0 <= ev["model"]["recall_at_10"] <= 1.0
    # our P1 metric and TFRS's FactorizedTopK score the same test pairs the same way
    assert ev["model"]["top_100_accuracy"] == pytest.approx(ev["factorized_top_k"]["top_100_categorical_accuracy"], abs=2e-3)
    # the generated data has learnable taste structure: the model must beat popularity
    assert ev["model"]["recall_at_100"] > ev["popularity"]["recall_at_100"]


def test_fresh_process_loads_savedmodel_and_index_and_finds_the_true_top_items(published):
    root, result, _ = published
    vdir = root / read_latest(root)
    out = subprocess.run(
        [sys.executable, "-c", FRESH_PROCESS, str(vdir)],
        capture_output=True,
        text=True,
        check=True,
        env={"PATH": "/usr/bin:/bin", "TF_CPP_MIN_LOG_LEVEL": "3"},
    )
    got = json.loads(out.stdout)
    emb = np.array(got["embedding"], dtype=np.float32)
    items = np.load(vdir / "item_embeddings.npy")
    exact = np.argsort(-(emb @ items.T), axis=1, kind="stable")[:, :10]
    for found, truth in zip(got["neighbors"], exact, strict=True):
        assert set(found) == set(truth.tolist())
    # the fresh process's embeddings equal the in-process query tower's
    users = pd.read_parquet(vdir / "users.parquet").iloc[:5]
    tower = result.train.model.query_tower
    inputs = {
        n: tf.constant(
            users[n].to_numpy(np.float32) if pd.api.types.is_numeric_dtype(users[n]) else users[n].astype(str).to_numpy()
        )
        for n in tower.input_names
    }
    np.testing.assert_allclose(tower(inputs).numpy(), emb, rtol=1e-4, atol=1e-5)


class _Interrupt(tf.keras.callbacks.Callback):
    def __init__(self, at_epoch: int, at_batch: int):
        super().__init__()
        self.at_epoch, self.at_batch, self.epoch = at_epoch, at_batch, 0

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        if self.epoch == self.at_epoch and batch == self.at_batch:
            raise KeyboardInterrupt("simulated kill")


class _EpochCounter(tf.keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.epochs = []

    def on_epoch_begin(self, epoch, logs=None):
        self.epochs.append(epoch)


def test_interrupted_run_resumes_from_checkpoint(tmp_path):
    from training.pipeline import default_spec, split_with_validation
    from training.prepared import prepare

    data = generate_storefront(items=200, users=150, interactions=5000, seed=3)
    config = TrainConfig(epochs=4, batch_size=128, checkpoint_every_steps=5, early_stopping_patience=10)
    spec = default_spec(data.source, data)
    prep = prepare(data, spec)
    _, fit, val = split_with_validation(prep, config)
    run_dir = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        train(prep, spec, config, fit, val, run_dir=run_dir, verbose=0, extra_callbacks=[_Interrupt(2, 12)])
    assert (run_dir / "backup").exists()
    counter = _EpochCounter()
    resumed = train(prep, spec, config, fit, val, run_dir=run_dir, verbose=0, extra_callbacks=[counter])
    assert counter.epochs[0] == 2  # resumed inside epoch 3, not from scratch
    assert len(resumed.history["loss"]) == 4  # curves of the first run kept
    fresh = train(prep, spec, config, fit, val, run_dir=None, verbose=0)
    key = resumed.validation_metric
    assert max(resumed.history[key]) == pytest.approx(max(fresh.history[key]), abs=0.08)


def test_factorized_top_k_cross_check_scores_the_catalog_in_batches_that_fit_and_agrees(published, monkeypatch, tmp_path):
    """The cross-check's batch shrinks so that batch x catalog scores fit a budget (8,192
    queries x 1M items was 32 GB); being per query, the metric is the same at any batch."""
    import training.pipeline as pipeline

    assert pipeline.cross_check_batch(8192, 1_000_000) == (256 << 20) // (4 * 1_000_000) == 67
    assert pipeline.cross_check_batch(256, 300) == 256 and pipeline.cross_check_batch(256, 10**12) == 1
    _, result, data = published
    config = TrainConfig(epochs=3, batch_size=256)
    prep = pipeline.prepare(data, result.spec)
    split, _, _ = pipeline.split_with_validation(prep, config)
    item_emb = pipeline.embed(result.train.model.candidate_tower, prep.item_inputs)
    monkeypatch.setattr(pipeline, "TOP_K_SCORES_BYTES", 4 * prep.num_items * 7)  # batches of 7 queries
    assert pipeline.cross_check_batch(config.batch_size, prep.num_items) == 7
    sample = split_sample(prep, split, config, tmp_path / "prepared")  # the run's split, prepared anew: the same sample
    small = pipeline.top_k_cross_check(result.train, sample, item_emb, config)
    published_figures = result.metrics["evaluation"]["factorized_top_k"]
    assert small.keys() == published_figures.keys() and small
    for name, value in published_figures.items():
        assert small[name] == pytest.approx(value, abs=1e-6), name


def test_a_run_handed_its_data_drops_the_log_once_prepared_and_publishes_the_same_version(published, tmp_path):
    """``recsys train`` hands its data over (``release_interactions``): after preparation the
    run reads only the shards, so the version is the one the data kept in memory gives."""
    root, result, _ = published
    data = generate_storefront(items=300, users=200, interactions=6000, seed=1)
    fingerprint = data.fingerprint()
    handed = run_pipeline(data, tmp_path / "models", TrainConfig(epochs=3, batch_size=256), verbose=0, release_interactions=True)
    assert len(data.interactions) == 0 and list(data.interactions.columns) == ["user_id", "item_id", "timestamp", "weight"]
    assert handed.metrics["evaluation"]["model"] == result.metrics["evaluation"]["model"]
    manifest = json.loads((tmp_path / "models" / handed.version / "manifest.json").read_text())
    kept = json.loads((root / result.version / "manifest.json").read_text())
    assert manifest["dataset"] == kept["dataset"] and manifest["dataset"]["fingerprint"] == fingerprint
    assert manifest["dataset"]["num_interactions"] == 6000


def test_a_run_on_a_log_of_files_publishes_the_version_of_the_same_log_in_memory(published, tmp_path):
    """A source given a folder writes its interactions there as Parquet files
    (``recsys train`` gives one): the run prepares its shards from the files and
    publishes the version the same rows in memory give, fingerprint included."""
    root, result, _ = published
    data = load_source("synthetic", items=300, users=200, interactions=6000, seed=1, progress=False, log_dir=tmp_path / "log")
    assert data.log is not None and len(data.interactions) == 0 and data.num_interactions == 6000
    from_log = run_pipeline(data, tmp_path / "models", TrainConfig(epochs=3, batch_size=256), verbose=0)
    assert from_log.metrics["evaluation"]["model"] == result.metrics["evaluation"]["model"]
    manifest = json.loads((tmp_path / "models" / from_log.version / "manifest.json").read_text())
    kept = json.loads((root / result.version / "manifest.json").read_text())
    assert manifest["dataset"] == kept["dataset"]


def test_the_refit_trains_without_the_selection_runs_model_in_memory(tmp_path, monkeypatch):
    """The selection run's model (its tables and optimizer slots: 0.9 GB at a million users)
    is gone before the refit trains its own."""
    import weakref

    import training.pipeline as pipeline

    real_train, models, alive_at_refit = pipeline.train, [], []

    def recording(*args, **kwargs):
        if models:  # the refit: is the selection's model still reachable?
            alive_at_refit.append(models[0]() is not None)
        result = real_train(*args, **kwargs)
        models.append(weakref.ref(result.model))
        return result

    monkeypatch.setattr(pipeline, "train", recording)
    data = generate_storefront(items=200, users=150, interactions=4000, seed=2)
    run_pipeline(data, tmp_path / "models", TrainConfig(epochs=2, batch_size=256), publish_version=False, verbose=0)
    assert alive_at_refit == [False]


@pytest.mark.parametrize("refit", [True, False])
def test_only_a_run_that_publishes_its_own_model_keeps_a_copy_of_its_best_epochs_weights(tmp_path, monkeypatch, refit):
    """Early stopping copies every weight of its best epoch (0.3 GB at a million users) to
    restore them at the end; a selection run whose model a refit replaces keeps no copy,
    and a run that publishes its own model restores its best epoch."""
    stoppers = []

    class Recording(tf.keras.callbacks.EarlyStopping):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            stoppers.append(self)

    monkeypatch.setattr(tf.keras.callbacks, "EarlyStopping", Recording)
    data = generate_storefront(items=200, users=150, interactions=4000, seed=2)
    config = TrainConfig(epochs=2, batch_size=256, refit_on_full_train=refit)
    run_pipeline(data, tmp_path / "models", config, publish_version=False, verbose=0)
    assert len(stoppers) == 1  # the refit has no validation rows, hence no early stopping
    (stopper,) = stoppers
    assert stopper.restore_best_weights is not refit
    assert (stopper.best_weights is None) is refit
