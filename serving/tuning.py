"""Interpreter and server tuning, in one place: what the service sets besides its settings' values.

* :func:`switch_interval`: Python's thread switch interval while the service runs
  (``ServiceSettings.gil_switch_interval_ms``);
* :func:`freeze_libraries` once before the first version loads and :func:`settle_heap`
  after each swap: the garbage collector walks the versions, never the libraries;
* :func:`uvicorn_options`: the keyword arguments uvicorn runs the service with
  (the guarded HTTP protocol, its limits, keep-alive and shutdown timeouts).
"""

from __future__ import annotations

import contextlib
import gc
import resource
import sys
from collections.abc import Iterator
from typing import Any

from serving.connections import ConnectionLimits, GuardedProtocolFactory, connection_cap
from serving.settings import ServiceSettings


@contextlib.contextmanager
def switch_interval(ms: float) -> Iterator[None]:
    """Python's thread switch interval set to ``ms`` inside, the previous one restored after.

    Short, it lets the inference thread take the interpreter lock soon after a
    batch arrives while the event loop is busy (Python's default is 5 ms)."""
    previous = sys.getswitchinterval()
    sys.setswitchinterval(ms / 1000.0)
    try:
        yield
    finally:
        sys.setswitchinterval(previous)


_libraries_frozen = False


def freeze_libraries() -> bool:
    """Once per process, before the first version loads: import what loading uses, then freeze.

    The libraries (TensorFlow, ScaNN, pyarrow, pandas, the compiled ranking
    kernel) are some 450,000 long-lived objects; a version is about 13,000 at a
    million items. Frozen (``gc.freeze``), the libraries are never walked by a
    collection again. The versions stay unfrozen, so a full collection walks only
    them: after a swap it reclaims the old version's cycles in tens of
    milliseconds (unfreezing and collecting everything took 350-600 ms at 1M
    items, on the event loop). Returns whether this call froze them."""
    if _libraries_frozen:
        return False
    import pandas  # noqa: F401  # imported so that its objects are frozen with the rest
    import pyarrow.parquet  # noqa: F401  # imported so that its objects are frozen with the rest
    import scann  # noqa: F401  # imported so that its objects are frozen with the rest
    import tensorflow  # noqa: F401  # imported so that its objects are frozen with the rest

    from serving.ranking import compile_kernel

    compile_kernel()
    _freeze_heap()
    return True


def _freeze_heap() -> None:
    global _libraries_frozen
    gc.collect()
    gc.freeze()
    _libraries_frozen = True


def settle_heap() -> int:
    """After a swap: one full collection, which walks only what is not frozen (the versions,
    not the libraries: :func:`freeze_libraries`), so the old version's cycles go at once.

    In a process that never froze its libraries (a benchmark's app that loads a
    model itself), everything there is now is collected and frozen instead."""
    if not _libraries_frozen:
        _freeze_heap()
        return 0
    return gc.collect()


def uvicorn_options(settings: ServiceSettings, fd_limit: int | None = None) -> dict[str, Any]:
    """The keyword arguments uvicorn runs the service with (the load benchmark's HTTP ceiling uses them too).

    The HTTP protocol is :class:`serving.connections.GuardedHttpProtocol` (idle and read
    limits, header size, connection cap below ``fd_limit``, the open-file limit, which is
    read when not given); uvicorn's own limits are set as a second line behind it."""
    limit = fd_limit if fd_limit is not None else resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    limits = ConnectionLimits(
        max_connections=connection_cap(settings.max_connections, limit),
        idle_timeout_s=settings.idle_timeout_s,
        read_timeout_s=settings.request_read_timeout_s,
        max_header_bytes=settings.max_header_bytes,
    )
    return {
        "host": settings.host,
        "port": settings.port,
        "log_level": settings.log_level,
        "access_log": settings.access_log,
        "proxy_headers": False,
        "server_header": False,
        "timeout_graceful_shutdown": max(settings.request_timeout_s * 2, settings.shutdown_grace_s + 5),
        "http": GuardedProtocolFactory(limits),
        "timeout_keep_alive": settings.idle_timeout_s,
        "h11_max_incomplete_event_size": settings.max_header_bytes,
        # a backstop only: the guarded protocol keeps connections under the cap and the guard
        # answers 503 past max_concurrency requests in flight
        "limit_concurrency": limits.max_connections + settings.max_concurrency,
    }
