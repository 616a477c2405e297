"""read -> validate -> split -> fit -> evaluate -> export -> publish, in one call."""

from __future__ import annotations

import gc
import hashlib
import json
import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import tensorflow as tf
from rich.console import Console

from towers.spec import ModelSpec, ids_only_spec, movielens_spec, spec_for_columns, storefront_spec
from towers.tower import input_defaults
from training.config import TrainConfig
from training.data.tables import CanonicalData
from training.evaluate import EvalSample, eval_sample, evaluate_sample
from training.export import TableParts, VersionArtifact, write_parts, write_version
from training.freed_memory import release_freed_memory
from training.index import build_index
from training.index_queries import SessionQueries, index_session_queries
from training.metrics import bounded_batch
from training.model import embed
from training.prepared import PreparedData, make_dataset, prepare, sampling_probabilities, subset_inputs
from training.publish import PublishError, publish
from training.quality_gate import index_gate, quality_gate
from training.report import write_report
from training.scratch import scratch_folder
from training.split import Split
from training.stored_inputs import QueryVectors, StoredInputs
from training.stream.inputs import workers_of
from training.stream.prepare import FIT, TEST, VALIDATION, Prepared
from training.stream.reduce import item_counts, latest_items, seen_by_shard, user_counts
from training.stream.run import ExampleSource, prepare_run, split_of
from training.trainer import TrainResult, train

console = Console(stderr=True)

TRAIN = (FIT, VALIDATION)  # the training split: what evaluation's queries know, and the refit's examples


class QualityGateError(RuntimeError):
    """The new version is worse than the served one by more than the allowed margin."""


class IndexRecallError(QualityGateError):
    """The version's index misses its recall target within its time budget (``recsys train`` exits 5)."""


@contextmanager
def step(message: str) -> Iterator[None]:
    """A visible progress line per pipeline step, with its duration."""
    start = time.perf_counter()
    with console.status(f"[bold]{message}…"):
        yield
    console.log(f"{message}: done in {time.perf_counter() - start:.1f}s")


def default_spec(source: str, data: CanonicalData, embedding_dim: int = 64) -> ModelSpec:
    """The default feature spec for a source, restricted to the columns it has."""
    if source.startswith("synthetic"):
        base = storefront_spec(embedding_dim)
    elif source.startswith(("movielens", "tfds")):
        base = movielens_spec(embedding_dim)
    else:
        base = ids_only_spec(embedding_dim)
    return spec_for_columns(base, set(data.users.columns), set(data.items.columns))


def split_with_validation(prep: PreparedData, config: TrainConfig) -> tuple[Split, np.ndarray, np.ndarray]:
    """(split, fit rows, validation rows) of ``prep`` by ``config``'s split rules, computed as
    ``recsys train`` computes them (:func:`training.stream.prepare.prepare_shards`), for
    callers without a run folder (the benchmarks' baselines share the run's split)."""
    with tempfile.TemporaryDirectory(prefix="recsys-split-") as tmp:
        return split_of(prepare_run(prep, config, Path(tmp) / "prepared"))


def run_fingerprint(data: CanonicalData | str, spec: ModelSpec, config: TrainConfig) -> str:
    """Identifies a run: same data (or its fingerprint), spec and config -> same checkpoint folder."""
    fingerprint = data if isinstance(data, str) else data.fingerprint()
    blob = json.dumps(
        {"data": fingerprint, "spec": spec.model_dump(mode="json"), "config": config.model_dump(mode="json")},
        sort_keys=True,
    )
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class _Selection:
    """What the refit keeps of the run that chose its epoch count (not its model, whose tables
    and optimizer slots would otherwise stay in memory through the refit's)."""

    history: dict[str, list[float]]
    best_epoch: int
    metric: str
    train_seconds: float

    @classmethod
    def of(cls, result: TrainResult) -> _Selection:
        return cls(result.history, result.best_epoch, result.validation_metric, result.train_seconds)


@dataclass
class PipelineResult:
    version: str | None
    metrics: dict
    train: TrainResult
    spec: ModelSpec
    query_embeddings: QueryVectors | None = None  # per user row: the query vectors evaluation and the index read
    session_queries: SessionQueries | None = None  # the session queries the index was tuned on (history versions)


SEEN_SCHEMA = pa.schema([("user_id", pa.string()), ("item_rows", pa.list_(pa.int32()))])


def _tables_for_export(
    prep: PreparedData, prepared: Prepared, train_parts: tuple[int, ...], stored: StoredInputs, folder: Path
) -> tuple[pd.DataFrame, Path, Path]:
    """items.parquet (with the training popularity), users.parquet (the query inputs served
    for known users: ``stored``) and seen.parquet (a shard's users at a time, in no particular
    order), from the prepared shards: the per-user tables are written into ``folder`` a part
    at a time, once, and every publish of the version copies them."""
    items = prep.data.items.reset_index(drop=True).copy()
    items["item_id"] = prep.item_ids
    items["popularity"] = item_counts(prepared, train_parts)

    def seen_parts() -> Iterator[pa.Table]:
        for lists in seen_by_shard(prepared, train_parts):
            yield pa.table(
                {
                    "user_id": pa.array(prep.user_ids[lists.users], type=pa.string()),
                    "item_rows": pa.ListArray.from_arrays(pa.array(lists.offsets, type=pa.int32()), pa.array(lists.items)),
                }
            )

    return (
        items,
        write_parts(TableParts(len(stored), stored.tables), folder / "users.parquet"),
        write_parts(TableParts(None, seen_parts, schema=SEEN_SCHEMA), folder / "seen.parquet"),
    )


