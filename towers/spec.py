"""Declarative feature spec: which features each tower reads and how.

A spec is a pydantic model, loadable from YAML or JSON, and stored verbatim in
every published manifest so a version says exactly what its towers consume.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator


class FeatureKind(StrEnum):
    """How one raw column becomes part of a tower's input vector."""

    ID = "id"  # StringLookup + Embedding, one OOV bucket
    CATEGORICAL = "categorical"  # same as id, for small vocabularies
    HASHED = "hashed"  # Hashing + Embedding, for huge vocabularies
    MULTI_CATEGORICAL = "multi_categorical"  # "a|b|c" -> pooled embedding
    TEXT = "text"  # TextVectorization -> pooled token embedding
    NUMERIC = "numeric"  # Normalization (+ optional bucket embedding)
    TIMESTAMP = "timestamp"  # seconds: normalised + Discretization embedding
    HISTORY = "history"  # the user's recent item ids "i1|i2|..." (oldest first) -> pooled item embedding

    @property
    def dtype(self) -> Literal["string", "float32"]:
        """The dtype of the raw input tensor the tower receives."""
        return "float32" if self in (FeatureKind.NUMERIC, FeatureKind.TIMESTAMP) else "string"


class HistoryPooling(StrEnum):
    """How a history's item embeddings become one vector (empty history -> zeros)."""

    MEAN = "mean"  # plain mean
    RECENCY = "recency"  # softmax of a learned weight per position counted from the most recent
    ATTENTION = "attention"  # softmax of a learned score of each item's embedding plus its recency weight


class FeatureSpec(BaseModel):
    """One input column of a tower."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    kind: FeatureKind
    embedding_dim: int = Field(default=16, ge=1, le=1024)
    max_tokens: int | None = Field(default=None, ge=2, description="vocabulary cap (id, categorical, text, multi)")
    num_bins: int = Field(default=100_000, ge=2, description="hash buckets (hashed)")
    separator: str = Field(default="|", min_length=1, description="value separator (multi_categorical)")
    sequence_length: int = Field(default=16, ge=1, le=512, description="tokens kept per text")
    buckets: int = Field(default=0, ge=0, le=1000, description="quantile buckets embedded (numeric, timestamp); 0 = none")
    log_transform: bool = Field(default=False, description="log1p before normalising (numeric)")
    history_length: int = Field(default=50, ge=1, le=1000, description="most recent item ids kept (history)")
    pooling: HistoryPooling = Field(default=HistoryPooling.MEAN, description="how item embeddings are pooled (history)")
    shared_embedding: bool = Field(
        default=False,
        description="history: look ids up in the candidate tower's item_id table (its width) instead of a table of its own",
    )

    @model_validator(mode="after")
    def _timestamp_has_buckets(self) -> FeatureSpec:
        if self.kind is FeatureKind.TIMESTAMP and self.buckets == 0:
            self.buckets = 20
        return self


class TowerSpec(BaseModel):
    """The features of one tower and the layers stacked on their concatenation."""

    model_config = ConfigDict(extra="forbid")

    features: list[FeatureSpec] = Field(min_length=1)
    hidden_units: list[int] = Field(default_factory=list)
    dropout: float = Field(default=0.0, ge=0.0, lt=1.0)
    cold_path: bool = Field(
        default=False,
        description="candidate tower only: an item whose id is out of vocabulary (one training never saw) is "
        "embedded by a projection of its metadata of its own, trained beside the towers (towers.tower, training.model)",
    )

    @model_validator(mode="after")
    def _unique_names(self) -> TowerSpec:
        names = [f.name for f in self.features]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"feature names must be unique in a tower: {dupes}")
        return self

    @property
    def names(self) -> list[str]:
        return [f.name for f in self.features]


class ModelSpec(BaseModel):
    """Both towers and the shared output embedding size."""

    model_config = ConfigDict(extra="forbid")

    embedding_dim: int = Field(default=64, ge=2, le=2048)
    normalize_embeddings: bool = Field(
        default=False, description="L2-normalise both towers' outputs (dot product = cosine; pair with a low temperature)"
    )
    query: TowerSpec
    candidate: TowerSpec

    @model_validator(mode="after")
    def _id_features_present(self) -> ModelSpec:
        if "user_id" not in self.query.names and len(self.query.features) == 0:
            raise ValueError("the query tower needs at least one feature")
        if "item_id" not in self.candidate.names:
            raise ValueError("the candidate tower must read item_id (it identifies index rows)")
        if any(f.kind is FeatureKind.HISTORY for f in self.candidate.features):
            raise ValueError("history features belong to the query tower")
        item_id = next(f for f in self.candidate.features if f.name == "item_id")
        if self.query.cold_path:
            raise ValueError("cold_path belongs to the candidate tower")
        if self.candidate.cold_path and (item_id.kind is not FeatureKind.ID or len(self.candidate.features) < 2):
            raise ValueError("cold_path needs the candidate's item_id of kind id and at least one metadata feature")
        for f in self.query.features:
            if f.kind is FeatureKind.HISTORY and f.shared_embedding and item_id.kind is not FeatureKind.ID:
                raise ValueError(f"{f.name}: a shared history embedding needs the candidate's item_id of kind id")
        return self

    @property
    def history_features(self) -> list[FeatureSpec]:
        """The query tower's history features (their inputs come from the interactions)."""
        return [f for f in self.query.features if f.kind is FeatureKind.HISTORY]

    @classmethod
    def from_file(cls, path: str | Path) -> ModelSpec:
        """Load a spec from a .yaml/.yml/.json file."""
        text = Path(path).read_text(encoding="utf-8")
        return cls.model_validate(yaml.safe_load(text))


