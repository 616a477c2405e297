"""``python -m benchmarks.quality``: the command line (see the package docstring)."""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

import benchmarks.quality
from benchmarks.common import RESULTS_DIR, machine_description, movielens_dir, require_movielens, write_results
from benchmarks.labels import LABELS
from benchmarks.plots import quality_bars
from benchmarks.quality.baselines import run_als, run_ease, run_lightfm, run_popularity, run_svd, run_tfrs_baseline
from benchmarks.quality.project import run_project
from benchmarks.quality.report import bootstrap_table, ranks, summarize
from benchmarks.quality.sessions import run_project_sessions, run_session_baselines
from benchmarks.quality.shared import (
    ALS_BASE_ITERATIONS,
    ALS_GRID,
    ALS_ITERATIONS,
    EASE_LAMBDAS,
    KNN_NEIGHBOURS,
    LIGHTFM_EPOCHS,
    LIGHTFM_GRID,
    SVD_COMPONENTS,
    TARGETS,
    log,
)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m benchmarks.quality",
        description=benchmarks.quality.__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
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
        "+-joined tokens userid|history|both, own|shared, mean|recency|attention, N=<history length>, cold_path=on|off, "
        "<TrainConfig field>=<value>; 'default+...' applies cold_path and TrainConfig tokens to the default spec",
    )
    args = ap.parse_args(argv)
    started = time.perf_counter()
    path = movielens_dir(args.data)
    require_movielens(path)

    from benchmarks.baselines.tfrs_ids import BASELINES
    from benchmarks.movielens import load, protocol, session_protocol

    seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    lambdas: tuple[float, ...] = EASE_LAMBDAS
    grid: dict[str, tuple[float, ...]] = dict(ALS_GRID)
    iters: tuple[int, ...] = ALS_ITERATIONS
    svd_k: tuple[int, ...] = SVD_COMPONENTS
    lfm_grid: dict[str, tuple[float, ...]] = dict(LIGHTFM_GRID)
    lfm_epochs: tuple[int, ...] = LIGHTFM_EPOCHS
    knn_k: tuple[int, ...] = KNN_NEIGHBOURS
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
    models: dict[str, Any]
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
            models = {}
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
        quality_bars({p: v["models"] for p, v in results["protocols"].items()}, LABELS, png)
        results["plot"] = png.name
    write_results("quality", results, summary, out_dir=args.out, machine=machine, started=started)
    print(summary)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
