"""The version watcher: it polls ``LATEST`` and swaps in what it names (DESIGN.md section 5).

A new name is verified and loaded (:func:`serving.version.loader.load_version`):
at full speed when nothing serves yet; while a version serves, in a thread of
its own at a lowered OS priority that pauses between the steps of the load
(:mod:`serving.version.loader_thread`), so that loading yields the cores to
serving. Only a fully loaded and warmed version is swapped in
(:class:`~serving.version.holder.ModelHolder`). Failures leave the old version
served, are kept for ``/readyz`` and counted in the metrics; a refused name is not
retried until ``LATEST`` or its folder changes.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import time
from pathlib import Path

from artifact.checksums import MANIFEST
from artifact.latest import LATEST, LatestError, read_latest
from serving.metrics import ServiceMetrics
from serving.tuning import freeze_libraries, settle_heap
from serving.version.errors import LoadError
from serving.version.holder import ModelHolder, ReloadFailure
from serving.version.loader import load_version
from serving.version.loader_thread import LOADER_DUTY, LOADER_NICE, Pacer, run_in_loader_thread
from serving.version.user_vectors import DEFAULT_USER_VECTORS_MAX_BYTES

log = logging.getLogger("serving")

StatKey = tuple[object, ...]


def _stat_key(model_root: Path, name: str) -> StatKey:
    """Changes when LATEST is rewritten or the version folder changes: then a failed name is retried."""
    parts: list[object] = [name]
    for path in (model_root / LATEST, model_root / name, model_root / name / MANIFEST):
        try:
            st = path.stat()
            parts.append((st.st_mtime_ns, st.st_size, st.st_ino))
        except OSError:
            parts.append(None)
    return tuple(parts)


class VersionWatcher:
    """Polls ``LATEST`` every ``poll_interval_s`` (:meth:`start` / :meth:`stop`); :meth:`check` is one poll."""

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
        self._task: asyncio.Task[None] | None = None
        self._failed_key: StatKey | None = None
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
            try:
                name = await asyncio.to_thread(read_latest, self.model_root)
            except LatestError as err:
                refused: StatKey = ("latest", err.reason)
                if refused != self._failed_key:
                    self._failed_key = refused
                    self._fail(LoadError(err.reason, err.detail))
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