TOP_K_SCORES_BYTES = 256 << 20  # the scores one cross-check batch holds: batch x catalog, float32


def cross_check_batch(batch_size: int, num_items: int) -> int:
    """The cross-check's batch: the training batch, fewer queries where batch x catalog scores
    would pass :data:`TOP_K_SCORES_BYTES` (FactorizedTopK scores a batch against every item
    at once: 8,192 x 1M items is 32 GB). The metric is per query, so the batch does not change it."""
    return bounded_batch(batch_size, num_items, TOP_K_SCORES_BYTES)


def top_k_cross_check(result: TrainResult, sample: EvalSample, item_emb: np.ndarray, config: TrainConfig) -> dict:
    """FactorizedTopK over the whole catalog on the evaluation's sampled test pairs:
    TFRS's own number, reported beside ours so the two can be compared."""
    view = sample.view
    result.model.attach_top_k_metrics(item_emb)
    ds = make_dataset(
        view,
        sample.pairs,
        sampling_probabilities(sample.train_item_counts),
        cross_check_batch(config.batch_size, view.num_items),
        query_rows=sample.train,
    )
    out = result.model.evaluate(ds, return_dict=True, verbose=0)
    result.model.task.factorized_metrics = []
    return {k.split("/")[-1]: float(v) for k, v in out.items() if "factorized_top_k" in k}


