"""Fit the two-tower model: Keras fit with validation-driven early stopping and
step checkpoints (``BackupAndRestore``) so a killed run resumes where it was."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import tensorflow as tf

from towers.spec import ModelSpec
from towers.tower import build_tower
from training.config import TrainConfig
from training.metrics import embedding_score_fn, ranking_metrics
from training.model import TwoTowerModel, embed, make_optimizer
from training.prepared import PreparedData, make_dataset, sampling_probabilities, subset_inputs


@dataclass
class TrainResult:
    model: TwoTowerModel
    history: dict[str, list[float]] = field(default_factory=dict)
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


class _ValidationRecall(tf.keras.callbacks.Callback):
    """After each epoch: Recall@K on the validation split (training items
    excluded), written into the logs for EarlyStopping, and the per-epoch
    history persisted beside the checkpoint so a resumed run keeps its curves."""

    def __init__(
        self,
        prep: PreparedData,
        val_users: np.ndarray,
        val_items: list[np.ndarray],
        seen_items: list[np.ndarray],
        k: int,
        history_file: Path | None,
    ) -> None:
        super().__init__()
        self.prep, self.val_users, self.val_items, self.seen_items, self.k = prep, val_users, val_items, seen_items, k
        self.history_file = history_file
        self.history: dict[str, list[float]] = {"loss": [], f"val_recall_at_{k}": []}
        if history_file and history_file.exists():
            self.history = json.loads(history_file.read_text())

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        logs = logs if logs is not None else {}
        model: TwoTowerModel = self.model  # type: ignore[assignment]
        if len(self.val_users):
            users = embed(model.query_tower, self.prep.user_inputs)
            items = embed(model.candidate_tower, self.prep.item_inputs)
            metrics = ranking_metrics(
                embedding_score_fn(users, items),
                self.val_users,
                self.val_items,
                self.seen_items,
                self.prep.num_items,
                recall_ks=(self.k,),
            )
            logs[f"val_recall_at_{self.k}"] = metrics[f"recall_at_{self.k}"]
            self.history[f"val_recall_at_{self.k}"].append(float(metrics[f"recall_at_{self.k}"]))
        self.history["loss"].append(float(logs.get("loss", float("nan"))))
        if self.history_file:
            self.history_file.parent.mkdir(parents=True, exist_ok=True)
            self.history_file.write_text(json.dumps(self.history))


def _validation_targets(
    prep: PreparedData, fit_rows: np.ndarray, val_rows: np.ndarray, max_users: int, seed: int
) -> tuple[np.ndarray, list[np.ndarray], list[np.ndarray]]:
    val_by_user = prep.items_by_user(val_rows)
    seen_by_user = prep.items_by_user(fit_rows)
    users = np.array([u for u in range(prep.num_users) if len(val_by_user[u])], dtype=np.int64)
    if len(users) > max_users:
        users = np.sort(np.random.default_rng(seed).choice(users, max_users, replace=False))
    return users, [val_by_user[u] for u in users], [seen_by_user[u] for u in users]


def build_model(prep: PreparedData, spec: ModelSpec, config: TrainConfig, fit_rows: np.ndarray) -> TwoTowerModel:
    """Towers whose vocabularies and statistics come from the fit rows only."""
    train_users = np.unique(prep.user_rows[fit_rows])
    train_items = np.unique(prep.item_rows[fit_rows])
    query_tower = build_tower(
        spec.query, subset_inputs(prep.user_inputs, train_users), spec.embedding_dim, "query_tower"
    )
    candidate_tower = build_tower(
        spec.candidate, subset_inputs(prep.item_inputs, train_items), spec.embedding_dim, "candidate_tower"
    )
    model = TwoTowerModel(query_tower, candidate_tower, spec.query.names, spec.candidate.names, config)
    model.compile(optimizer=make_optimizer(config))
    return model


def train(
    prep: PreparedData,
    spec: ModelSpec,
    config: TrainConfig,
    fit_rows: np.ndarray,
    val_rows: np.ndarray,
    run_dir: Path | None = None,
    verbose: int | str = "auto",
    strategy: tf.distribute.Strategy | None = None,
) -> TrainResult:
    """Train on ``fit_rows``; early-stop on Recall@K over ``val_rows``.

    With ``run_dir`` set, ``BackupAndRestore`` checkpoints every
    ``config.checkpoint_every_steps`` steps into it, and a later call with the
    same ``run_dir`` resumes from the last checkpoint.
    """
    tf.keras.utils.set_random_seed(config.seed)
    strategy = strategy or tf.distribute.get_strategy()
    with strategy.scope():
        model = build_model(prep, spec, config, fit_rows)
    p = sampling_probabilities(prep, fit_rows)
    dataset = make_dataset(prep, fit_rows, p, config.batch_size, config.seed)

    k = config.validation_metric_k
    val_users, val_items, seen = _validation_targets(prep, fit_rows, val_rows, config.max_eval_queries, config.seed)
    timer = _EpochTimer()
    validation = _ValidationRecall(
        prep, val_users, val_items, seen, k, run_dir / "history.json" if run_dir else None
    )
    callbacks: list[tf.keras.callbacks.Callback] = [timer, validation]
    if len(val_users):
        callbacks.append(
            tf.keras.callbacks.EarlyStopping(
                monitor=f"val_recall_at_{k}",
                mode="max",
                patience=config.early_stopping_patience,
                restore_best_weights=True,
            )
        )
    if run_dir is not None:
        callbacks.append(
            tf.keras.callbacks.BackupAndRestore(
                str(run_dir / "backup"), save_freq=config.checkpoint_every_steps, delete_checkpoint=True
            )
        )
    start = time.perf_counter()
    model.fit(dataset, epochs=config.epochs, callbacks=callbacks, verbose=verbose)
    seconds = time.perf_counter() - start
    hist = validation.history
    val_curve = hist.get(f"val_recall_at_{k}", [])
    best = int(np.argmax(val_curve)) + 1 if val_curve else len(hist["loss"])
    epoch_seconds = float(np.median(timer.seconds)) if timer.seconds else seconds
    return TrainResult(
        model=model,
        history=hist,
        best_epoch=best,
        train_seconds=seconds,
        examples_per_second=len(fit_rows) / epoch_seconds if epoch_seconds > 0 else 0.0,
    )
