"""A tower: named raw inputs -> per-feature encoders -> concat -> Dense -> embedding.

:func:`build_tower` makes the tower a version exports (raw inputs: strings
and floats); :func:`training_tower` the same layers and weights fed the way
training batches carry a history feature (catalog rows, no strings).

A candidate tower with ``cold_path`` answers an item whose id is out of
vocabulary (a catalog update's new item, an item training never saw) with a
projection of its metadata blocks of its own instead of the id's OOV row
mixed into the usual projection: :func:`with_cold_path`. Known ids take the
usual path, unchanged."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd
import tensorflow as tf

from towers.features import TokenCounts, build_encoder, input_dtype, raw_column
from towers.history import CatalogRowIds
from towers.spec import FeatureKind, TowerSpec


def tower_inputs(spec: TowerSpec, frame: pd.DataFrame) -> dict[str, np.ndarray]:
    """Raw model inputs for every feature of ``spec``, one array per name.

    History features are skipped unless ``frame`` has their column: their
    inputs come from the interactions (``training.history``), not from a table.
    """
    wanted = [f for f in spec.features if f.kind is not FeatureKind.HISTORY or f.name in frame.columns]
    missing = [f.name for f in wanted if f.name not in frame.columns]
    if missing:
        raise KeyError(f"columns missing for tower features: {missing}")
    return {f.name: raw_column(f, frame[f.name]) for f in wanted}


def input_defaults(spec: TowerSpec, train_inputs: Mapping[str, np.ndarray]) -> dict[str, str | float]:
    """What to feed for a feature a request leaves out: "" (OOV) or the training mean."""
    out: dict[str, str | float] = {}
    for f in spec.features:
        if f.kind.dtype == "float32":
            vals = np.asarray(train_inputs[f.name], dtype=np.float64)
            vals = vals[np.isfinite(vals)]
            out[f.name] = float(vals.mean()) if vals.size else 0.0
        else:
            out[f.name] = ""
    return out


def build_tower(
    spec: TowerSpec,
    train_inputs: Mapping[str, np.ndarray | TokenCounts],
    output_dim: int,
    name: str,
    normalize: bool = False,
    shared_item_ids: tf.keras.layers.Layer | None = None,
) -> tf.keras.Model:
    """Build a Keras functional tower whose encoders are fitted on ``train_inputs``.

    With a single id feature of width ``output_dim`` and no hidden layers the
    tower is a plain embedding table (matrix factorisation); otherwise the
    concatenated feature blocks go through the hidden layers and a final linear
    projection to ``output_dim``. With ``normalize`` the output has unit L2 norm.
    ``shared_item_ids`` is the candidate tower's item_id encoder, for history
    features that share its table.
    """
    inputs = {f.name: tf.keras.Input(shape=(), dtype=input_dtype(f), name=f.name) for f in spec.features}
    encoders = {f.name: build_encoder(f, train_inputs[f.name], shared_item_ids) for f in spec.features}
    blocks = [encoders[f.name](inputs[f.name]) for f in spec.features]
    x = blocks[0] if len(blocks) == 1 else tf.keras.layers.Concatenate(name=f"{name}_concat")(blocks)
    plain_mf = (
        len(spec.features) == 1
        and spec.features[0].kind in (FeatureKind.ID, FeatureKind.CATEGORICAL, FeatureKind.HASHED)
        and spec.features[0].embedding_dim == output_dim
        and not spec.hidden_units
    )
    for i, units in enumerate(spec.hidden_units):
        x = tf.keras.layers.Dense(units, activation="relu", name=f"{name}_hidden{i}")(x)
        if spec.dropout:
            x = tf.keras.layers.Dropout(spec.dropout, name=f"{name}_dropout{i}")(x)
    if not plain_mf:
        x = tf.keras.layers.Dense(output_dim, name=f"{name}_projection")(x)
    if spec.cold_path:
        x = with_cold_path(spec, inputs, encoders, blocks, x, output_dim, name)
    if normalize:
        x = tf.keras.layers.UnitNormalization(axis=-1, name=f"{name}_l2norm")(x)
    return tf.keras.Model(inputs=inputs, outputs=x, name=name)


COLD_PROJECTION = "cold_projection"  # the cold path's own layer: f"{tower name}_{COLD_PROJECTION}"


class OutOfVocabulary(tf.keras.layers.Layer):
    """1.0 where the id lookup gives its out-of-vocabulary row (0), else 0.0: ``[batch, 1]``."""

    def __init__(self, lookup: tf.keras.layers.StringLookup, **kw: object) -> None:
        super().__init__(**kw)
        self.lookup = lookup

    def call(self, ids: tf.Tensor) -> tf.Tensor:
        return tf.cast(tf.equal(self.lookup(ids), 0), tf.float32)[:, tf.newaxis]


class HeldFixed(tf.keras.layers.Layer):
    """Its input, through which no gradient flows back."""

    def call(self, x: tf.Tensor) -> tf.Tensor:
        return tf.stop_gradient(x)


class ColdSwitch(tf.keras.layers.Layer):
    """``cold`` where ``oov`` is 1, else ``warm``."""

    def call(self, parts: list[tf.Tensor]) -> tf.Tensor:
        warm, cold, oov = parts
        return oov * cold + (1.0 - oov) * warm


def with_cold_path(
    spec: TowerSpec,
    inputs: Mapping[str, tf.Tensor],
    encoders: Mapping[str, tf.keras.layers.Layer],
    blocks: list[tf.Tensor],
    warm: tf.Tensor,
    output_dim: int,
    name: str,
) -> tf.Tensor:
    """``warm`` for known ids; for an out-of-vocabulary ``item_id``, a linear projection of the
    item's metadata blocks alone (``{name}_cold_projection``). The metadata blocks are held fixed
    on this path: the encoders learn from the known items only, and the projection, trained on
    queries held fixed (:class:`training.model.TwoTowerModel`), moves nothing else."""
    meta = [b for f, b in zip(spec.features, blocks, strict=True) if f.name != "item_id"]
    x = meta[0] if len(meta) == 1 else tf.keras.layers.Concatenate(name=f"{name}_cold_concat")(meta)
    x = HeldFixed(name=f"{name}_cold_held")(x)
    cold = tf.keras.layers.Dense(output_dim, name=f"{name}_{COLD_PROJECTION}")(x)
    oov = OutOfVocabulary(encoders["item_id"].lookup, name=f"{name}_item_id_oov")(inputs["item_id"])
    return ColdSwitch(name=f"{name}_cold_switch")([warm, cold, oov])


def has_cold_path(tower: tf.keras.Model) -> bool:
    """Whether ``tower`` was built with a cold path (:func:`with_cold_path`)."""
    return any(layer.name.endswith(f"_{COLD_PROJECTION}") for layer in tower.layers)


def training_tower(tower: tf.keras.Model, spec: TowerSpec, item_ids: np.ndarray) -> tf.keras.Model:
    """``tower`` (from :func:`build_tower` with ``spec``), its layers and weights
    shared, with each history feature fed as int32 ``[batch, history_length]``
    catalog rows + 1, newest first, 0 = nothing (``item_ids``: the catalog's
    ids in row order). What training batches carry: the history is never
    joined into a string and split again at each step. Without history
    features, ``tower`` itself."""
    history = {f.name for f in spec.features if f.kind is FeatureKind.HISTORY}
    if not history:
        return tower
    inputs = {
        f.name: tf.keras.Input(shape=(f.history_length,), dtype=tf.int32, name=f.name)
        if f.name in history
        else tf.keras.Input(shape=(), dtype=input_dtype(f), name=f.name)
        for f in spec.features
    }
    encoders = {f.name: tower.get_layer(f"{f.name}_{f.kind.value}") for f in spec.features}
    blocks = []
    for f in spec.features:
        x = inputs[f.name]
        if f.name in history:
            x = CatalogRowIds(encoders[f.name].lookup, item_ids, name=f"{f.name}_catalog_rows")(x)
        blocks.append(encoders[f.name](x))
    # the rest of the tower is a chain (concat, hidden, dropout, projection, norm) after the encoders
    chain = [
        layer for layer in tower.layers if not isinstance(layer, tf.keras.layers.InputLayer) and layer not in encoders.values()
    ]
    x = blocks if len(blocks) > 1 else blocks[0]
    for layer in chain:
        x = layer(x)
    return tf.keras.Model(inputs=inputs, outputs=x, name=f"{tower.name}_training")
