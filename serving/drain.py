"""Draining on a stop signal: readiness off first, the server's own stop ``grace_s`` later.

A load balancer polling ``/readyz`` stops sending requests to a worker that is about to
stop; requests already sent are still answered during the grace period.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import threading
from collections.abc import Callable
from types import FrameType
from typing import Any

from serving.metrics import ServiceMetrics
from serving.version.holder import ModelHolder

log = logging.getLogger("serving")

Handler = Callable[[int, FrameType | None], Any]


def install_drain_on_signal(holder: ModelHolder, metrics: ServiceMetrics, grace_s: float) -> Callable[[], None]:
    """On SIGTERM/SIGINT turn readiness off first, then (after ``grace_s``) call the handler
    installed before (uvicorn's, which stops the server). Chains in front of those handlers;
    only possible in the main thread. Returns the function that puts them back."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    loop = asyncio.get_running_loop()
    installed: dict[int, Handler] = {}

    for sig in (signal.SIGTERM, signal.SIGINT):
        previous = signal.getsignal(sig)
        if not callable(previous):
            continue
        signal.signal(sig, _draining(holder, metrics, grace_s, loop, previous))
        installed[sig] = previous

    def restore() -> None:
        for sig, previous in installed.items():
            with contextlib.suppress(Exception):
                signal.signal(sig, previous)

    return restore


def _draining(
    holder: ModelHolder, metrics: ServiceMetrics, grace_s: float, loop: asyncio.AbstractEventLoop, previous: Handler
) -> Handler:
    def handler(signum: int, frame: FrameType | None) -> None:
        first = not holder.shutting_down
        holder.shutting_down = True
        metrics.ready.set(0)
        if first and grace_s > 0:
            log.info("signal %d: not ready; stopping in %.1fs", signum, grace_s)
            loop.call_soon_threadsafe(loop.call_later, grace_s, previous, signum, frame)
        else:
            previous(signum, frame)

    return handler
