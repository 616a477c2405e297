"""The ``recsys`` console script (DESIGN.md section 6)."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, NoReturn

import typer

import recsys  # TF_USE_LEGACY_KERAS before anything imports TensorFlow

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Two-tower retrieval: train and publish model versions, serve them over HTTP.",
)


def _fail(message: str, code: int = 2) -> NoReturn:
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    raise typer.Exit(code)


@contextlib.contextmanager
def _exit_codes(codes: dict[type[Exception], int]) -> Iterator[None]:
    """An exception of a listed type ends the command with its message and exit code
    (the first listed type it is an instance of: list subclasses before their bases)."""
    try:
        yield
    except tuple(codes) as exc:
        _fail(str(exc), code=next(code for kind, code in codes.items() if isinstance(exc, kind)))


@contextlib.contextmanager
def _log_folder(model_root: Path) -> Iterator[Path]:
    """A folder for the run's interaction log as Parquet files (sources that can write one do:
    the log is then never held in memory), on the model root's volume, removed at the end
    (and by a later run on this host if this one is killed: :mod:`training.scratch`)."""
    from training.scratch import scratch_folder

    with scratch_folder(model_root / ".runs", "log") as folder:
        yield Path(folder)


@app.command()
def train(
    data: Annotated[
        str, typer.Option(envvar="RECSYS_TRAIN_DATA", help="synthetic | movielens:PATH | tfds:NAME | files:SPEC.yaml")
    ] = "synthetic",
    model_root: Annotated[Path, typer.Option(envvar="RECSYS_MODEL_ROOT", help="where versions are published")] = Path("models"),
    epochs: Annotated[
        int,
        typer.Option(min=1, envvar="RECSYS_TRAIN_EPOCHS", help="maximum epochs; early stopping on validation may stop sooner"),
    ] = 30,
    seed: Annotated[int, typer.Option(help="seed for data generation, splits and initialisation")] = 42,
    items: Annotated[int, typer.Option(min=1, envvar="RECSYS_TRAIN_ITEMS", help="synthetic: catalog size")] = 5_000,
    users: Annotated[int, typer.Option(min=1, envvar="RECSYS_TRAIN_USERS", help="synthetic: number of users")] = 20_000,
    interactions: Annotated[
        int, typer.Option(min=1, envvar="RECSYS_TRAIN_INTERACTIONS", help="synthetic: number of interactions")
    ] = 1_000_000,
    feature_spec: Annotated[Path | None, typer.Option(help="YAML/JSON feature spec (default: per source)")] = None,
    embedding_dim: Annotated[int, typer.Option(min=2, help="output embedding size")] = 64,
    batch_size: Annotated[int, typer.Option(min=8)] = 1024,
    learning_rate: Annotated[float, typer.Option(min=0.0)] = 0.005,
    split: Annotated[str, typer.Option(help="temporal (P2) or random (P1)")] = "temporal",
    max_bad_rows: Annotated[int, typer.Option(min=0, help="bad input rows tolerated (reported) before refusing")] = 0,
    retain: Annotated[int, typer.Option(min=1, help="published versions kept")] = 3,
    config: Annotated[Path | None, typer.Option(help="JSON/YAML file of further TrainConfig fields")] = None,
    no_publish: Annotated[bool, typer.Option("--no-publish", help="train and evaluate only")] = False,
    gate_max_drop: Annotated[
        float | None,
        typer.Option(min=0.0, help="quality gate: refuse to publish if the served version is better by more than this"),
    ] = None,
    index_target_recall: Annotated[
        float | None,
        typer.Option(
            min=0.0, max=1.0, help="recall@10 vs exact the ScaNN index must reach on held-out known users (default 0.95)"
        ),
    ] = None,
    allow_low_recall: Annotated[
        bool, typer.Option("--allow-low-recall", help="publish even if the index misses its recall target within its time budget")
    ] = False,
) -> None:
    """Train, evaluate and atomically publish one model version."""
    recsys.prepare_training_runtime()  # before TensorFlow is imported
    import yaml

    from towers.spec import ModelSpec
    from training.config import TrainConfig
    from training.data.bad_rows import DataError
    from training.data.sources import load_source
    from training.distribute import cluster_from_environment
    from training.pipeline import IndexRecallError, QualityGateError, run_pipeline
    from training.publish import PublishError

    extra = yaml.safe_load(config.read_text()) if config else {}
    try:
        cfg = TrainConfig(
            **{
                "epochs": epochs,
                "seed": seed,
                "batch_size": batch_size,
                "learning_rate": learning_rate,
                "split": split,
                "max_bad_rows": max_bad_rows,
                "retain_versions": retain,
                "gate_max_drop": gate_max_drop,
                **({"index_target_recall": index_target_recall} if index_target_recall is not None else {}),
                **({"allow_low_recall": True} if allow_low_recall else {}),
                **(extra or {}),
            }
        )
        spec = ModelSpec.from_file(feature_spec) if feature_spec else None
    except (ValueError, OSError) as exc:
        _fail(str(exc))
    cluster = cluster_from_environment()
    with (
        _exit_codes({DataError: 2, PublishError: 3, IndexRecallError: 5, QualityGateError: 4}),
        _log_folder(model_root) as log_dir,
    ):
        dataset = load_source(
            data, items=items, users=users, interactions=interactions, seed=seed, max_bad_rows=cfg.max_bad_rows, log_dir=log_dir
        )
        if dataset.report.count:
            typer.echo(
                f"skipped bad rows (within --max-bad-rows {cfg.max_bad_rows}):\n{dataset.report.summary(show=1000)}", err=True
            )
        if spec is None:
            from training.pipeline import default_spec

            spec = default_spec(dataset.source, dataset, embedding_dim)
        result = run_pipeline(
            dataset,
            model_root,
            cfg,
            spec=spec,
            publish_version=cluster.is_chief and not no_publish,
            strategy=cluster.strategy(),
            chief=cluster.is_chief,
            release_interactions=True,  # the shards hold the log once the run is prepared
        )
    summary = {"version": result.version, "evaluation": result.metrics["evaluation"]["model"]}
    typer.echo(json.dumps(summary, indent=2))


@app.command()
def compare(
    model_root: Annotated[Path, typer.Option(envvar="RECSYS_MODEL_ROOT", help="model root holding the versions")] = Path(
        "models"
    ),
    old: Annotated[str | None, typer.Argument(help="version to compare from (default: the one before LATEST)")] = None,
    new: Annotated[str | None, typer.Argument(help="version to compare to (default: LATEST)")] = None,
    max_drop: Annotated[
        float | None, typer.Option(min=0.0, help="exit 4 if NEW's primary metric is below OLD's by more than this")
    ] = None,
) -> None:
    """Print two published versions' evaluation figures side by side."""
    from rich.console import Console
    from rich.table import Table

    from artifact.latest import LatestError, list_versions, read_latest
    from artifact.manifest import ManifestError
    from training.quality_gate import comparison_rows, drop_of, read_manifest

    versions = list_versions(model_root)
    try:
        new = new or read_latest(model_root)
    except LatestError as exc:
        _fail(exc.detail)
    if new is None:
        _fail(f"no published version under {model_root}")
    if old is None:
        earlier = [v for v in versions if new.isdigit() and int(v) < int(new)]
        if not earlier:
            _fail(f"no version older than {new} to compare with")
        old = earlier[-1]
    try:  # a malformed manifest, or one of another format: exit 2 with the field and value
        a, b = read_manifest(model_root, old), read_manifest(model_root, new)
    except ManifestError as exc:
        _fail(exc.detail)
    table = Table(title=f"{model_root}: {old} -> {new}")
    for col in ("metric", old, new, "change"):
        table.add_column(col, justify="right" if col != "metric" else "left")

    def fmt(v: float | None) -> str:
        return "-" if v is None else f"{v:.4f}"

    for name, x, y, d in comparison_rows(a, b):
        table.add_row(name, fmt(x), fmt(y), "-" if d is None else f"{d:+.4f}")
    Console().print(table)
    if max_drop is not None:
        drop = drop_of(a, b)
        if drop is None:
            _fail(f"version {old} or {new} records no evaluation to compare (--max-drop)")
        elif drop[1] > max_drop:
            _fail(f"{drop[0]} dropped by {drop[1]:.4f} (allowed {max_drop:.4f})", code=4)


