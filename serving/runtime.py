"""The served version and the watcher that replaces it (DESIGN.md section 5).

:class:`ModelHolder` keeps one reference to an immutable
:class:`~serving.model.LoadedModel`; a swap is one assignment, so a request that
took the reference finishes on that version. :class:`VersionWatcher` polls
``LATEST``; a new name is verified and loaded in a worker thread (while a
version serves, a thread of its own at a lowered OS priority that pauses
between the steps of the load, so that loading yields the cores to serving:
``serving.loading``), and only a fully loaded and warmed version is swapped
in. Failures leave the old version served and are kept for ``/readyz`` and
counted in the metrics.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from serving.loading import (
    LOADER_DUTY,
    LOADER_NICE,
    Pacer,
    freeze_libraries,
    run_in_loader_thread,
    settle_heap,
)
from serving.metrics import ServiceMetrics
from serving.model import DEFAULT_USER_VECTORS_MAX_BYTES, LATEST, LoadedModel, LoadError, load_version, read_latest

log = logging.getLogger("serving")


@dataclass(frozen=True)
class ReloadFailure:
    version: str | None
    reason: str
    detail: str
    at: float

    def as_dict(self) -> dict:
        return {"version": self.version, "reason": self.reason, "detail": self.detail, "at": self.at}


class ModelHolder:
    """The served version (or None) plus what /readyz reports."""

    def __init__(self) -> None:
        self._model: LoadedModel | None = None
        self.last_failure: ReloadFailure | None = None
        self.latest_name: str | None = None  # what LATEST named at the last poll
        self.shutting_down = False
        self.last_poll: float | None = None

    @property
    def model(self) -> LoadedModel | None:
        return self._model

    def swap(self, model: LoadedModel) -> None:
        self._model = model  # a single reference assignment: atomic for readers

    @property
    def ready(self) -> bool:
        return self._model is not None and not self.shutting_down


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


def _stat_key(model_root: Path, name: str) -> tuple:
    """Changes when LATEST is rewritten or the version folder changes: then a failed name is retried."""
    parts: list = [name]
    for path in (model_root / LATEST, model_root / name, model_root / name / "manifest.json"):
        try:
            st = path.stat()
            parts.append((st.st_mtime_ns, st.st_size, st.st_ino))
        except OSError:
            parts.append(None)
    return tuple(parts)


class VersionWatcher:
    def __init__(
        self,
        model_root: Path,
        holder: ModelHolder,
        metrics: ServiceMetrics,
        poll_interval_s: float,
        user_vectors_max_bytes: int = DEFAULT_USER_VECTORS_MAX_BYTES,
        loader_nice: int = LOADER_NICE,
        loader_duty: float = LOADER_DUTY,
        min_index_recall: float = 0.0,
    ) -> None:
        self.model_root = Path(model_root)
        self.min_index_recall = min_index_recall  # a version whose index records less is refused
        self.loader_nice = loader_nice
        self.loader_duty = loader_duty
        self.user_vectors_max_bytes = user_vectors_max_bytes
        self.holder = holder
        self.metrics = metrics
        self.poll_interval_s = poll_interval_s
        self._task: asyncio.Task | None = None
        self._failed_key: tuple | None = None
        self._lock = asyncio.Lock()

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="recsys-version-watcher")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task

    async def _run(self) -> None:
        while True:
            try:
                await self.check()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("version watcher: unexpected error")
            await asyncio.sleep(self.poll_interval_s)

    def _fail(self, err: LoadError) -> None:
        failure = ReloadFailure(err.version, err.reason, err.detail, time.time())
        self.holder.last_failure = failure
        self.metrics.reloads.labels(outcome="failure", reason=err.reason).inc()
        served = self.holder.model.version if self.holder.model else None
        log.error(
            "refused model version %s (%s): %s; still serving %s (pid %d)",
            err.version,
            err.reason,
            err.detail,
            served or "nothing",
            os.getpid(),
        )

    async def check(self) -> None:
        """One poll: load and swap in what LATEST names, if it is new and loadable."""
        async with self._lock:
            self.holder.last_poll = time.time()
            try:
                name = await asyncio.to_thread(read_latest, self.model_root)
            except LoadError as err:
                key = ("latest", err.reason)
                if key != self._failed_key:
                    self._failed_key = key
                    self._fail(err)
                return
            self.holder.latest_name = name
            if name is None:
                return
            current = self.holder.model
            if current is not None and current.version == name:
                return
            previous = current.version if current is not None else None
            key = await asyncio.to_thread(_stat_key, self.model_root, name)
            if key == self._failed_key:
                return  # already refused, and nothing changed since
            log.info("loading model version %s from %s (pid %d)", name, self.model_root, os.getpid())
            start = time.perf_counter()
            try:
                if current is None:  # nothing served yet: full speed, and TensorFlow's thread pools start at normal priority
                    if await asyncio.to_thread(freeze_libraries):
                        log.info("libraries imported and frozen (%d objects; pid %d)", gc.get_freeze_count(), os.getpid())
                    model = await asyncio.to_thread(
                        load_version,
                        self.model_root,
                        name,
                        user_vectors_max_bytes=self.user_vectors_max_bytes,
                        min_index_recall=self.min_index_recall,
                    )
                else:  # a version serves: loading yields the cores to it (lower priority, and pauses between steps)
                    model = await run_in_loader_thread(
                        load_version,
                        self.model_root,
                        name,
                        nice=self.loader_nice,
                        user_vectors_max_bytes=self.user_vectors_max_bytes,
                        pause=Pacer(self.loader_duty),
                        min_index_recall=self.min_index_recall,
                    )
            except LoadError as err:
                self._failed_key = key
                err.version = err.version or name
                self._fail(err)
                return
            except Exception as exc:
                self._failed_key = key
                self._fail(LoadError("load_error", f"{type(exc).__name__}: {str(exc)[:300]}", name))
                log.exception("unexpected error loading %s", name)
                return
            self._failed_key = None
            self.holder.swap(model)
            del current  # the old version goes now, unless a request in flight still holds it
            await asyncio.sleep(0)  # answer what waits before the collection
            settle_heap()
            self.metrics.reloads.labels(outcome="success", reason="").inc()
            self.metrics.load_seconds.observe(time.perf_counter() - start)
            self.metrics.served(model.version, model.manifest.get("created_at"))
            self.metrics.model_loaded_at.set(model.loaded_at)
            self.metrics.ready.set(1 if self.holder.ready else 0)
            log.info(
                "serving model version %s (was %s), loaded in %.2fs (pid %d)",
                model.version,
                previous or "none",
                model.load_seconds,
                os.getpid(),
            )
