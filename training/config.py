"""Training configuration: one pydantic model, filled from the command line."""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field


class SplitKind(StrEnum):
    RANDOM = "random"  # P1 of BENCHMARKS.md: shuffle (seed), first 80% train
    TEMPORAL = "temporal"  # P2: per user, the last 20% by time are test


class Negatives(StrEnum):
    """What each training example's softmax is taken over."""

    IN_BATCH = "in_batch"  # the batch's other positives, logQ-corrected (won on MovieLens validation)
    FULL = "full"  # every item of the catalog (exact softmax; no sampling, so no logQ)
    MIXED = "mixed"  # the batch's positives plus ``mixed_negatives`` uniform items (Yang et al. 2020)


class OptimizerKind(StrEnum):
    """training/optimizers.py; BENCHMARKS.md "Training at scale" measures them."""

    LAZY_ADAM = "lazy_adam"  # Adam; embedding tables update only the rows a batch touches
    ADAM = "adam"  # Keras Adam: every table row's moments and value move at every step (cost grows with the ids)
    ADAM_ADAGRAD = "adam_adagrad"  # TFRS CompositeOptimizer: Adagrad on the tables, Adam on the rest
    ADAGRAD = "adagrad"
    SGD = "sgd"


class TrainConfig(BaseModel):
    """Everything that decides what a training run produces."""

    model_config = ConfigDict(extra="forbid")

    epochs: int = Field(default=30, ge=1, le=1000, description="maximum epochs (early stopping may stop sooner)")
    batch_size: int = Field(default=1024, ge=8, le=65536)
    optimizer: OptimizerKind = OptimizerKind.LAZY_ADAM
    learning_rate: float = Field(default=0.005, gt=0, le=10)
    embedding_learning_rate: float = Field(
        default=0.1, gt=0, le=10, description="Adagrad's learning rate on the embedding tables (optimizer adam_adagrad only)"
    )
    embedding_l2: float = Field(default=0.05, ge=0, description="L2 penalty on the batch's query and item embeddings")
    temperature: float = Field(default=1.0, gt=0)
    logq_correction: bool = Field(default=True, description="subtract log(item sampling probability) from logits")
    logq_strength: float = Field(
        default=1.0, ge=0, le=1, description="exponent on the sampling probability: 1 = full logQ correction"
    )
    remove_accidental_hits: bool = True
    negatives: Negatives = Field(
        default=Negatives.IN_BATCH, description="softmax over in-batch, full-catalog or mixed negatives (BENCHMARKS.md section 1)"
    )
    mixed_negatives: int = Field(default=1024, ge=1, description="uniformly sampled items per batch (mixed negatives)")
    num_hard_negatives: int | None = Field(default=None, ge=1)
    item_id_dropout: float = Field(
        default=0.0,
        ge=0,
        lt=1,
        description="share of training candidates whose item id is replaced by the out-of-vocabulary id each step "
        "(seeded), so the candidate tower learns to place items it never saw by their metadata; 0 by default. On "
        "MovieLens, with the spec's cold path, 0.1-0.3 lifts withheld items from 0.5x to 3.0-3.2x uniform with P2 "
        "within seed noise (BENCHMARKS.md section 5, cold items)",
    )
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
    index_target_recall: float = Field(
        default=0.95, gt=0, le=1, description="recall@10 vs exact the ScaNN index must reach on held-out known users' queries"
    )
    index_max_us_per_query: float = Field(
        default=1000.0, gt=0, description="the index's time budget per query (search + exact re-scoring, batches of 12)"
    )
    progress_every_s: float = Field(
        default=60.0,
        gt=0,
        description="seconds between the progress lines within an epoch when stdout is not a terminal (a line per epoch besides)",
    )
    prepare_memory_limit: str = Field(
        default="1GB",
        pattern=r"^[1-9][0-9]*(\.[0-9]+)?\s*(KB|MB|GB|TB|KiB|MiB|GiB|TiB)$",
        description="memory DuckDB may hold while preparing the run's shards (its buffer manager; past it, it spills "
        "to disk beside the shards); DuckDB's own default is 80% of the RAM it detects",
    )
    index_tuning_queries: int = Field(
        default=2000, ge=2, description="query vectors sampled to tune (half) and check (half) the index"
    )
    index_session_share: float = Field(
        default=0.25,
        ge=0,
        le=0.9,
        description="share of the index tuning sample made of session queries (recent items only, no known user) "
        "where the query tower has a history input",
    )
    allow_low_recall: bool = Field(
        default=False, description="publish even if the index misses index_target_recall within the budget"
    )
