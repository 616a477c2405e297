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
