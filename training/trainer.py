"""Fit the two-tower model: Keras fit with validation-driven early stopping and
step checkpoints (``BackupAndRestore``) so a killed run resumes where it was."""

from __future__ import annotations

import gc
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import tensorflow as tf

from towers.features import TokenCounts
from towers.spec import ModelSpec
from towers.tower import build_tower, training_tower
from training.config import SplitKind, TrainConfig
from training.evaluate import pair_query_inputs
from training.fit_progress import keras_verbose, progress_callbacks
from training.freed_memory import ReleaseFreedMemory, release_freed_memory
from training.metrics import embedding_score_fn, ranking_metrics, top_k_accuracy
from training.model import TwoTowerModel, embed
from training.optimizers import make_optimizer
from training.prepared import PreparedData, sampling_probabilities, subset_inputs
from training.stream.inputs import examples_of, training_input
from training.stream.reduce import gather, item_counts, part_pairs, user_counts
from training.stream.run import ExampleSource


@dataclass
class TrainResult:
    model: TwoTowerModel
    history: dict[str, list[float]] = field(default_factory=dict)
    validation_metric: str = ""
    best_epoch: int = 0
    train_seconds: float = 0.0
    examples_per_second: float = 0.0


class _EpochTimer(tf.keras.callbacks.Callback):
    """Wall time of the optimisation part of each epoch (validation excluded)."""

    def __init__(self) -> None:
        super().__init__()
        self.seconds: list[float] = []
        self._start = 0.0

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        self.seconds.append(time.perf_counter() - self._start)


class _ValidationMetric(tf.keras.callbacks.Callback):
    """After each epoch: the split's own metric on the validation rows, written
    into the logs (``val_<metric>``) for EarlyStopping, and the per-epoch
    history persisted beside the checkpoint so a resumed run keeps its curves.

    Temporal split (P2): Recall@K per user, training items excluded.
    Random split (P1): top-K accuracy per validation pair, nothing excluded,
    each pair queried with its user's fit rows before it (as evaluation does).

    Known items only, for every model: the ranking holds the items of the fit
    rows, and a validation pair whose item is not among them does not count.
    An item the fit rows never show is embedded by the id's out-of-vocabulary
    path (or a cold path); where it lands measures that path, not the epoch's
    training, and would otherwise move the epoch early stopping picks.
    """

    def __init__(self, prep: PreparedData, source: ExampleSource, config: TrainConfig, history_file: Path | None) -> None:
        super().__init__()
        prepared = source.prepared
        self.known_items = np.flatnonzero(item_counts(prepared, source.parts))
        self.known_inputs = subset_inputs(prep.item_inputs, self.known_items)  # the ranking's candidates, every epoch
        position = np.full(prep.num_items, -1, dtype=np.int64)  # item row -> its place among the known items
        position[self.known_items] = np.arange(len(self.known_items))
        val = part_pairs(prepared, source.validation)
        scored = np.flatnonzero(position[val.item_rows] >= 0)  # validation pairs whose item the fit rows know
        self.k = k = config.validation_metric_k
        self.per_pair = config.split is SplitKind.RANDOM
        self.metric = f"top_{k}_accuracy" if self.per_pair else f"recall_at_{k}"
        self.log_key = f"val_{self.metric}"
        rng = np.random.default_rng(config.seed)
        cap = config.max_eval_queries
        if self.per_pair:
            pairs = scored if len(scored) <= cap else rng.choice(scored, cap, replace=False)
            users = np.unique(val.user_rows[pairs])
        else:
            users = np.unique(val.user_rows[scored])
            if len(users) > cap:
                users = np.sort(rng.choice(users, cap, replace=False))
        # the rows of the scored users: their validation pairs and the fit rows their queries know
        rows = gather(prepared, users)
        view = prep.view(rows)
        fit = np.flatnonzero(np.isin(rows.parts, source.parts))
        if self.per_pair:
            local = np.searchsorted(rows.positions, val.positions[pairs])
            self.query_inputs = pair_query_inputs(view, fit, local)  # each pair: the fit rows before it
            self.pairs = (np.arange(len(pairs)), position[val.item_rows[pairs]])
        else:
            known_val = np.flatnonzero(np.isin(rows.parts, source.validation) & (position[rows.item_rows] >= 0))
            self.query_inputs = subset_inputs(view.query_inputs(fit), users)  # validation queries know the fit rows
            self.val_items = [position[items] for items in view.items_by_user(known_val, users)]
            self.seen = [position[items] for items in view.items_by_user(fit, users)]
            self.users = np.arange(len(users))  # rows of query_inputs
        self.active = len(users) > 0
        self.history_file = history_file
        self.history: dict[str, list[float]] = {"loss": [], self.log_key: []}
        if history_file and history_file.exists():
            self.history = json.loads(history_file.read_text())

    def compute(self, model: TwoTowerModel) -> float:
        score = embedding_score_fn(embed(model.query_tower, self.query_inputs), embed(model.candidate_tower, self.known_inputs))
        if self.per_pair:
            return top_k_accuracy(score, *self.pairs, ks=(self.k,), num_items=len(self.known_items))[self.metric]
        found = ranking_metrics(score, self.users, self.val_items, self.seen, len(self.known_items), recall_ks=(self.k,))
        return found[self.metric]

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        logs = logs if logs is not None else {}
        # A resumed run may redo the end of an epoch already recorded: keep one
        # entry per epoch, the latest.
        for series in self.history.values():
            del series[epoch:]
        if self.active:
            value = float(self.compute(self.model))
            logs[self.log_key] = value
            self.history[self.log_key].append(value)
        self.history["loss"].append(float(logs.get("loss", float("nan"))))
        if self.history_file:
            self.history_file.parent.mkdir(parents=True, exist_ok=True)
            self.history_file.write_text(json.dumps(self.history))