@app.command("update-catalog")
def update_catalog(
    items: Annotated[
        Path, typer.Option(envvar="RECSYS_CATALOG_ITEMS", help="item table: CSV, Parquet, or a YAML spec with an items: entry")
    ],
    model_root: Annotated[Path, typer.Option(envvar="RECSYS_MODEL_ROOT", help="model root holding the versions")] = Path(
        "models"
    ),
    base: Annotated[str | None, typer.Option(help="version to update (default: the one LATEST names)")] = None,
    max_bad_rows: Annotated[int, typer.Option(min=0, help="bad item rows tolerated (reported) before refusing")] = 0,
    allow_large_change: Annotated[
        bool, typer.Option("--allow-large-change", help="publish even if the table retires more than half of the catalog")
    ] = False,
    allow_low_recall: Annotated[
        bool, typer.Option("--allow-low-recall", help="publish even if the index misses its recall target within its time budget")
    ] = False,
    retain: Annotated[int, typer.Option(min=1, help="published versions kept")] = 3,
) -> None:
    """Publish a version with a new item catalog from the served towers, without training.

    Exit codes: 0 published; 2 the item table is invalid; 3 publishing failed;
    5 the index misses its recall target; 6 the base version is missing or fails
    verification; 7 the table retires more than half of the catalog; 8 LATEST
    moved to another version while the update ran (run it again)."""
    from training.catalog_base import BaseVersionError
    from training.catalog_update import CatalogIndexError, LargeChangeError, UpdateOptions
    from training.catalog_update import update_catalog as run_update
    from training.data.bad_rows import DataError
    from training.publish import LatestMovedError, PublishError

    options = UpdateOptions(
        base=base,
        max_bad_rows=max_bad_rows,
        allow_large_change=allow_large_change,
        allow_low_recall=allow_low_recall,
        retain=retain,
    )
    codes = {DataError: 2, LatestMovedError: 8, PublishError: 3, CatalogIndexError: 5, BaseVersionError: 6, LargeChangeError: 7}
    with _exit_codes(codes):
        result = run_update(model_root, items, options)
    typer.echo(
        json.dumps(
            {
                "version": result.version,
                "parent_version": result.metrics["catalog_update"]["parent_version"],
                **result.diff.counts(),
                "recall_at_10_vs_exact": result.metrics["index"]["recall_at_10_vs_exact"],
            },
            indent=2,
        )
    )


@app.command()
def serve(
    model_root: Annotated[Path | None, typer.Option(help="model root to serve (RECSYS_MODEL_ROOT)")] = None,
    host: Annotated[str | None, typer.Option(help="bind address (RECSYS_HOST)")] = None,
    port: Annotated[int | None, typer.Option(min=1, max=65535, help="port (RECSYS_PORT)")] = None,
    workers: Annotated[int | None, typer.Option(min=1, help="uvicorn worker processes (RECSYS_WORKERS)")] = None,
) -> None:
    """Serve the newest published version over HTTP, hot-swapping newer ones."""
    from serving.main import run

    overrides = {
        k: v for k, v in {"model_root": model_root, "host": host, "port": port, "workers": workers}.items() if v is not None
    }
    run(overrides)


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
