"""Training configuration: one pydantic model, filled from the command line."""

from __future__ import annotations

from enum import Enum

from pydantic import BaseModel, ConfigDict, Field


class SplitKind(str, Enum):
    RANDOM = "random"  # P1 of BENCHMARKS.md: shuffle (seed), first 80% train
    TEMPORAL = "temporal"  # P2: per user, the last 20% by time are test


class OptimizerKind(str, Enum):
    ADAM = "adam"
    ADAGRAD = "adagrad"
    SGD = "sgd"


class TrainConfig(BaseModel):
    """Everything that decides what a training run produces."""

    model_config = ConfigDict(extra="forbid")

    epochs: int = Field(default=30, ge=1, le=1000, description="maximum epochs (early stopping may stop sooner)")
    batch_size: int = Field(default=1024, ge=8, le=65536)
    optimizer: OptimizerKind = OptimizerKind.ADAM
    learning_rate: float = Field(default=0.005, gt=0, le=10)
    embedding_l2: float = Field(default=0.05, ge=0, description="L2 penalty on the batch's query and item embeddings")
    temperature: float = Field(default=1.0, gt=0)
    logq_correction: bool = Field(default=True, description="subtract log(item sampling probability) from logits")
    logq_strength: float = Field(
        default=1.0, ge=0, le=1, description="exponent on the sampling probability: 1 = full logQ correction"
    )
    remove_accidental_hits: bool = True
    num_hard_negatives: int | None = Field(default=None, ge=1)
    split: SplitKind = SplitKind.TEMPORAL
    test_fraction: float = Field(default=0.2, gt=0, lt=1)
    validation_fraction: float = Field(default=0.1, ge=0, lt=1, description="carved from train for early stopping")
    early_stopping_patience: int = Field(default=3, ge=1)
    refit_on_full_train: bool = Field(
        default=True, description="after early stopping picks the epoch count, retrain on train + validation"
    )
    validation_metric_k: int = Field(default=100, ge=1)
    max_eval_queries: int = Field(default=20_000, ge=100, description="cap on users/pairs scored in evaluation")
    seed: int = 42
    retain_versions: int = Field(default=3, ge=1)
    checkpoint_every_steps: int = Field(default=200, ge=1)
    max_bad_rows: int = Field(default=0, ge=0)
    gate_max_drop: float | None = Field(
        default=None, ge=0, description="refuse to publish if the served version's primary metric is higher by more than this"
    )