def drop_training_state(model: tf.keras.Model) -> None:
    """Free what only training needs once a model is trained: its optimizer, whose slots
    (Adam's two moments per row of every embedding table) take twice the tables' memory,
    and the traced training step that holds them. What follows a fit (embedding, the
    evaluation, the export) only reads the towers; at 1M users and 200K items this is
    0.55 GiB (BENCHMARKS.md, "The run after training: what it holds")."""
    # Keras also keeps them as the model's checkpoint dependencies (TensorFlow's
    # AutoTrackable._delete_tracking drops those), and the optimizer in its compile arguments.
    for name in ("optimizer", "train_function", "train_tf_function"):
        model._delete_tracking(name)
        setattr(model, name, None)
    if hasattr(model, "_compile_config"):
        del model._compile_config
    gc.collect()  # the optimizer and its traced functions sit in reference cycles
    release_freed_memory()


def build_model(prep: PreparedData, spec: ModelSpec, config: TrainConfig, fit: ExampleSource | np.ndarray) -> TwoTowerModel:
    """Towers whose vocabularies and statistics come from the fit rows (``fit``: a
    source's example parts, or rows of ``prep``) only (a history's own vocabulary: the
    items of the fit rows, by their count). The candidate tower is built first: a
    shared history embedding is its item_id table."""
    if isinstance(fit, ExampleSource):
        counts, users = item_counts(fit.prepared, fit.parts), user_counts(fit.prepared, fit.parts)
    else:
        counts, users = prep.item_counts(fit), prep.user_counts(fit)
    train_users = np.flatnonzero(users)
    train_items = np.flatnonzero(counts)
    candidate_tower = build_tower(
        spec.candidate,
        subset_inputs(prep.item_inputs, train_items),
        spec.embedding_dim,
        "candidate_tower",
        spec.normalize_embeddings,
    )
    query_train: dict[str, np.ndarray | TokenCounts] = dict(subset_inputs(prep.user_inputs, train_users))
    query_train.update({f.name: TokenCounts(prep.item_ids[train_items], counts[train_items]) for f in spec.history_features})
    shared = candidate_tower.get_layer("item_id_id") if any(f.shared_embedding for f in spec.history_features) else None
    query_tower = build_tower(
        spec.query, query_train, spec.embedding_dim, "query_tower", spec.normalize_embeddings, shared_item_ids=shared
    )
    model = TwoTowerModel(
        query_tower,
        candidate_tower,
        spec.query.names,
        spec.candidate.names,
        config,
        catalog=prep.item_inputs,
        sampling_probability=sampling_probabilities(counts, config.logq_strength),
        training_query_tower=training_tower(query_tower, spec.query, prep.item_ids),
    )
    model.compile(optimizer=make_optimizer(config, model))
    return model


