"""Loading a new version beside the served one, so that loading yields the cores to serving.

:func:`run_in_loader_thread` runs a load in a thread of its own at a lowered OS
priority, and :class:`Pacer` pauses it between its steps
(``serving.version.loader.load_version(..., pause=...)``). The watcher
(:mod:`serving.version.watcher`) uses both while a version serves.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sys
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

log = logging.getLogger("serving")
T = TypeVar("T")


LOADER_NICE = 10  # how much lower than serving the loading of a new version runs (Linux nice steps)
LOADER_DUTY = 0.5  # at most this share of the wall time is spent loading while a version serves (the rest: pauses)


class Pacer:
    """Called between the steps of a load: sleeps so that the steps take at most ``duty`` of the wall time.

    A lowered OS priority yields the cores to the service's own threads only:
    the scheduler shares the machine between sessions (autogroups) or
    containers (cgroups) first, so a loader that never stops would still take
    its process's share from whatever else runs beside it. The pauses leave
    that share to the event loop, the inference thread and their neighbours.
    One pause is at most ``max_pause_s``."""

    def __init__(
        self,
        duty: float = LOADER_DUTY,
        max_pause_s: float = 0.25,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if not 0 < duty <= 1:
            raise ValueError("duty must be in (0, 1]")
        self.duty, self.max_pause_s, self._clock, self._sleep = duty, max_pause_s, clock, sleep
        self._since: float | None = None
        self.paused_s = 0.0

    def __call__(self) -> None:
        now = self._clock()
        if self._since is not None:
            rest = min(self.max_pause_s, (now - self._since) * (1.0 / self.duty - 1.0))
            if rest > 0:
                self._sleep(rest)
                self.paused_s += rest
        self._since = self._clock()


def lower_thread_priority(nice: int) -> bool:
    """Raise the calling thread's nice value by ``nice`` (Linux: per thread; elsewhere nothing).

    Used by the thread that loads a new version while another one serves: when
    the cores are busy, the scheduler prefers the event loop, the inference
    thread and everything else over it."""
    if nice <= 0 or not sys.platform.startswith("linux"):
        return False
    tid = threading.get_native_id()
    try:
        current = os.getpriority(os.PRIO_PROCESS, tid)
        os.setpriority(os.PRIO_PROCESS, tid, min(19, current + nice))
    except OSError as exc:  # e.g. a sandbox that forbids it: load at normal priority
        log.warning("could not lower the loader thread's priority: %s", exc)
        return False
    return True


async def run_in_loader_thread(fn: Callable[..., T], *args: Any, nice: int = 0, **kwargs: Any) -> T:
    """``fn(*args, **kwargs)`` in a new thread of its own, at ``nice`` steps below normal priority.

    A thread of its own, because a priority once lowered cannot be raised back
    without privileges: pooled threads (``asyncio.to_thread``) would keep it."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[T] = loop.create_future()

    def deliver(ok: bool, value: Any) -> None:
        if not future.done():
            (future.set_result if ok else future.set_exception)(value)

    def target() -> None:
        outcome: tuple[bool, Any]
        try:
            lower_thread_priority(nice)
            outcome = (True, fn(*args, **kwargs))
        except BaseException as exc:
            outcome = (False, exc)
        with contextlib.suppress(RuntimeError):  # the loop closed meanwhile (shutdown during a load)
            loop.call_soon_threadsafe(deliver, *outcome)

    threading.Thread(target=target, name="recsys-loader", daemon=True).start()
    return await future
