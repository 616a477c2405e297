"""Recsys: command line and process bootstrap for the two-tower retrieval service.

Importing this package is the one place that prepares the TensorFlow runtime:
TensorFlow Recommenders needs Keras 2 (``tf_keras``), which TensorFlow only
selects when ``TF_USE_LEGACY_KERAS=1`` is in the environment *before* it is first
imported. ``towers``, ``training``, ``serving`` and the test suite import this
package first, so every entry point passes through here.
"""

import os as _os

_os.environ["TF_USE_LEGACY_KERAS"] = "1"
_os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

__version__ = "0.1.0"


def prepare_training_runtime() -> None:
    """For a process that trains, before it imports TensorFlow: keep TensorFlow's oneDNN
    CPU allocator off (``TF_ENABLE_ONEDNN_OPTS=0``; an explicit setting wins).

    That allocator (on by default on x86) pools every freed tensor for reuse and never
    hands memory back: the selection run's tables and Adam slots, their initialisers'
    temporaries and every shape training allocates stayed resident to the end of the
    run, 1.6 GiB at 20M interactions (BENCHMARKS.md, "The allocator that kept what
    training freed"). With TensorFlow's default allocator freed tensors go back to the
    C library, which returns large blocks at once and the rest at the trims of
    :mod:`training.freed_memory`."""
    _os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
