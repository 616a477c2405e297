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
- ``project``: the project's default MovieLens model (ids + metadata) via
  ``training.pipeline.run_pipeline`` (its own early stopping on its
  validation carve); further init seeds through the same trainer.

Writes benchmarks/results/quality.json, quality.md and quality.png.
"""

from __future__ import annotations

import argparse
import itertools
from dataclasses import replace
import sys
import tempfile
import time
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
    "project": "project (run_pipeline)",
}
TARGETS = {("P1", "top_100_accuracy"): 0.40, ("P2", "recall_at_10"): 0.11, ("P2", "ndcg_at_10"): 0.18}
EASE_LAMBDAS = (10.0, 25.0, 50.0, 100.0, 200.0, 300.0, 500.0, 750.0, 1000.0, 2000.0, 5000.0)
ALS_GRID = {"factors": (8, 16, 32, 64, 128, 256), "regularization": (0.1, 1.0, 10.0, 100.0), "alpha": (0.5, 1.0, 5.0, 20.0)}
ALS_ITERATIONS = (5, 10, 15, 30, 50)
ALS_BASE_ITERATIONS = 15


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


# --------------------------------------------------------------------------- models
def run_popularity(prep, proto) -> dict[str, Any]:
    from benchmarks.movielens import evaluate_test
    from training.metrics import popularity_score_fn

    start = time.perf_counter()
    score = popularity_score_fn(prep.item_rows[proto.split.train], prep.num_items)
    seconds = time.perf_counter() - start
    return {"test": _floats(evaluate_test(score, prep, proto)), "train_seconds": seconds, "hyperparameters": {}}


def run_tfrs_baseline(prep, proto, config, seeds: list[int]) -> dict[str, Any]:
    from benchmarks.baselines.tfrs_ids import build_model, embeddings, eval_dataset, train_dataset
    from benchmarks.movielens import evaluate_test, published_order
    from training.metrics import embedding_score_fn

    rows = published_order(proto.split.train)
    users, items = prep.user_ids[prep.user_rows[rows]], prep.item_ids[prep.item_rows[rows]]
    runs, seconds, cross = [], [], None
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
        runs.append(_floats(evaluate_test(embedding_score_fn(ue, ie), prep, proto)))
        if cross is None and proto.name == "P1":
            test = proto.split.test
            out = model.evaluate(
                eval_dataset(prep.user_ids[prep.user_rows[test]], prep.item_ids[prep.item_rows[test]]), return_dict=True, verbose=0
            )
            cross = {k.split("/")[-1]: float(v) for k, v in out.items() if "top_" in k}
        log(f"{proto.name} {config.name} seed {seed}: {seconds[-1]:.1f}s {runs[-1]}")
    res = _aggregate(runs)
    res.update(
        {
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


def run_ease(prep, proto, lambdas) -> dict[str, Any]:
    from benchmarks.baselines.ease import Ease, interaction_matrix
    from benchmarks.movielens import TUNING_METRIC, evaluate_test, evaluate_validation

    metric = TUNING_METRIC[proto.name]
    tune_start = time.perf_counter()
    x_fit = interaction_matrix(prep.user_rows[proto.fit_rows], prep.item_rows[proto.fit_rows], prep.num_users, prep.num_items)
    sweep = []
    for lam in lambdas:
        val = evaluate_validation(Ease.fit(x_fit, lam).score, prep, proto)
        sweep.append({"lambda": lam, f"val_{metric}": float(val[metric])})
    tune_seconds = time.perf_counter() - tune_start
    best = max(sweep, key=lambda r: r[f"val_{metric}"])
    start = time.perf_counter()
    x = interaction_matrix(prep.user_rows[proto.split.train], prep.item_rows[proto.split.train], prep.num_users, prep.num_items)
    model = Ease.fit(x, best["lambda"])
    seconds = time.perf_counter() - start
    test = _floats(evaluate_test(model.score, prep, proto))
    log(f"{proto.name} ease lambda={best['lambda']}: {test}")
    return {
        "test": test,
        "train_seconds": seconds,
        "tuning_seconds": tune_seconds,
        "hyperparameters": {"lambda": best["lambda"]},
        "validation": {"metric": metric, "sweep": sweep},
    }


def run_als(prep, proto, grid, iterations, base_iterations, seed: int = 42) -> dict[str, Any]:
    from benchmarks.baselines.als import available, fit_als
    from benchmarks.movielens import TUNING_METRIC, evaluate_test, evaluate_validation

    ok, version = available()
    if not ok:
        log(f"ALS skipped: {version}")
        return {"skipped": version}
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
    model = fit_als(prep.user_rows[proto.split.train], prep.item_rows[proto.split.train], prep.num_users, prep.num_items, seed=seed, **hp)
    seconds = time.perf_counter() - start
    test = _floats(evaluate_test(model.score, prep, proto))
    log(f"{proto.name} als {hp}: {test}")
    return {
        "test": test,
        "train_seconds": seconds,
        "tuning_seconds": tune_seconds,
        "hyperparameters": hp,
        "implicit_version": version,
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


def run_project(data, prep, proto, seeds: list[int], work: Path) -> dict[str, Any]:
    """The project's default model through ``run_pipeline`` (seed 42: the
    figure reported), then the same procedure for further init seeds through
    :func:`_pipeline_like_fit` — checked to reproduce run_pipeline at seed 42."""
    from benchmarks.movielens import evaluate_test
    from training.config import TrainConfig
    from training.metrics import embedding_score_fn
    from training.model import embed
    from training.pipeline import run_pipeline, split_with_validation
    from training.prepared import prepare

    config = TrainConfig(split=proto.kind)
    start = time.perf_counter()
    result = run_pipeline(data, work / f"project-{proto.name}", config, publish_version=False, verbose=0)
    wall = time.perf_counter() - start
    own_prep = prepare(data, result.spec)

    def score(model) -> dict[str, float]:
        ue = embed(model.query_tower, own_prep.user_inputs)
        ie = embed(model.candidate_tower, own_prep.item_inputs)
        return _floats(evaluate_test(embedding_score_fn(ue, ie), prep, proto))

    mine = score(result.train.model)
    reported = result.metrics["evaluation"]["model"]
    agreement = max(abs(mine[k] - float(reported[k])) for k in reported)
    train_seconds = float(result.metrics["training"]["train_seconds"])
    runs, seconds, epochs = [mine], [train_seconds], [result.train.best_epoch]
    log(f"{proto.name} project (run_pipeline, seed {config.seed}): {train_seconds:.1f}s {mine}")
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
        log(f"{proto.name} project (same procedure, init seed {seed}): {secs:.1f}s {runs[-1]}")
    out = _aggregate(runs)
    out.update(
        {
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
                "feature_spec": "towers.spec.movielens_spec (ids + age, gender, occupation, zip prefix | genres, title, year)",
                "config": config.model_dump(mode="json"),
            },
        }
    )
    return out


# --------------------------------------------------------------------------- report
def ranks(models: dict[str, dict[str, Any]], proto: str) -> dict[str, dict[str, int]]:
    """1 = best, per headline metric, among models that ran."""
    metrics = [m for (p, m) in TARGETS if p == proto]
    out: dict[str, dict[str, int]] = {}
    ran = {n: r for n, r in models.items() if "test" in r}
    for metric in metrics:
        order = sorted(ran, key=lambda n: -ran[n]["test"][metric])
        for i, n in enumerate(order, 1):
            out.setdefault(n, {})[metric] = i
    return out


def summarize(results: dict[str, Any]) -> str:
    lines = ["## Quality on MovieLens 100K (test split; seed-42 runs, the spread over init seeds in the notes)", ""]
    for proto, metrics in (("P1", ("top_10_accuracy", "top_50_accuracy", "top_100_accuracy")), ("P2", ("recall_at_10", "recall_at_100", "ndcg_at_10", "coverage_at_10"))):
        if proto not in results["protocols"]:
            continue
        models = results["protocols"][proto]["models"]
        rk = results["protocols"][proto]["ranks"]
        rows = []
        for name, label in LABELS.items():
            r = models.get(name)
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
            rows.append([label, *[r["test"][m] for m in metrics], round(r["train_seconds"], 2), "; ".join(x for x in (hp_s, spread) if x)])
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
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.quality", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", help="MovieLens 100K directory (default ../shared/data/ml-100k)")
    ap.add_argument("--out", type=Path, default=RESULTS_DIR)
    ap.add_argument("--seeds", default="42,43,44", help="init seeds of the trained neural models (first = run_pipeline's)")
    ap.add_argument("--protocols", default="P1,P2")
    ap.add_argument("--models", default=",".join(LABELS), help="subset of " + ",".join(LABELS))
    ap.add_argument("--no-als", action="store_true", help="skip ALS even when implicit is installed")
    ap.add_argument("--quick", action="store_true", help="one seed, small EASE/ALS grids (a smoke run, not for reporting)")
    args = ap.parse_args(argv)
    started = time.perf_counter()
    path = movielens_dir(args.data)
    require_movielens(path)

    from benchmarks.baselines.tfrs_ids import BASELINES
    from benchmarks.movielens import load, protocol

    seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    lambdas, grid, iters = EASE_LAMBDAS, ALS_GRID, ALS_ITERATIONS
    if args.quick:
        seeds = seeds[:1]
        lambdas, grid, iters = (100.0, 500.0), {"factors": (32,), "regularization": (0.1,), "alpha": (5.0,)}, (15,)
    wanted = set(args.models.split(","))
    if args.no_als:
        wanted.discard("als")
    machine = machine_description()
    data, prep = load(path)
    results: dict[str, Any] = {
        "dataset": {"source": data.source, "interactions": len(data.interactions), "users": prep.num_users, "items": prep.num_items},
        "seeds": seeds,
        "targets": {f"{p} {m}": t for (p, m), t in TARGETS.items()},
        "tuning": "hyperparameters picked on a validation split carved from train (training.pipeline.split_with_validation); "
        "P1 by validation top-100 accuracy, P2 by validation NDCG@10; then refit on the whole training split",
        "quick": args.quick,
        "protocols": {},
    }
    with tempfile.TemporaryDirectory(prefix="bench-quality-") as tmp:
        for name in args.protocols.split(","):
            proto = protocol(prep, name)
            log(f"{name}: train {len(proto.split.train):,} (fit {len(proto.fit_rows):,} + val {len(proto.val_rows):,}), test {len(proto.split.test):,}")
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
            if "project" in wanted:
                models["project"] = run_project(data, prep, proto, seeds, Path(tmp))
            results["protocols"][name] = {
                "split": {"train": len(proto.split.train), "fit": len(proto.fit_rows), "validation": len(proto.val_rows), "test": len(proto.split.test)},
                "models": models,
                "ranks": ranks(models, name),
            }
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
