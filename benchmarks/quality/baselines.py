"""The baselines on P1 and P2: popularity, the TFRS seed and tutorial models, EASE, ALS, SVD, LightFM;
each tuned on the validation carve and scored on test by the same code."""

from __future__ import annotations

import itertools
import time
from dataclasses import replace
from typing import Any

from benchmarks.quality.shared import aggregate, floats, log


def scored_on_test(score, prep, proto, pair_score=None) -> tuple[dict[str, float], dict[str, Any]]:
    """Test metrics of a score function (P1 per pair with ``pair_score``), and
    its per-user P2 values (for the paired bootstrap; kept out of the JSON)."""
    from benchmarks.movielens import evaluate_test, per_user_test

    return floats(evaluate_test(score, prep, proto, pair_score)), per_user_test(score, prep, proto)


# --------------------------------------------------------------------------- models
def run_popularity(prep, proto) -> dict[str, Any]:
    from training.metrics import popularity_score_fn

    start = time.perf_counter()
    score = popularity_score_fn(prep.item_rows[proto.split.train], prep.num_items)
    seconds = time.perf_counter() - start
    test, per_user = scored_on_test(score, prep, proto)
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
        test, values = scored_on_test(embedding_score_fn(ue, ie), prep, proto)
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
    res = aggregate(runs)
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


def refit_and_test(prep, proto, refit, *, tune_seconds: float, hyperparameters: dict, metric: str, sweep: list) -> dict[str, Any]:
    """The chosen hyperparameters' model refit on the whole training split (``refit()``),
    timed and tested, in the result shape every tuned baseline reports."""
    start = time.perf_counter()
    model = refit()
    seconds = time.perf_counter() - start
    test, per_user = scored_on_test(model.score, prep, proto)
    return {
        "test": test,
        "_per_user": per_user,
        "train_seconds": seconds,
        "tuning_seconds": tune_seconds,
        "hyperparameters": hyperparameters,
        "validation": {"metric": metric, "sweep": sweep},
    }


def tuned_one_knob(prep, proto, what: str, values, fit) -> tuple[dict[str, Any], Any]:
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
    result = refit_and_test(
        prep,
        proto,
        lambda: fit(matrix(proto.split.train), best),
        tune_seconds=tune_seconds,
        hyperparameters={what: best},
        metric=metric,
        sweep=sweep,
    )
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

    result, best = tuned_one_knob(prep, proto, "lambda", lambdas, Ease.fit)
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
    train_users, train_items = prep.user_rows[proto.split.train], prep.item_rows[proto.split.train]
    result = refit_and_test(
        prep,
        proto,
        lambda: fit_als(train_users, train_items, prep.num_users, prep.num_items, seed=seed, **hp),
        tune_seconds=tune_seconds,
        hyperparameters=hp,
        metric=metric,
        sweep=sweep,
    )
    log(f"{proto.name} als {hp}: {result['test']}")
    return {**result, "implicit_version": version}


def run_svd(prep, proto, components, seed: int = 42) -> dict[str, Any]:
    from benchmarks.baselines.svd import fit_svd

    result, best = tuned_one_knob(prep, proto, "components", components, lambda x, k: fit_svd(x, k, seed))
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
    train_users, train_items = prep.user_rows[proto.split.train], prep.item_rows[proto.split.train]
    result = refit_and_test(
        prep,
        proto,
        lambda: LightFmWarp(train_users, train_items, prep.num_users, prep.num_items, features, seed=seed, **hp).train(
            best["epochs"]
        ),
        tune_seconds=tune_seconds,
        hyperparameters={**hp, "epochs": best["epochs"], "item_features": f"identity + {len(tokens)} metadata tokens"},
        metric=metric,
        sweep=sweep,
    )
    log(f"{proto.name} lightfm {best}: {result['test']}")
    return {**result, "lightfm_version": version}
