"""P3: sessions of held-out users; the session baselines and the project's model given the
users' first items."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.quality.project import pipeline_like_fit, project_variant
from benchmarks.quality.shared import aggregate, log


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
        res, best, secs = pipeline_like_fit(prep, spec, config.model_copy(update={"seed": seed}), split, fit_rows, val_rows)
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
    out = aggregate(runs)
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
