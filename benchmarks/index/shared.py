"""What the index benchmark's parts share: k, one BLAS thread, the process's memory, the log."""

from __future__ import annotations

import contextlib
import gc
from typing import Any

from benchmarks.common import log as _log

K = 10


def one_blas_thread() -> Any:
    """Limit BLAS to one thread (threadpoolctl, installed with implicit/scipy
    stacks); without threadpoolctl, OPENBLAS_NUM_THREADS decides and the
    results say so."""
    try:
        from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]  # threadpoolctl ships no type hints
    except ImportError:
        log("threadpoolctl absent: 'exact 1 thread' figures use the BLAS default thread count")
        return contextlib.nullcontext()
    return threadpool_limits(limits=1, user_api="blas")


def log(msg: str) -> None:
    _log("index", msg)


def rss() -> int:
    import psutil

    gc.collect()
    return int(psutil.Process().memory_info().rss)
