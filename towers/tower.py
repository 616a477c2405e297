"""A tower: named raw inputs -> per-feature encoders -> concat -> Dense -> embedding."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd
import tensorflow as tf

from towers.features import build_encoder, input_dtype, raw_column
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
    train_inputs: Mapping[str, np.ndarray],
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
    blocks = [build_encoder(f, train_inputs[f.name], shared_item_ids)(inputs[f.name]) for f in spec.features]
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
            x = tf.keras.layers.Dropout(spec.dropout)(x)
    if not plain_mf:
        x = tf.keras.layers.Dense(output_dim, name=f"{name}_projection")(x)
    if normalize:
        x = tf.keras.layers.UnitNormalization(axis=-1, name=f"{name}_l2norm")(x)
    return tf.keras.Model(inputs=inputs, outputs=x, name=name)
