"""Offline quality on MovieLens 100K, P1 and P2, every model scored by the same code.

    python -m benchmarks.quality [--data DIR] [--seeds 42,43,44] [--no-als] [--quick]

Models (all trained on the protocol's training split; hyperparameters picked on
a validation split carved from it, never on test):

- ``popularity``: training interaction counts;
- ``tfrs_quickstart``: the seed's TFRS code (README quick-start: ids, 64-d,
  Adagrad 0.5, batch 4096, 3 epochs) — one run per init seed;
- ``tfrs_tutorial``: the TFRS basic-retrieval tutorial (ids, 32-d, Adagrad 0.1,
  batch 8192, 3 epochs, FactorizedTopK in the training step) — per init seed;
- ``ease``: closed form, lambda chosen on validation, refit on all of train;
- ``als``: ``implicit`` ALS, factors/regularisation/alpha/iterations chosen on
  validation, refit on all of train (skipped when ``implicit`` is absent);
- ``svd``: truncated SVD of the interaction matrix (scikit-learn's
  ``TruncatedSVD``, PureSVD scoring), rank chosen on validation;
- ``lightfm``: LightFM with the WARP loss and item features (identity +
  genres + decade), components/item_alpha/epochs chosen on validation
  (skipped when ``lightfm`` is absent);
- ``project``: the project's default MovieLens model (ids + metadata) via
  ``training.pipeline.run_pipeline`` (its own early stopping on its
  validation carve); further init seeds through the same trainer.

Writes benchmarks/results/quality.json, quality.md and quality.png.

Parts: :mod:`~benchmarks.quality.shared` (targets, grids, aggregation),
:mod:`~benchmarks.quality.baselines`, :mod:`~benchmarks.quality.project`,
:mod:`~benchmarks.quality.sessions` (P3), :mod:`~benchmarks.quality.report`
(summary) and :mod:`~benchmarks.quality.__main__` (the command line).
"""

import recsys

recsys.prepare_training_runtime()  # the models train as `recsys train` trains them (before TensorFlow is imported)
