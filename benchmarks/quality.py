"""Offline quality on MovieLens 100K, P1 and P2, every model scored by the same code.

    python -m benchmarks.quality [--data DIR] [--seeds 42,43,44] [--no-als] [--quick]

Models (all trained on the protocol's training split; hyperparameters picked on
a validation split carved from it, never on test):

- ``popularity``: training interaction counts;
- ``tfrs_quickstart``: the seed's TFRS code (README quick-start: ids, 64-d,
  Adagrad 0.5, batch 4096, 3 epochs) — one run per init seed;
- ``tfrs_tutorial``: the TFRS basic-retrieval tutorial (ids, 32-d, Adagrad 0.1,
  batch 8192, 3 epochs, FactorizedTopK in the training step) — per init seed;
- ``ease``: closed form, lambda chosen on validation, refit on all of train;
- ``als``: ``implicit`` ALS, factors/regularisation/alpha/iterations chosen on
  validation, refit on all of train (skipped when ``implicit`` is absent);
- ``svd``: truncated SVD of the interaction matrix (scikit-learn's
  ``TruncatedSVD``, PureSVD scoring), rank chosen on validation;
- ``lightfm``: LightFM with the WARP loss and item features (identity +
  genres + decade), components/item_alpha/epochs chosen on validation
  (skipped when ``lightfm`` is absent);
- ``project``: the project's default MovieLens model (ids + metadata) via
  ``training.pipeline.run_pipeline`` (its own early stopping on its
  validation carve); further init seeds through the same trainer.

Writes benchmarks/results/quality.json, quality.md and quality.png.
"""

from __future__ import annotations

import argparse
import itertools
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.common import RESULTS_DIR, fmt_table, machine_description, movielens_dir, require_movielens, write_results

LABELS = {
    "popularity": "popularity",
    "tfrs_quickstart": "seed code (TFRS quick-start)",
    "tfrs_tutorial": "TFRS tutorial",
    "ease": "EASE",
    "als": "ALS (implicit)",
    "svd": "truncated SVD (scikit-learn)",
    "lightfm": "LightFM (WARP, item features)",
    "item_knn": "item-kNN (cosine)",
    "project": "project (run_pipeline)",
}
TARGETS = {("P1", "top_100_accuracy"): 0.43, ("P2", "recall_at_10"): 0.14, ("P2", "ndcg_at_10"): 0.23}
EASE_LAMBDAS = (10.0, 25.0, 50.0, 100.0, 200.0, 300.0, 500.0, 750.0, 1000.0, 2000.0, 5000.0)
ALS_GRID = {"factors": (8, 16, 32, 64, 128, 256), "regularization": (0.1, 1.0, 10.0, 100.0), "alpha": (0.5, 1.0, 5.0, 20.0)}
ALS_ITERATIONS = (5, 10, 15, 30, 50)
ALS_BASE_ITERATIONS = 15
SVD_COMPONENTS = (8, 16, 32, 64, 128, 256, 512)
LIGHTFM_GRID = {"components": (32, 64, 128), "learning_rate": (0.05,), "item_alpha": (0.0, 1e-6)}
LIGHTFM_EPOCHS = (5, 10, 20, 40)
KNN_NEIGHBOURS = (20, 50, 100, 200, 0)  # 0 = every item
BOOTSTRAP_RESAMPLES = 1000
HEADLINE = {"P1": ("top_100_accuracy",), "P2": ("recall_at_10", "ndcg_at_10"), "P3": ("recall_at_10", "ndcg_at_10")}


