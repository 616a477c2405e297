"""Reference models the project is compared against, written from their
published descriptions: the TFRS README quick-start and basic-retrieval
tutorial (ids only), EASE (closed form) and ALS (the ``implicit`` package)."""

import recsys  # noqa: F401  (sets TF_USE_LEGACY_KERAS before anything imports TensorFlow)