def run_pipeline(
    data: CanonicalData,
    model_root: Path,
    config: TrainConfig,
    spec: ModelSpec | None = None,
    publish_version: bool = True,
    strategy: tf.distribute.Strategy | None = None,
    verbose: int | str = "auto",
    chief: bool = True,
    release_interactions: bool = False,
) -> PipelineResult:
    """Train, evaluate and (unless told not to) publish one version of ``data``.
    ``chief``: False on the other workers of a cluster (they wait for the chief's preparation).
    ``release_interactions``: the caller hands ``data`` over; once the run is prepared its
    interaction log is dropped (:meth:`CanonicalData.release_interactions`), since the
    rest of the run reads the shards (``recsys train`` does this)."""
    model_root = Path(model_root)
    spec = spec or default_spec(data.source, data)
    fingerprint, num_interactions = data.fingerprint(), data.num_interactions
    run_dir = model_root / ".runs" / run_fingerprint(fingerprint, spec, config)
    with step(f"preparing {num_interactions:,} interactions, {len(data.items):,} items, {len(data.users):,} users"):
        prep = prepare(data, spec)
        # the split and the examples' shards, written once beside the run (by the chief) and read by every worker
        prepared = prepare_run(prep, config, run_dir / "prepared", chief=chief, workers=workers_of(strategy))
    if release_interactions:
        data.release_interactions()
    rows = prepared.rows
    console.log(
        f"split={config.split.value}: fit {rows['fit']:,}, validation {rows['validation']:,}, test {rows['test']:,}; "
        f"{len(prepared.shards)} shard(s) in {prepared.root}"
    )

    refit = bool(config.refit_on_full_train and rows["validation"])

    def selection_run() -> TrainResult:  # on the fit rows, early stopping on the validation rows
        found = train(
            prep,
            spec,
            config,
            run_dir=run_dir,
            verbose=verbose,
            strategy=strategy,
            source=ExampleSource(prepared, (FIT,)),
            restore_best_epoch=not refit,  # a refit keeps only its epoch count: no copy of its best weights
        )
        console.log(f"trained {found.best_epoch} best epoch(s); {found.examples_per_second:,.0f} examples/s")
        return found

    selection_seconds = 0.0
    if refit:
        # The validation rows are the most recent training data: once they have
        # chosen the epoch count, train again on all of the training split.
        selection = _Selection.of(selection_run())  # its figures only: its model is not held through the refit
        gc.collect()  # a Keras model sits in reference cycles (its callbacks, its traced functions)
        release_freed_memory()
        console.log(f"refitting on the whole training split for {selection.best_epoch} epoch(s)")
        result = train(
            prep,
            spec,
            config.model_copy(update={"epochs": selection.best_epoch}),
            run_dir=run_dir / "refit",
            verbose=verbose,
            strategy=strategy,
            source=ExampleSource(prepared, TRAIN, validation=()),
        )
        result.history, result.best_epoch, result.validation_metric = selection.history, selection.best_epoch, selection.metric
        selection_seconds = selection.train_seconds
    else:
        result = selection_run()
    final_parts = TRAIN if refit else (FIT,)  # what the published towers were fitted on
    release_freed_memory()

    with step("evaluating on the test split"):
        # what users.parquet serves known users: each user's latest training items
        longest = max((f.history_length for f in prep.history), default=0)
        stored_inputs = StoredInputs(prep, latest_items(prepared, TRAIN, longest) if longest else None)
        # the user vectors of the rows the evaluation and the index's tuning sample, made as they are read
        user_emb = QueryVectors(result.model.query_tower, stored_inputs)
        item_emb = embed(result.model.candidate_tower, prep.item_inputs)
        sample = eval_sample(prep, prepared, TRAIN, (TEST,), config.max_eval_queries, config.seed)
        evaluation = evaluate_sample(sample, user_emb, item_emb, config, query_tower=result.model.query_tower)
        evaluation["factorized_top_k"] = top_k_cross_check(result, sample, item_emb, config)
    release_freed_memory()  # what the evaluation freed
    known_users = np.flatnonzero(user_counts(prepared, final_parts))
    query_defaults = input_defaults(spec.query, subset_inputs(prep.user_inputs, known_users))
    with step(f"building the ScaNN index over {prep.num_items:,} items"):
        # tuned on a seeded sample of the known users' query vectors and session queries (training.index_tuning)
        sessions = index_session_queries(
            lambda columns: embed(result.model.query_tower, columns),
            spec,
            stored_inputs,
            query_defaults,
            config.index_session_share,
            config.index_tuning_queries,
            config.seed,
        )
        searcher, index_info = build_index(
            item_emb,
            user_emb,
            target_recall=config.index_target_recall,
            max_us_per_query=config.index_max_us_per_query,
            sample_size=config.index_tuning_queries,
            seed=config.seed,
            sessions=None if sessions is None else sessions.vectors,
            session_share=config.index_session_share,
        )
    metrics = {
        "evaluation": evaluation,
        "training": {
            "best_epoch": result.best_epoch,
            "epochs_run": len(result.history.get("loss", [])),
            "train_seconds": result.train_seconds + selection_seconds,
            "refit_on_full_train": refit,
            "examples_per_second": result.examples_per_second,
            "history": result.history,
        },
        "index": index_info.__dict__,
    }
    _log_summary(evaluation, index_info.__dict__)

    version = None
    if publish_version:
        index_check = index_gate(index_info.__dict__, config.allow_low_recall)
        console.log(f"index gate: {index_check.message}")
        metrics["index_gate"] = {"passed": index_check.passed, "message": index_check.message}
        if not index_check.passed:
            raise IndexRecallError(f"index gate refused the new version: {index_check.message}")
    if publish_version and config.gate_max_drop is not None:
        gate = quality_gate(model_root, metrics, config.gate_max_drop)
        console.log(f"quality gate: {gate.message}")
        metrics["quality_gate"] = {"passed": gate.passed, "message": gate.message}
        if not gate.passed:
            raise QualityGateError(f"quality gate refused the new version: {gate.message}")
    if publish_version:
        try:  # the per-user tables, written once on the versions' volume: a full disk is a failed publish
            scratch = scratch_folder(model_root / ".runs", "export")
            items, users, seen = _tables_for_export(prep, prepared, TRAIN, stored_inputs, Path(scratch.name))
        except OSError as exc:
            raise PublishError(f"could not write the version's users and seen tables under {model_root}: {exc}") from exc
        train_items = np.flatnonzero(item_counts(prepared, final_parts))
        artifact = VersionArtifact(
            spec=spec,
            query_tower=result.model.query_tower,
            candidate_tower=result.model.candidate_tower,
            query_defaults=query_defaults,
            candidate_defaults=input_defaults(spec.candidate, subset_inputs(prep.item_inputs, train_items)),
            item_embeddings=item_emb,
            items=items,
            users=users,
            seen=seen,
            scratch=scratch,
            searcher=searcher,
            metrics=metrics,
            manifest_extra={
                "dataset": {
                    "source": data.source,
                    "fingerprint": fingerprint,
                    "num_interactions": num_interactions,
                    "bad_rows": int(data.report.count),
                },
                "training": config.model_dump(mode="json"),
                "index": index_info.__dict__,
            },
            write_report=lambda path: write_report(path, result.history, evaluation, index_info.__dict__, title=f"{data.source}"),
        )
        with step(f"publishing into {model_root}"):
            version = publish(model_root, lambda dest, v: write_version(dest, artifact, v), retain=config.retain_versions)
        console.log(f"published version {version}")
        shutil.rmtree(run_dir, ignore_errors=True)
    elif chief:
        shutil.rmtree(run_dir / "prepared", ignore_errors=True)  # the shards are the run's only large files
    return PipelineResult(
        version=version, metrics=metrics, train=result, spec=spec, query_embeddings=user_emb, session_queries=sessions
    )


def _log_summary(evaluation: dict, index: dict) -> None:
    model, pop = evaluation["model"], evaluation["popularity"]
    for key in ("top_100_accuracy", "recall_at_10", "recall_at_100", "ndcg_at_10", "coverage_at_10"):
        console.log(f"{key:>18}: model {model[key]:.4f}   popularity {pop[key]:.4f}")
    if index.get("recall_at_10_vs_exact") is not None:
        console.log(f"ScaNN {index['kind']} recall@10 vs exact: {index['recall_at_10_vs_exact']:.3f}")