def log(msg: str) -> None:
    print(f"[quality {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def _floats(d: dict[str, Any]) -> dict[str, float]:
    return {k: float(v) for k, v in d.items()}


def _aggregate(runs: list[dict[str, float]]) -> dict[str, dict[str, float]]:
    """``test`` is the first seed's run (seed 42, the reported figure); the
    median, min and max over every seed show the spread."""
    keys = runs[0].keys()
    return {
        "test": dict(runs[0]),
        "test_median": {k: float(np.median([r[k] for r in runs])) for k in keys},
        "test_min": {k: float(min(r[k] for r in runs)) for k in keys},
        "test_max": {k: float(max(r[k] for r in runs)) for k in keys},
    }


def _test(score, prep, proto, pair_score=None) -> tuple[dict[str, float], dict[str, Any]]:
    """Test metrics of a score function (P1 per pair with ``pair_score``), and
    its per-user P2 values (for the paired bootstrap; kept out of the JSON)."""
    from benchmarks.movielens import evaluate_test, per_user_test

    return _floats(evaluate_test(score, prep, proto, pair_score)), per_user_test(score, prep, proto)


# --------------------------------------------------------------------------- models
def run_popularity(prep, proto) -> dict[str, Any]:
    from training.metrics import popularity_score_fn

    start = time.perf_counter()
    score = popularity_score_fn(prep.item_rows[proto.split.train], prep.num_items)
    seconds = time.perf_counter() - start
    test, per_user = _test(score, prep, proto)
    return {"test": test, "_per_user": per_user, "train_seconds": seconds, "hyperparameters": {}}


def run_tfrs_baseline(prep, proto, config, seeds: list[int]) -> dict[str, Any]:
    from benchmarks.baselines.tfrs_ids import build_model, embeddings, eval_dataset, train_dataset
    from benchmarks.movielens import published_order
    from training.metrics import embedding_score_fn

    rows = published_order(proto.split.train)
    users, items = prep.user_ids[prep.user_rows[rows]], prep.item_ids[prep.item_rows[rows]]
    runs, seconds, cross, per_user = [], [], None, None
    for n, seed in enumerate(seeds):
        # The first seed runs the published code as is (FactorizedTopK in every
        # training step) and gives the training time. Metrics never touch the
        # gradients, so further seeds skip that work: same weights bit for bit
        # (checked: max |difference| of both embedding tables = 0.0), 2-4x sooner.
        cfg = config if n == 0 else replace(config, top_k_in_training=False)
        model = build_model(prep.user_ids, prep.item_ids, cfg, seed=seed)
        ds = train_dataset(users, items, cfg, seed=seed)
        start = time.perf_counter()
        model.fit(ds, epochs=cfg.epochs, verbose=0)
        seconds.append(time.perf_counter() - start)
        ue, ie = embeddings(model, prep.user_ids, prep.item_ids)
        test, values = _test(embedding_score_fn(ue, ie), prep, proto)
        runs.append(test)
        per_user = per_user if per_user is not None else values
        if cross is None and proto.name == "P1":
            test = proto.split.test
            out = model.evaluate(
                eval_dataset(prep.user_ids[prep.user_rows[test]], prep.item_ids[prep.item_rows[test]]),
                return_dict=True,
                verbose=0,
            )
            cross = {k.split("/")[-1]: float(v) for k, v in out.items() if "top_" in k}
        log(f"{proto.name} {config.name} seed {seed}: {seconds[-1]:.1f}s {runs[-1]}")
    res = _aggregate(runs)
    res.update(
        {
            "_per_user": per_user,
            "per_seed": dict(zip([str(s) for s in seeds], runs, strict=True)),
            "train_seconds": seconds[0],
            "train_seconds_note": "first seed, published code (FactorizedTopK computed in every training step)",
            "train_seconds_per_seed_without_top_k_in_training": seconds[1:],
            "hyperparameters": {
                "embedding_dim": config.embedding_dim,
                "optimizer": f"Adagrad({config.learning_rate})",
                "batch_size": config.batch_size,
                "epochs": config.epochs,
                "factorized_top_k_in_training": config.top_k_in_training,
                "shuffle_buffer": config.shuffle_buffer,
                "cache": config.cache,
            },
        }
    )
    if cross is not None:
        res["tfrs_factorized_top_k_seed0"] = cross
    return res


def _tuned_one_knob(prep, proto, what: str, values, fit) -> tuple[dict[str, Any], Any]:
    """A model with one hyperparameter: ``fit(interaction matrix, value)`` on the
    fit rows for each of ``values``, the best on validation refit on the whole
    training split and tested. Returns the result and the chosen value."""
    from benchmarks.baselines.ease import interaction_matrix
    from benchmarks.movielens import TUNING_METRIC, evaluate_validation

    metric = TUNING_METRIC[proto.name]

    def matrix(rows):
        return interaction_matrix(prep.user_rows[rows], prep.item_rows[rows], prep.num_users, prep.num_items)

    tune_start = time.perf_counter()
    x_fit = matrix(proto.fit_rows)
    sweep = [{what: v, f"val_{metric}": float(evaluate_validation(fit(x_fit, v).score, prep, proto)[metric])} for v in values]
    tune_seconds = time.perf_counter() - tune_start
    best = max(sweep, key=lambda r: r[f"val_{metric}"])[what]
    start = time.perf_counter()
    model = fit(matrix(proto.split.train), best)
    seconds = time.perf_counter() - start
    test, per_user = _test(model.score, prep, proto)
    result = {
        "test": test,
        "_per_user": per_user,
        "train_seconds": seconds,
        "tuning_seconds": tune_seconds,
        "hyperparameters": {what: best},
        "validation": {"metric": metric, "sweep": sweep},
    }
    return result, best


def _optional(available, name: str) -> tuple[str, dict[str, Any] | None]:
    """An optional package's (version, None), or (why not, the skipped result)."""
    ok, version = available()
    if ok:
        return version, None
    log(f"{name} skipped: {version}")
    return version, {"skipped": version}


def run_ease(prep, proto, lambdas) -> dict[str, Any]:
    from benchmarks.baselines.ease import Ease

    result, best = _tuned_one_knob(prep, proto, "lambda", lambdas, Ease.fit)
    log(f"{proto.name} ease lambda={best}: {result['test']}")
    return result


def run_als(prep, proto, grid, iterations, base_iterations, seed: int = 42) -> dict[str, Any]:
    from benchmarks.baselines.als import available, fit_als
    from benchmarks.movielens import TUNING_METRIC, evaluate_validation

    version, skipped = _optional(available, "ALS")
    if skipped:
        return skipped
    metric = TUNING_METRIC[proto.name]
    fu, fi = prep.user_rows[proto.fit_rows], prep.item_rows[proto.fit_rows]

    def val_score(**hp: Any) -> float:
        model = fit_als(fu, fi, prep.num_users, prep.num_items, seed=seed, **hp)
        return float(evaluate_validation(model.score, prep, proto)[metric])

    tune_start = time.perf_counter()
    sweep = []
    for factors, reg, alpha in itertools.product(grid["factors"], grid["regularization"], grid["alpha"]):
        hp = {"factors": factors, "regularization": reg, "alpha": alpha, "iterations": base_iterations}
        sweep.append({**hp, f"val_{metric}": val_score(**hp)})
    best = dict(max(sweep, key=lambda r: r[f"val_{metric}"]))
    for it in iterations:
        if it == base_iterations:
            continue
        hp = {k: best[k] for k in ("factors", "regularization", "alpha")} | {"iterations": it}
        sweep.append({**hp, f"val_{metric}": val_score(**hp)})
    best = dict(max(sweep, key=lambda r: r[f"val_{metric}"]))
    tune_seconds = time.perf_counter() - tune_start
    hp = {k: best[k] for k in ("factors", "regularization", "alpha", "iterations")}
    start = time.perf_counter()
    model = fit_als(
        prep.user_rows[proto.split.train], prep.item_rows[proto.split.train], prep.num_users, prep.num_items, seed=seed, **hp
    )
    seconds = time.perf_counter() - start
    test, per_user = _test(model.score, prep, proto)
    log(f"{proto.name} als {hp}: {test}")
    return {
        "test": test,
        "_per_user": per_user,
        "train_seconds": seconds,
        "tuning_seconds": tune_seconds,
        "hyperparameters": hp,
        "implicit_version": version,
        "validation": {"metric": metric, "sweep": sweep},
    }


def run_svd(prep, proto, components, seed: int = 42) -> dict[str, Any]:
    from benchmarks.baselines.svd import fit_svd

    result, best = _tuned_one_knob(prep, proto, "components", components, lambda x, k: fit_svd(x, k, seed))
    log(f"{proto.name} svd k={best}: {result['test']}")
    return result


def run_lightfm(data, prep, proto, grid, epochs, seed: int = 42) -> dict[str, Any]:
    from benchmarks.baselines.lightfm_warp import LightFmWarp, available, item_features
    from benchmarks.movielens import TUNING_METRIC, evaluate_validation

    version, skipped = _optional(available, "LightFM")
    if skipped:
        return skipped
    metric = TUNING_METRIC[proto.name]
    features, tokens = item_features(data.items.reset_index(drop=True))
    tune_start = time.perf_counter()
    sweep = []
    for components, lr, alpha in itertools.product(grid["components"], grid["learning_rate"], grid["item_alpha"]):
        hp = {"components": components, "learning_rate": lr, "item_alpha": alpha}
        fit = LightFmWarp(
            prep.user_rows[proto.fit_rows],
            prep.item_rows[proto.fit_rows],
            prep.num_users,
            prep.num_items,
            features,
            seed=seed,
            **hp,
        )
        for n in sorted(epochs):
            val = evaluate_validation(fit.train(n).score, prep, proto)
            sweep.append({**hp, "epochs": n, f"val_{metric}": float(val[metric])})
    tune_seconds = time.perf_counter() - tune_start
    best = max(sweep, key=lambda r: r[f"val_{metric}"])
    hp = {k: best[k] for k in ("components", "learning_rate", "item_alpha")}
    start = time.perf_counter()
    final = LightFmWarp(
        prep.user_rows[proto.split.train],
        prep.item_rows[proto.split.train],
        prep.num_users,
        prep.num_items,
        features,
        seed=seed,
        **hp,
    ).train(best["epochs"])
    seconds = time.perf_counter() - start
    test, per_user = _test(final.score, prep, proto)
    log(f"{proto.name} lightfm {best}: {test}")
    return {
        "test": test,
        "_per_user": per_user,
        "train_seconds": seconds,
        "tuning_seconds": tune_seconds,
        "hyperparameters": {**hp, "epochs": best["epochs"], "item_features": f"identity + {len(tokens)} metadata tokens"},
        "lightfm_version": version,
        "validation": {"metric": metric, "sweep": sweep},
    }


def _pipeline_like_fit(prep, spec, config, split, fit_rows, val_rows):
    """What ``run_pipeline`` does between the split and the evaluation, for
    another init seed (its own seed also draws the P1 split, so it cannot be
    varied there): fit with early stopping on the validation carve, then, when
    the config asks for it (``refit_on_full_train``), train again on the whole
    training split for the epoch count early stopping chose."""
    from training.trainer import train

    start = time.perf_counter()
    selection = train(prep, spec, config, fit_rows, val_rows, verbose=0)
    result = selection
    if getattr(config, "refit_on_full_train", False) and len(val_rows):
        refit = config.model_copy(update={"epochs": selection.best_epoch})
        result = train(prep, spec, refit, split.train, np.zeros(0, dtype=np.int64), verbose=0)
    return result, selection.best_epoch, time.perf_counter() - start


def project_variant(data, name: str, kind) -> tuple[Any, Any]:
    """(feature spec, TrainConfig) of a named variant of the project's model.

    ``name`` is ``+``-joined tokens over the MovieLens spec (ids + metadata):
    the query side ``userid`` (no history), ``history`` (history, no user id)
    or ``both``; the history's table ``own`` or ``shared`` (the candidate
    tower's item_id table); its pooling ``mean``, ``recency`` or
    ``attention``; ``N=<int>`` its length; any other ``key=value`` is a
    ``TrainConfig`` field. ``default`` is ``training.pipeline.default_spec``
    with the default ``TrainConfig``.
    """
    from towers.spec import FeatureKind, history_feature, movielens_spec, spec_for_columns
    from training.config import TrainConfig
    from training.pipeline import default_spec

    config = TrainConfig(split=kind)
    if name == "default":
        return default_spec(data.source, data), config
    base = spec_for_columns(movielens_spec(), set(data.users.columns), set(data.items.columns))
    static = [f for f in base.query.features if f.kind is not FeatureKind.HISTORY]
    hist: dict[str, Any] = {}
    query, overrides = "both", {}
    for token in name.split("+"):
        key, _, value = token.partition("=")
        if token in ("userid", "history", "both"):
            query = token
        elif token in ("own", "shared"):
            hist["shared_embedding"] = token == "shared"
        elif token in ("mean", "recency", "attention"):
            hist["pooling"] = token
        elif key == "N":
            hist["history_length"] = int(value)
        elif value:
            field = TrainConfig.model_fields[key]
            overrides[key] = value if field.annotation is not bool else value.lower() in ("1", "true", "yes")
        else:
            raise ValueError(f"unknown variant token {token!r} in {name!r}")
    features = [f for f in static if query != "history" or f.name != "user_id"]
    if query != "userid":
        features.append(history_feature(base.embedding_dim, **hist))
    spec = base.model_copy(update={"query": base.query.model_copy(update={"features": features})})
    return spec, TrainConfig.model_validate({**config.model_dump(), **overrides})


def run_project(data, prep, proto, seeds: list[int], work: Path, variant: str = "default") -> dict[str, Any]:
    """The project's model (``variant``, see :func:`project_variant`) through
    ``run_pipeline`` (seed 42: the figure reported), then the same procedure
    for further init seeds through :func:`_pipeline_like_fit` — checked to
    reproduce run_pipeline at seed 42."""
    from benchmarks.movielens import evaluate_test
    from training.evaluate import pair_query_inputs
    from training.metrics import embedding_score_fn, top_k_accuracy
    from training.model import embed
    from training.pipeline import run_pipeline, split_with_validation
    from training.prepared import prepare

    spec, config = project_variant(data, variant, proto.kind)
    start = time.perf_counter()
    result = run_pipeline(data, work / f"project-{proto.name}", config, spec=spec, publish_version=False, verbose=0)
    wall = time.perf_counter() - start
    own_prep = prepare(data, result.spec)
    queries = own_prep.query_inputs(proto.split.train)  # what the service feeds for known users (history: train items)
    pair_queries = pair_query_inputs(own_prep, proto.split.train, proto.split.test)  # P1: train items before each pair

    def scorers(model):
        items = embed(model.candidate_tower, own_prep.item_inputs)
        per_user = embedding_score_fn(embed(model.query_tower, queries), items)
        return per_user, embedding_score_fn(embed(model.query_tower, pair_queries), items)

    def with_latest(metrics: dict[str, float], per_user) -> dict[str, float]:
        """P1 also as before issue 19's fix: every pair queried with its user's latest training items."""
        if proto.name != "P1":
            return metrics
        latest = top_k_accuracy(per_user, prep.user_rows[proto.split.test], prep.item_rows[proto.split.test])
        return metrics | {f"latest_history_{k}": float(v) for k, v in latest.items()}

    def score(model) -> dict[str, float]:
        per_user, per_pair = scorers(model)
        return with_latest(_floats(evaluate_test(per_user, prep, proto, per_pair)), per_user)

    per_user_score, pair_score = scorers(result.train.model)
    mine, per_user = _test(per_user_score, prep, proto, pair_score)
    mine = with_latest(mine, per_user_score)
    reported = result.metrics["evaluation"]["model"]
    agreement = max(abs(mine[k] - float(reported[k])) for k in reported if k in mine)
    train_seconds = float(result.metrics["training"]["train_seconds"])
    runs, seconds, epochs = [mine], [train_seconds], [result.train.best_epoch]
    log(f"{proto.name} project[{variant}] (run_pipeline, seed {config.seed}): {train_seconds:.1f}s {mine}")
    split, fit_rows, val_rows = split_with_validation(own_prep, config)
    replica_diff = None
    if len(seeds) > 1:
        res, _, _ = _pipeline_like_fit(own_prep, result.spec, config, split, fit_rows, val_rows)
        replica_diff = max(abs(v - mine[k]) for k, v in score(res.model).items())
        log(f"{proto.name} project: replica of run_pipeline at seed {config.seed} differs by at most {replica_diff:.2e}")
    for seed in seeds[1:]:
        cfg = config.model_copy(update={"seed": seed})  # init/shuffle seed only: the split rows stay those of seed 42
        res, best, secs = _pipeline_like_fit(own_prep, result.spec, cfg, split, fit_rows, val_rows)
        runs.append(score(res.model))
        seconds.append(secs)
        epochs.append(best)
        log(f"{proto.name} project[{variant}] (same procedure, init seed {seed}): {secs:.1f}s {runs[-1]}")
    out = _aggregate(runs)
    out.update(
        {
            "_per_user": per_user,
            "per_seed": dict(zip([str(s) for s in seeds], runs, strict=True)),
            "train_seconds": train_seconds,
            "train_seconds_note": "run_pipeline's training (seed 42): early-stopped fit with per-epoch validation, plus the refit on the whole training split when configured",
            "train_seconds_per_seed": seconds,
            "run_pipeline_wall_seconds": wall,
            "best_epoch_per_seed": epochs,
            "run_pipeline_training": {k: v for k, v in result.metrics["training"].items() if k != "history"},
            "run_pipeline_validation_history": result.metrics["training"].get("history"),
            "pipeline_reported_metrics": _floats(reported),
            "pipeline_popularity_metrics": _floats(result.metrics["evaluation"]["popularity"]),
            "pipeline_factorized_top_k": result.metrics["evaluation"].get("factorized_top_k"),
            "max_abs_difference_vs_pipeline_evaluation": agreement,
            "replica_vs_run_pipeline_max_abs_difference": replica_diff,
            "hyperparameters": {
                "variant": variant,
                "feature_spec": result.spec.model_dump(mode="json"),
                "config": config.model_dump(mode="json"),
            },
        }
    )
    return out


# --------------------------------------------------------------------------- P3 (sessions)
def _session_result(score, sessions, num_items, **extra: Any) -> dict[str, Any]:
    from benchmarks.movielens import evaluate_sessions

    test, per_user = evaluate_sessions(score, sessions, num_items)
    return {"test": test, "_per_user": {k: v.tolist() for k, v in per_user.items()}, **extra}


def _tuned_on_sessions(build, grid, p3, prep, what: str) -> tuple[Any, dict[str, Any]]:
    """Pick ``build(train_rows, value)``'s value on the validation sessions
    (fit on ``fit_rows``), by NDCG@10; refit on every training user."""
    from benchmarks.movielens import evaluate_sessions, session_matrix

    start = time.perf_counter()
    x_val = session_matrix(p3.validation, prep.num_items)
    sweep = []
    for value in grid:
        model = build(p3.fit_rows, value)
        model.x = x_val
        sweep.append(
            {what: value, "val_ndcg_at_10": evaluate_sessions(model.score, p3.validation, prep.num_items)[0]["ndcg_at_10"]}
        )
    best = max(sweep, key=lambda r: r["val_ndcg_at_10"])[what]
    tune = time.perf_counter() - start
    start = time.perf_counter()
    model = build(p3.train_rows, best)
    seconds = time.perf_counter() - start
    model.x = session_matrix(p3.test, prep.num_items)
    return model, {
        "train_seconds": seconds,
        "tuning_seconds": tune,
        "hyperparameters": {what: best},
        "validation": {"metric": "ndcg_at_10 (validation sessions)", "sweep": sweep},
    }


def run_session_baselines(prep, p3, wanted: set[str], lambdas, neighbours) -> dict[str, Any]:
    """popularity, EASE folded in (a session is a user row of given items) and
    item-kNN (cosine), on the P3 test sessions."""
    from benchmarks.baselines.ease import Ease, interaction_matrix
    from benchmarks.baselines.item_knn import ItemKnn, cosine_neighbours

    def matrix(rows):
        return interaction_matrix(prep.user_rows[rows], prep.item_rows[rows], prep.num_users, prep.num_items)

    out: dict[str, Any] = {}
    if "popularity" in wanted:
        counts = np.bincount(prep.item_rows[p3.train_rows], minlength=prep.num_items).astype(np.float32)
        out["popularity"] = _session_result(
            lambda r: np.broadcast_to(counts, (len(r), prep.num_items)),
            p3.test,
            prep.num_items,
            train_seconds=0.0,
            hyperparameters={},
        )
    if "ease" in wanted:
        model, info = _tuned_on_sessions(lambda rows, lam: Ease.fit(matrix(rows), lam), lambdas, p3, prep, "lambda")
        out["ease"] = _session_result(model.score, p3.test, prep.num_items, **info)
    if "item_knn" in wanted:
        model, info = _tuned_on_sessions(
            lambda rows, k: ItemKnn(x=None, sim=cosine_neighbours(matrix(rows), k)), neighbours, p3, prep, "neighbours"
        )
        out["item_knn"] = _session_result(model.score, p3.test, prep.num_items, **info)
    for name, r in out.items():
        log(f"P3 {name} {r.get('hyperparameters')}: {r['test']}")
    return out


def session_queries(query_model, spec, prep, sessions, defaults) -> np.ndarray:
    """Query vectors of held-out users from the exported query SavedModel, fed
    as the service feeds a user it does not know: their id (the OOV row), the
    training defaults for the other features, and the session's items, oldest
    first, as the history string."""
    import tensorflow as tf

    from towers.spec import FeatureKind

    n = len(sessions.users)
    cols = {}
    for f in spec.query.features:
        if f.kind is FeatureKind.HISTORY:
            cols[f.name] = tf.constant([f.separator.join(prep.item_ids[g]) for g in sessions.given])
        elif f.name == "user_id":
            cols[f.name] = tf.constant(prep.user_ids[sessions.users].astype(str))
        elif f.kind.dtype == "float32":
            cols[f.name] = tf.constant(np.full(n, defaults[f.name], dtype=np.float32))
        else:
            cols[f.name] = tf.constant([str(defaults[f.name])] * n)
    return query_model(**cols)["embedding"].numpy()


def run_project_sessions(data, p3, seeds: list[int], work: Path, variant: str) -> dict[str, Any]:
    """The project's model trained on every interaction of the training users
    (early stopping on a temporal carve of them, then the refit), its query
    tower exported as the version's SavedModel and queried with each
    held-out user's session."""
    import tensorflow as tf

    from towers.tower import input_defaults
    from training.config import SplitKind
    from training.export import export_tower
    from training.metrics import embedding_score_fn
    from training.model import embed
    from training.prepared import prepare, subset_inputs
    from training.split import Split, make_split

    spec, config = project_variant(data, variant, SplitKind.TEMPORAL)
    prep = prepare(data, spec)
    inner = make_split(
        prep.data.interactions.iloc[p3.train_rows].reset_index(drop=True),
        config.split,
        config.validation_fraction,
        config.seed + 1,
    )
    fit_rows, val_rows = p3.train_rows[inner.train], p3.train_rows[inner.test]
    split = Split(train=p3.train_rows, test=np.zeros(0, dtype=np.int64))
    defaults = input_defaults(spec.query, subset_inputs(prep.user_inputs, np.unique(prep.user_rows[p3.train_rows])))
    runs, per_user, seconds, epochs = [], None, [], []
    for seed in seeds:
        res, best, secs = _pipeline_like_fit(prep, spec, config.model_copy(update={"seed": seed}), split, fit_rows, val_rows)
        path = work / f"p3-{variant}-{seed}"
        export_tower(res.model.query_tower, spec.query.features, path)
        queries = session_queries(tf.saved_model.load(str(path)).signatures["serving_default"], spec, prep, p3.test, defaults)
        r = _session_result(
            embedding_score_fn(queries, embed(res.model.candidate_tower, prep.item_inputs)), p3.test, prep.num_items
        )
        runs.append(r["test"])
        per_user = per_user or r["_per_user"]
        seconds.append(secs)
        epochs.append(best)
        log(f"P3 project[{variant}] seed {seed}: {secs:.1f}s {r['test']}")
    out = _aggregate(runs)
    out.update(
        {
            "_per_user": per_user,
            "per_seed": dict(zip([str(s) for s in seeds], runs, strict=True)),
            "train_seconds": seconds[0],
            "train_seconds_per_seed": seconds,
            "best_epoch_per_seed": epochs,
            "hyperparameters": {
                "variant": variant,
                "feature_spec": spec.model_dump(mode="json"),
                "config": config.model_dump(mode="json"),
            },
        }
    )
    return out


def bootstrap_table(models: dict[str, Any], resamples: int = BOOTSTRAP_RESAMPLES) -> dict[str, Any]:
    """Paired bootstrap over users: every project model against every other
    model, on Recall@10 and NDCG@10 (the seed-42 runs)."""
    from training.metrics import paired_bootstrap

    out: dict[str, Any] = {}
    for mine in [n for n in models if n.startswith("project") and "_per_user" in models[n]]:
        for other in [n for n in models if n != mine and "_per_user" in models[n]]:
            out[f"{mine} vs {other}"] = {
                m: paired_bootstrap(
                    np.asarray(models[mine]["_per_user"][m]), np.asarray(models[other]["_per_user"][m]), resamples
                )
                for m in ("recall_at_10", "ndcg_at_10")
            }
    return out


# --------------------------------------------------------------------------- report
def ranks(models: dict[str, dict[str, Any]], proto: str) -> dict[str, dict[str, int]]:
    """1 = best, per headline metric, among models that ran."""
    metrics = HEADLINE[proto]
    out: dict[str, dict[str, int]] = {}
    ran = {n: r for n, r in models.items() if "test" in r}
    for metric in metrics:
        order = sorted(ran, key=lambda n: -ran[n]["test"][metric])
        for i, n in enumerate(order, 1):
            out.setdefault(n, {})[metric] = i
    return out


def summarize(results: dict[str, Any]) -> str:
    lines = ["## Quality on MovieLens 100K (test split; seed-42 runs, the spread over init seeds in the notes)", ""]
    p2 = ("recall_at_10", "recall_at_100", "ndcg_at_10", "coverage_at_10")
    for proto, metrics in (("P1", ("top_10_accuracy", "top_50_accuracy", "top_100_accuracy")), ("P2", p2), ("P3", p2)):
        if proto not in results["protocols"]:
            continue
        models = results["protocols"][proto]["models"]
        rk = results["protocols"][proto]["ranks"]
        rows = []
        for name in [*LABELS, *(n for n in models if n not in LABELS)]:
            label, r = LABELS.get(name, name), models.get(name)
            if r is None:
                continue
            if "test" not in r:
                rows.append([label, *["skipped"] * len(metrics), "—", r.get("skipped", "")])
                continue
            spread = ""
            if "test_min" in r and len(r.get("per_seed", {})) > 1:
                keys = ("top_100_accuracy",) if proto == "P1" else ("recall_at_10", "ndcg_at_10")
                spread = f"over {len(r['per_seed'])} init seeds: " + ", ".join(
                    f"{k} {r['test_min'][k]:.4f}–{r['test_max'][k]:.4f}" for k in keys
                )
            hp = r.get("hyperparameters", {})
            hp_s = ", ".join(f"{k}={v}" for k, v in hp.items() if k not in ("config", "feature_spec"))
            rows.append(
                [label, *[r["test"][m] for m in metrics], round(r["train_seconds"], 2), "; ".join(x for x in (hp_s, spread) if x)]
            )
        lines += [f"### {proto}", "", fmt_table(["model", *metrics, "train s", "notes"], rows), ""]
        targets = [(m, t) for (p, m), t in TARGETS.items() if p == proto]
        proj = models.get("project", {}).get("test", {})
        for m, t in targets:
            if proj:
                pr = models["project"]
                spread = (
                    f" (median over {len(pr['per_seed'])} init seeds {pr['test_median'][m]:.4f}, range {pr['test_min'][m]:.4f}–{pr['test_max'][m]:.4f})"
                    if len(pr.get("per_seed", {})) > 1
                    else ""
                )
                lines.append(
                    f"- project {m} = {proj[m]:.4f}{spread} vs target {t} → {'MET' if proj[m] >= t else 'SHORT'}; "
                    f"rank {rk['project'][m]} of {len(rk)}"
                )
        boot = results["protocols"][proto].get("bootstrap", {})
        for pair, by_metric in boot.items():
            if " vs project" in pair:
                continue
            cells = [
                f"{m} {b['difference']:+.4f} [{b['ci95_low']:+.4f}, {b['ci95_high']:+.4f}] p={b['p_not_better']:.3f}"
                for m, b in by_metric.items()
            ]
            lines.append(f"- paired bootstrap ({BOOTSTRAP_RESAMPLES} resamples over users) {pair}: " + "; ".join(cells))
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m benchmarks.quality", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--data", help="MovieLens 100K directory (default ../shared/data/ml-100k)")
    ap.add_argument("--out", type=Path, default=RESULTS_DIR)
    ap.add_argument("--seeds", default="42,43,44", help="init seeds of the trained neural models (first = run_pipeline's)")
    ap.add_argument("--protocols", default="P1,P2,P3", help="P1 random, P2 temporal, P3 sessions of held-out users")
    ap.add_argument("--models", default=",".join(LABELS), help="subset of " + ",".join(LABELS))
    ap.add_argument("--no-als", action="store_true", help="skip ALS even when implicit is installed")
    ap.add_argument("--quick", action="store_true", help="one seed, small EASE/ALS grids (a smoke run, not for reporting)")
    ap.add_argument(
        "--variants",
        default="",
        help="further variants of the project's model, comma-separated, each reported as project[<variant>]: "
        "+-joined tokens userid|history|both, own|shared, mean|recency|attention, N=<history length>, <TrainConfig field>=<value>",
    )
    args = ap.parse_args(argv)
    started = time.perf_counter()
    path = movielens_dir(args.data)
    require_movielens(path)

    from benchmarks.baselines.tfrs_ids import BASELINES
    from benchmarks.movielens import load, protocol, session_protocol

    seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    lambdas, grid, iters = EASE_LAMBDAS, ALS_GRID, ALS_ITERATIONS
    svd_k, lfm_grid, lfm_epochs, knn_k = SVD_COMPONENTS, LIGHTFM_GRID, LIGHTFM_EPOCHS, KNN_NEIGHBOURS
    if args.quick:
        seeds = seeds[:1]
        lambdas, grid, iters = (100.0, 500.0), {"factors": (32,), "regularization": (0.1,), "alpha": (5.0,)}, (15,)
        svd_k, lfm_grid, lfm_epochs, knn_k = (
            (32, 128),
            {"components": (32,), "learning_rate": (0.05,), "item_alpha": (0.0,)},
            (10,),
            (50, 0),
        )
    wanted = set(args.models.split(","))
    variants = [v for v in args.variants.split(",") if v.strip()]
    if args.no_als:
        wanted.discard("als")
    machine = machine_description()
    data, prep = load(path)
    results: dict[str, Any] = {
        "dataset": {
            "source": data.source,
            "interactions": len(data.interactions),
            "users": prep.num_users,
            "items": prep.num_items,
        },
        "seeds": seeds,
        "targets": {f"{p} {m}": t for (p, m), t in TARGETS.items()},
        "tuning": "hyperparameters picked on a validation split carved from train (training.pipeline.split_with_validation); "
        "P1 by validation top-100 accuracy, P2 by validation NDCG@10; then refit on the whole training split",
        "quick": args.quick,
        "protocols": {},
    }
    with tempfile.TemporaryDirectory(prefix="bench-quality-") as tmp:
        for name in args.protocols.split(","):
            if name == "P3":
                p3 = session_protocol(prep, seed=42)
                log(f"P3: {len(p3.test.users)} held-out users, train {len(p3.train_rows):,} interactions of the others")
                models = run_session_baselines(prep, p3, wanted, lambdas, knn_k)
                if "project" in wanted:
                    models["project"] = run_project_sessions(data, p3, seeds, Path(tmp), "default")
                for variant in variants:
                    models[f"project[{variant}]"] = run_project_sessions(data, p3, seeds, Path(tmp), variant)
                results["protocols"]["P3"] = {
                    "split": {
                        "train": len(p3.train_rows),
                        "fit": len(p3.fit_rows),
                        "test_users": len(p3.test.users),
                        "validation_users": len(p3.validation.users),
                        "given_items": int(sum(len(g) for g in p3.test.given)),
                        "test_items": int(sum(len(t) for t in p3.test.target)),
                    },
                    "models": models,
                    "ranks": ranks(models, "P3"),
                    "bootstrap": bootstrap_table(models),
                }
                continue
            proto = protocol(prep, name)
            log(
                f"{name}: train {len(proto.split.train):,} (fit {len(proto.fit_rows):,} + val {len(proto.val_rows):,}), test {len(proto.split.test):,}"
            )
            models: dict[str, Any] = {}
            if "popularity" in wanted:
                models["popularity"] = run_popularity(prep, proto)
            for key, cfg in BASELINES.items():
                if key in wanted:
                    models[key] = run_tfrs_baseline(prep, proto, cfg, seeds)
            if "ease" in wanted:
                models["ease"] = run_ease(prep, proto, lambdas)
            if "als" in wanted:
                models["als"] = run_als(prep, proto, grid, iters, ALS_BASE_ITERATIONS)
            if "svd" in wanted:
                models["svd"] = run_svd(prep, proto, svd_k)
            if "lightfm" in wanted:
                models["lightfm"] = run_lightfm(data, prep, proto, lfm_grid, lfm_epochs)
            if "project" in wanted:
                models["project"] = run_project(data, prep, proto, seeds, Path(tmp))
            for variant in variants:
                models[f"project[{variant}]"] = run_project(data, prep, proto, seeds, Path(tmp), variant)
            results["protocols"][name] = {
                "split": {
                    "train": len(proto.split.train),
                    "fit": len(proto.fit_rows),
                    "validation": len(proto.val_rows),
                    "test": len(proto.split.test),
                },
                "models": models,
                "ranks": ranks(models, name),
            }
            if name == "P2":
                results["protocols"][name]["bootstrap"] = bootstrap_table(models)
    for p in results["protocols"].values():
        for m in p["models"].values():
            m.pop("_per_user", None)  # used by the bootstrap; not written out
    if args.no_als:
        for p in results["protocols"].values():
            p["models"]["als"] = {"skipped": "--no-als"}
    summary = summarize(results)
    png = args.out / "quality.png"
    if all(p in results["protocols"] for p in ("P1", "P2")):
        from benchmarks.plots import quality_bars

        quality_bars({p: v["models"] for p, v in results["protocols"].items()}, LABELS, png)
        results["plot"] = png.name
    write_results("quality", results, summary, out_dir=args.out, machine=machine, started=started)
    print(summary)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