def _f(name: str, kind: str, **kw: Any) -> FeatureSpec:
    return FeatureSpec(name=name, kind=FeatureKind(kind), **kw)


HISTORY_FEATURE = "recent_item_ids"


def history_feature(embedding_dim: int = 64, **kw: Any) -> FeatureSpec:
    """The user's recent item ids (``recent_item_ids``, "|"-joined, oldest first)."""
    return FeatureSpec(name=HISTORY_FEATURE, kind=FeatureKind.HISTORY, embedding_dim=embedding_dim, **kw)


def ids_only_spec(embedding_dim: int = 64) -> ModelSpec:
    """User id and item id only: the classic two-tower matrix factorisation."""
    return ModelSpec(
        embedding_dim=embedding_dim,
        query=TowerSpec(features=[_f("user_id", "id", embedding_dim=embedding_dim)]),
        candidate=TowerSpec(features=[_f("item_id", "id", embedding_dim=embedding_dim)]),
    )


def storefront_spec(embedding_dim: int = 64) -> ModelSpec:
    """Default spec for the generated storefront dataset (with the user's recent
    items: the history, own table, attention pooling, won on MovieLens validation)."""
    return ModelSpec(
        embedding_dim=embedding_dim,
        query=TowerSpec(
            features=[
                _f("user_id", "id", embedding_dim=embedding_dim),
                _f("age", "numeric", buckets=10),
                _f("country", "categorical", embedding_dim=8),
                _f("segment", "categorical", embedding_dim=8),
                history_feature(embedding_dim, pooling=HistoryPooling.ATTENTION),
            ]
        ),
        candidate=TowerSpec(
            features=[
                _f("item_id", "id", embedding_dim=embedding_dim),
                _f("category", "categorical", embedding_dim=16),
                _f("tags", "multi_categorical", embedding_dim=16),
                _f("title", "text", embedding_dim=16, max_tokens=20_000),
                _f("brand", "categorical", embedding_dim=8),
                _f("price", "numeric", log_transform=True, buckets=10),
            ]
        ),
    )


def movielens_spec(embedding_dim: int = 64) -> ModelSpec:
    """Default spec for MovieLens: ids plus the user and movie metadata, and the
    user's last 50 items (the history: own table, attention pooling; BENCHMARKS.md
    section 1 has the comparison on validation)."""
    return ModelSpec(
        embedding_dim=embedding_dim,
        query=TowerSpec(
            features=[
                _f("user_id", "id", embedding_dim=embedding_dim),
                _f("age", "numeric", buckets=7),
                _f("gender", "categorical", embedding_dim=4),
                _f("occupation", "categorical", embedding_dim=8),
                _f("zip_prefix", "categorical", embedding_dim=8),
                history_feature(embedding_dim, pooling=HistoryPooling.ATTENTION),
            ]
        ),
        candidate=TowerSpec(
            features=[
                _f("item_id", "id", embedding_dim=embedding_dim),
                _f("genres", "multi_categorical", embedding_dim=16),
                _f("title", "text", embedding_dim=16, max_tokens=10_000),
                _f("year", "numeric", buckets=10),
            ]
        ),
    )


def spec_for_columns(base: ModelSpec, user_columns: set[str], item_columns: set[str]) -> ModelSpec:
    """Drop the features of ``base`` whose columns the data does not have.

    MovieLens 25M has no user table, for example: its query tower keeps only
    ``user_id`` (and the history, which comes from the interactions). A
    candidate tower left with its id alone has no metadata to place new items
    by: its cold path goes too.
    """
    query = [f for f in base.query.features if f.name in user_columns or f.kind is FeatureKind.HISTORY]
    cand = [f for f in base.candidate.features if f.name in item_columns]
    cold_path = base.candidate.cold_path and len(cand) > 1
    return base.model_copy(
        update={
            "query": base.query.model_copy(update={"features": query}),
            "candidate": base.candidate.model_copy(update={"features": cand, "cold_path": cold_path}),
        }
    )
