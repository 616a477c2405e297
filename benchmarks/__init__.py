"""Reproducible benchmarks: one command per figure (``python -m benchmarks.<name>``).

Each command writes ``benchmarks/results/<name>.json`` (figures plus the machine
they were measured on) and ``benchmarks/results/<name>.md`` (a human summary).
See ../shared/BENCHMARKS.md for the measuring rules and BENCHMARKS.md for the
results.
"""

import recsys  # noqa: F401  (sets TF_USE_LEGACY_KERAS=1 before anything imports TensorFlow)
