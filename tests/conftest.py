"""Test-suite bootstrap: import ``recsys`` first so TF_USE_LEGACY_KERAS is set."""

import recsys  # noqa: F401  (first: TF_USE_LEGACY_KERAS)
