"""Write one model version's files (docs/CONTRACTS.md section 3) into a folder.

The folder is a publish staging folder; :mod:`training.publish` makes it
visible. Every file is listed with its sha256 in ``manifest.json``, which is
written last.
"""

from __future__ import annotations

import json
import platform
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import tensorflow as tf

from artifact.checksums import MANIFEST, tree_checksums
from artifact.manifest import IndexSection, InputSpec, Manifest
from towers.features import input_dtype
from towers.spec import FeatureSpec, ModelSpec
from training.index import save_searcher


@dataclass(frozen=True)
class TableParts:
    """A table written a part at a time (``parts()`` yields them in order): a per-user table of a
    million users is never put together in memory. ``schema``: the table's when no part comes."""

    rows: int | None  # the rows the parts must add up to (None: not known beforehand)
    parts: Callable[[], Iterator[pa.Table]]
    schema: pa.Schema | None = None


@dataclass
class VersionArtifact:
    """Everything a version is made of, in memory."""

    spec: ModelSpec
    query_tower: tf.keras.Model | None  # None: copied from ``towers_from``
    candidate_tower: tf.keras.Model | None
    query_defaults: dict[str, str | float]
    candidate_defaults: dict[str, str | float]
    item_embeddings: np.ndarray
    items: pd.DataFrame  # row i = index row i: item_id, popularity, metadata
    users: pd.DataFrame | Path  # user_id + raw query inputs (a Path: a Parquet file written beforehand, copied)
    seen: pd.DataFrame | Path  # user_id, item_rows
    searcher: object
    metrics: dict = field(default_factory=dict)
    # the manifest's other sections, named by artifact.manifest.Manifest: dataset, training, index
    manifest_extra: dict = field(default_factory=dict)
    write_report: Callable[[Path], object] | None = None
    kind: Literal["training", "catalog_update"] = "training"  # the manifest's top-level ``kind``: "training" | "catalog_update"
    parent_version: str | None = None  # the version a catalog update was made from
    towers_from: Path | None = None  # a published version whose query_model/ and candidate_model/ are copied as they are
    scratch: object | None = None  # what keeps the files ``users`` / ``seen`` name alive (a TemporaryDirectory)


def export_tower(tower: tf.keras.Model, features: list[FeatureSpec], path: Path) -> None:
    """SavedModel with signature ``serving_default(**raw_features) -> {"embedding"}``."""
    names = [f.name for f in features]
    signature = [tf.TensorSpec([None], input_dtype(f), name=f.name) for f in features]

    @tf.function(input_signature=signature)
    def serve(*args: tf.Tensor) -> dict[str, tf.Tensor]:
        return {"embedding": tower(dict(zip(names, args, strict=True)), training=False)}

    module = tf.Module()
    module.tower = tower
    module.serve = serve
    tf.saved_model.save(module, str(path), signatures={"serving_default": serve})


def _inputs(features: list[FeatureSpec], defaults: dict[str, str | float]) -> list[InputSpec]:
    return [InputSpec(name=f.name, dtype=f.kind.dtype, kind=f.kind.value, default=_json(defaults[f.name])) for f in features]


def _json(value: object) -> Any:
    """``value`` as the JSON it is written as (numpy scalars as numbers: what metrics.json holds)."""
    return json.loads(json.dumps(value, default=float))


def _library_versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for dist in ("tensorflow", "tf-keras", "tensorflow-recommenders", "scann", "numpy"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = "unknown"
    return out


def _write_parquet(frame: pd.DataFrame | Path, path: Path) -> None:
    if isinstance(frame, Path):
        shutil.copyfile(frame, path)
        return
    pq.write_table(pa.Table.from_pandas(frame.reset_index(drop=True), preserve_index=False), path)


def write_parts(table: TableParts, path: Path) -> Path:
    """``table`` written into the Parquet file ``path``, a part at a time (``path`` returned)."""
    writer: pq.ParquetWriter | None = None
    written = 0
    try:
        for part in table.parts():
            if writer is None:
                writer = pq.ParquetWriter(path, table.schema or part.schema)
            writer.write_table(part.cast(writer.schema))
            written += part.num_rows
        if writer is None:
            if table.schema is None:
                raise ValueError(f"{path.name}: no part and no schema to write")
            writer = pq.ParquetWriter(path, table.schema)
    finally:
        if writer is not None:
            writer.close()
    if table.rows is not None and written != table.rows:
        raise ValueError(f"{path.name}: {written:,} rows written, {table.rows:,} announced")
    return path


def _rows(table: pd.DataFrame | Path) -> int:
    return pq.ParquetFile(table).metadata.num_rows if isinstance(table, Path) else len(table)


def write_version(dest: Path, artifact: VersionArtifact, version: str) -> Manifest:
    """Write every file of the version into ``dest`` and return the manifest (written last, as
    ``Manifest.model_dump_json``: a field that does not fit the contract fails here, before publishing)."""
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    emb = np.ascontiguousarray(artifact.item_embeddings, dtype=np.float32)
    if emb.shape != (len(artifact.items), artifact.spec.embedding_dim):
        raise ValueError(f"item embeddings {emb.shape} do not match {len(artifact.items)} items x {artifact.spec.embedding_dim}")
    if artifact.towers_from is not None:  # the same SavedModels, byte for byte
        for name in ("query_model", "candidate_model"):
            shutil.copytree(Path(artifact.towers_from) / name, dest / name)
    else:
        export_tower(artifact.query_tower, artifact.spec.query.features, dest / "query_model")
        export_tower(artifact.candidate_tower, artifact.spec.candidate.features, dest / "candidate_model")
    save_searcher(artifact.searcher, dest / "index")
    np.save(dest / "item_embeddings.npy", emb)
    _write_parquet(artifact.items, dest / "items.parquet")
    _write_parquet(artifact.users, dest / "users.parquet")
    _write_parquet(artifact.seen, dest / "seen.parquet")
    (dest / "metrics.json").write_text(json.dumps(artifact.metrics, indent=2, default=float), encoding="utf-8")
    if artifact.write_report is not None:
        artifact.write_report(dest / "report.png")
    extra = dict(_json(artifact.manifest_extra))
    index = extra.pop("index", None)
    manifest = Manifest(
        version=version,
        kind=artifact.kind,
        parent_version=artifact.parent_version,
        created_at=datetime.now(UTC).isoformat(timespec="seconds"),
        embedding_dim=artifact.spec.embedding_dim,
        num_items=len(artifact.items),
        num_users=_rows(artifact.users),
        query_inputs=_inputs(artifact.spec.query.features, artifact.query_defaults),
        candidate_inputs=_inputs(artifact.spec.candidate.features, artifact.candidate_defaults),
        feature_spec=artifact.spec.model_dump(mode="json"),
        dataset=extra.pop("dataset", None),
        training=extra.pop("training", None),
        index=None if index is None else IndexSection.model_validate(index),
        metrics=_json(artifact.metrics),
        libraries=_library_versions(),
        files=tree_checksums(dest),
    )
    if extra:
        raise ValueError(f"manifest_extra names fields the manifest does not have: {sorted(extra)}")
    (dest / MANIFEST).write_text(manifest.model_dump_json(indent=2), encoding="utf-8")
    return manifest
