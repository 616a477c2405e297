"""The project's own model on P1 and P2 (``training.pipeline``), and its variants."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.quality.baselines import scored_on_test
from benchmarks.quality.shared import aggregate, floats, log


def pipeline_like_fit(prep, spec, config, split, fit_rows, val_rows):
    """What ``run_pipeline`` does between the split and the evaluation, for
    another init seed (its own seed also draws the P1 split, so it cannot be
    varied there): fit with early stopping on the validation carve, then, when
    the config asks for it (``refit_on_full_train``), train again on the whole
    training split for the epoch count early stopping chose."""
    from training.trainer import train

    start = time.perf_counter()
    refitting = bool(getattr(config, "refit_on_full_train", False) and len(val_rows))
    selection = train(prep, spec, config, fit_rows, val_rows, verbose=0, restore_best_epoch=not refitting)
    result = selection
    if refitting:
        refit = config.model_copy(update={"epochs": selection.best_epoch})
        result = train(prep, spec, refit, split.train, np.zeros(0, dtype=np.int64), verbose=0)
    return result, selection.best_epoch, time.perf_counter() - start


def project_variant(data, name: str, kind) -> tuple[Any, Any]:
    """(feature spec, TrainConfig) of a named variant of the project's model.

    ``name`` is ``+``-joined tokens over the MovieLens spec (ids + metadata):
    the query side ``userid`` (no history), ``history`` (history, no user id)
    or ``both``; the history's table ``own`` or ``shared`` (the candidate
    tower's item_id table); its pooling ``mean``, ``recency`` or
    ``attention``; ``N=<int>`` its length; ``cold_path=on|off`` the candidate
    tower's cold path; any other ``key=value`` is a ``TrainConfig`` field.
    ``default`` is ``training.pipeline.default_spec`` with the default
    ``TrainConfig``; joined with other tokens (``default+cold_path=off``) it is
    the base they apply to, which then takes ``cold_path`` and ``TrainConfig``
    tokens only.
    """
    from towers.spec import FeatureKind, ModelSpec, history_feature, movielens_spec, spec_for_columns
    from training.config import TrainConfig
    from training.pipeline import default_spec

    config = TrainConfig(split=kind)
    tokens = name.split("+")
    if "default" in tokens:
        spec, overrides, cold_path = default_spec(data.source, data), {}, None
        for token in tokens:
            key, _, value = token.partition("=")
            if key == "cold_path":
                cold_path = _on_off(value, name)
            elif key in TrainConfig.model_fields and value:
                overrides[key] = _config_value(key, value)
            elif token != "default":
                raise ValueError(f"variant {name!r}: 'default' takes cold_path=on|off and TrainConfig tokens only, not {token!r}")
        if cold_path is not None:
            spec = ModelSpec.model_validate(
                spec.model_copy(update={"candidate": spec.candidate.model_copy(update={"cold_path": cold_path})}).model_dump()
            )
        return spec, TrainConfig.model_validate({**config.model_dump(), **overrides})
    base = spec_for_columns(movielens_spec(), set(data.users.columns), set(data.items.columns))
    static = [f for f in base.query.features if f.kind is not FeatureKind.HISTORY]
    hist: dict[str, Any] = {}
    query, overrides = "both", {}
    for token in tokens:
        key, _, value = token.partition("=")
        if key == "cold_path":
            base = ModelSpec.model_validate(
                base.model_copy(
                    update={"candidate": base.candidate.model_copy(update={"cold_path": _on_off(value, name)})}
                ).model_dump()
            )
        elif token in ("userid", "history", "both"):
            query = token
        elif token in ("own", "shared"):
            hist["shared_embedding"] = token == "shared"
        elif token in ("mean", "recency", "attention"):
            hist["pooling"] = token
        elif key == "N":
            hist["history_length"] = int(value)
        elif value:
            overrides[key] = _config_value(key, value)
        else:
            raise ValueError(f"unknown variant token {token!r} in {name!r}")
    features = [f for f in static if query != "history" or f.name != "user_id"]
    if query != "userid":
        features.append(history_feature(base.embedding_dim, **hist))
    spec = base.model_copy(update={"query": base.query.model_copy(update={"features": features})})
    return spec, TrainConfig.model_validate({**config.model_dump(), **overrides})


def _on_off(value: str, name: str) -> bool:
    if value not in ("on", "off"):
        raise ValueError(f"variant {name!r}: cold_path takes on or off, not {value!r}")
    return value == "on"


def _config_value(key: str, value: str) -> Any:
    """A ``TrainConfig`` field's value from its token (booleans as 1/true/yes)."""
    from training.config import TrainConfig

    field = TrainConfig.model_fields[key]
    return value if field.annotation is not bool else value.lower() in ("1", "true", "yes")


def run_project(data, prep, proto, seeds: list[int], work: Path, variant: str = "default") -> dict[str, Any]:
    """The project's model (``variant``, see :func:`project_variant`) through
    ``run_pipeline`` (seed 42: the figure reported), then the same procedure
    for further init seeds through :func:`pipeline_like_fit` — checked to
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
        return with_latest(floats(evaluate_test(per_user, prep, proto, per_pair)), per_user)

    per_user_score, pair_score = scorers(result.train.model)
    mine, per_user = scored_on_test(per_user_score, prep, proto, pair_score)
    mine = with_latest(mine, per_user_score)
    reported = result.metrics["evaluation"]["model"]
    agreement = max(abs(mine[k] - float(reported[k])) for k in reported if k in mine)
    train_seconds = float(result.metrics["training"]["train_seconds"])
    runs, seconds, epochs = [mine], [train_seconds], [result.train.best_epoch]
    log(f"{proto.name} project[{variant}] (run_pipeline, seed {config.seed}): {train_seconds:.1f}s {mine}")
    split, fit_rows, val_rows = split_with_validation(own_prep, config)
    replica_diff = None
    if len(seeds) > 1:
        res, _, _ = pipeline_like_fit(own_prep, result.spec, config, split, fit_rows, val_rows)
        replica_diff = max(abs(v - mine[k]) for k, v in score(res.model).items())
        log(f"{proto.name} project: replica of run_pipeline at seed {config.seed} differs by at most {replica_diff:.2e}")
    for seed in seeds[1:]:
        cfg = config.model_copy(update={"seed": seed})  # init/shuffle seed only: the split rows stay those of seed 42
        res, best, secs = pipeline_like_fit(own_prep, result.spec, cfg, split, fit_rows, val_rows)
        runs.append(score(res.model))
        seconds.append(secs)
        epochs.append(best)
        log(f"{proto.name} project[{variant}] (same procedure, init seed {seed}): {secs:.1f}s {runs[-1]}")
    out = aggregate(runs)
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
            "pipeline_reported_metrics": floats(reported),
            "pipeline_popularity_metrics": floats(result.metrics["evaluation"]["popularity"]),
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
