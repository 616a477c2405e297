"""Run a published tower (``query_model/`` or ``candidate_model/``: signature
``serving_default(**features) -> {"embedding"}``, docs/CONTRACTS.md) over raw
input columns in batches, as a reader that never imports the Keras towers does."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import tensorflow as tf

BATCH = 16_384


class SavedTower:
    """One exported tower, loaded once."""

    def __init__(self, path: Path, inputs: list[dict]) -> None:
        self._module = tf.saved_model.load(str(path))  # keeps the variables alive
        self._fn = self._module.signatures["serving_default"]
        self.inputs = inputs  # the manifest's query_inputs / candidate_inputs

    def columns(self, frame: pd.DataFrame, raw: dict[str, np.ndarray] | None = None) -> dict[str, np.ndarray]:
        """One array per input: ``raw[name]`` when given, else the frame's column, else the input's default."""
        out = {}
        for spec in self.inputs:
            name = spec["name"]
            if raw is not None and name in raw:
                values = raw[name]
            elif name in frame.columns:
                values = frame[name].to_numpy()
            else:
                values = np.full(len(frame), spec["default"], dtype=object)
            if spec["dtype"] == "float32":
                out[name] = pd.to_numeric(pd.Series(values), errors="coerce").to_numpy(dtype=np.float32, na_value=np.nan)
            else:
                out[name] = pd.Series(values, dtype=object).fillna("").astype(str).to_numpy(dtype=object)
        return out

    def embed(self, columns: dict[str, np.ndarray], rows: np.ndarray | None = None, batch: int = BATCH) -> np.ndarray:
        """float32 [len(rows), dim]: the tower's output for ``rows`` (all rows when None) of ``columns``."""
        n = len(next(iter(columns.values())))
        rows = np.arange(n) if rows is None else np.asarray(rows, dtype=np.int64)
        parts = []
        for start in range(0, len(rows), batch):
            chunk = rows[start : start + batch]
            tensors = {
                spec["name"]: tf.constant(
                    columns[spec["name"]][chunk], dtype=tf.float32 if spec["dtype"] == "float32" else tf.string
                )
                for spec in self.inputs
            }
            parts.append(self._fn(**tensors)["embedding"].numpy().astype(np.float32, copy=False))
        if not parts:
            dim = int(self._fn.structured_outputs["embedding"].shape[-1])
            return np.zeros((0, dim), np.float32)
        return np.concatenate(parts)