def train(
    prep: PreparedData,
    spec: ModelSpec,
    config: TrainConfig,
    fit_rows: np.ndarray | None = None,
    val_rows: np.ndarray | None = None,
    run_dir: Path | None = None,
    verbose: int | str = "auto",
    strategy: tf.distribute.Strategy | None = None,
    extra_callbacks: Sequence[tf.keras.callbacks.Callback] = (),
    source: ExampleSource | None = None,
    restore_best_epoch: bool = True,
) -> TrainResult:
    """Train on the examples of ``source`` (prepared shards, :mod:`training.stream`;
    ``recsys train`` passes its run's), or else on ``fit_rows`` of ``prep`` prepared
    here; early-stop on the split's metric over the source's validation parts (or
    ``val_rows``).

    The returned model has the weights of the best validation epoch; with
    ``restore_best_epoch=False`` it keeps the last epoch's, and no copy of the best
    weights is held while training (a run that only chooses the epoch count for a
    refit: at a million users that copy is 0.3 GB).

    With ``run_dir`` set, ``BackupAndRestore`` checkpoints every
    ``config.checkpoint_every_steps`` steps into it, and a later call with the
    same ``run_dir`` resumes from the last checkpoint.
    """

    def fit(examples: ExampleSource) -> TrainResult:
        strategy_ = strategy or tf.distribute.get_strategy()
        return _train(prep, spec, config, examples, run_dir, verbose, strategy_, extra_callbacks, restore_best_epoch)

    if source is None:
        if fit_rows is None:
            raise ValueError("train needs a source or fit_rows")
        with examples_of(prep, fit_rows, run_dir, config.seed, val_rows) as examples:
            return fit(examples)
    return fit(source)


def _train(
    prep: PreparedData,
    spec: ModelSpec,
    config: TrainConfig,
    examples: ExampleSource,
    run_dir: Path | None,
    verbose: int | str,
    strategy: tf.distribute.Strategy,
    extra_callbacks: Sequence[tf.keras.callbacks.Callback],
    restore_best_epoch: bool,
) -> TrainResult:
    tf.keras.utils.set_random_seed(config.seed)
    with strategy.scope():
        model = build_model(prep, spec, config, examples)
    p = sampling_probabilities(item_counts(examples.prepared, examples.parts), config.logq_strength)

    timer = _EpochTimer()
    validation = _ValidationMetric(prep, examples, config, run_dir / "history.json" if run_dir else None)
    callbacks: list[tf.keras.callbacks.Callback] = [
        timer,
        ReleaseFreedMemory(),
        validation,
        *progress_callbacks(verbose, config.batch_size, config.progress_every_s),
        *extra_callbacks,
    ]
    if validation.active:
        callbacks.append(
            tf.keras.callbacks.EarlyStopping(
                monitor=validation.log_key,
                mode="max",
                patience=config.early_stopping_patience,
                restore_best_weights=restore_best_epoch,
            )
        )
    if run_dir is not None:
        callbacks.append(
            tf.keras.callbacks.BackupAndRestore(
                str(run_dir / "backup"), save_freq=config.checkpoint_every_steps, delete_checkpoint=True
            )
        )
    dataset, steps = training_input(prep, examples, p, config.batch_size, config.seed, strategy)
    start = time.perf_counter()
    model.fit(dataset, epochs=config.epochs, steps_per_epoch=steps, callbacks=callbacks, verbose=keras_verbose(verbose))
    seconds = time.perf_counter() - start
    drop_training_state(model)
    hist = validation.history
    val_curve = hist.get(validation.log_key, [])
    best = int(np.argmax(val_curve)) + 1 if val_curve else len(hist["loss"])
    epoch_seconds = float(np.median(timer.seconds)) if timer.seconds else seconds
    return TrainResult(
        model=model,
        history=hist,
        best_epoch=best,
        validation_metric=validation.log_key,
        train_seconds=seconds,
        examples_per_second=examples.prepared.rows_of(examples.parts) / epoch_seconds if epoch_seconds > 0 else 0.0,
    )
