"""Handing freed heap memory back to the operating system while a run goes on.

Training allocates and frees buffers of many sizes at every step on several threads
(TensorFlow's kernels, the input pipeline's batches). glibc's allocator keeps what is
freed in its arenas for reuse, and the process's resident memory creeps up with the
fragments: at 20M interactions, one epoch of 14K steps ended 1 GB above where it started
(BENCHMARKS.md, "The run from the shards"). ``malloc_trim(0)`` returns every free page of
every arena to the system; calling it every few seconds holds the resident size flat. On
a C library without it (musl, macOS) this does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import time
from collections.abc import Callable
from functools import cache

import tensorflow as tf

TRIM_EVERY_S = 10.0


@cache
def _malloc_trim() -> Callable[[int], int] | None:
    name = ctypes.util.find_library("c")
    try:
        trim: Callable[[int], int] = ctypes.CDLL(name).malloc_trim
    except (OSError, AttributeError, TypeError):
        return None
    return trim


def release_freed_memory() -> bool:
    """Give the C library's free pages back to the system; False where it cannot."""
    trim = _malloc_trim()
    if trim is None:
        return False
    trim(0)
    return True


class ReleaseFreedMemory(tf.keras.callbacks.Callback):
    """:func:`release_freed_memory` every ``every_s`` seconds of training, and at each epoch's end."""

    def __init__(self, every_s: float = TRIM_EVERY_S) -> None:
        super().__init__()
        self.every_s = every_s
        self._last = time.monotonic()

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        now = time.monotonic()
        if now - self._last >= self.every_s:
            self._last = now
            release_freed_memory()

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        release_freed_memory()
        self._last = time.monotonic()
