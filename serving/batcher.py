"""Micro-batching: many concurrent requests, one model call.

Requests ``submit`` a job and await a future. One collector task takes every
waiting job (at most ``max_size``) and hands the whole batch to ``run_batch``
in a single inference thread (never on the event loop). While that thread
works, new jobs queue up and form the next batch, so under load batches grow
by themselves and throughput grows with concurrency.

With ``max_wait_s`` 0 (the service's default) a batch leaves as soon as the
inference thread is free: a quiet service adds no batching delay, and under
load the thread's own run time is what lets the next batch fill, so the event
loop handles one batch's HTTP work while the thread computes another. A
positive ``max_wait_s`` waits that long for mates (up to ``max_size``) first,
which trades latency for bigger batches.

``run_batch(jobs) -> results`` returns one result per job, in order; a result
that is an exception fails only its own request. The optional
``finish_batch(jobs, results) -> results`` then runs on the event loop (light
work that gains nothing from the thread).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Generic, TypeVar

log = logging.getLogger("serving")

J = TypeVar("J")


class BatcherClosed(RuntimeError):
    """The batcher is stopping and takes no more work."""


class MicroBatcher(Generic[J]):
    def __init__(
        self,
        run_batch: Callable[[list[J]], list[Any]],
        *,
        max_wait_s: float,
        max_size: int,
        on_batch: Callable[[int], None] | None = None,
        thread_name: str = "recsys-infer",
        finish_batch: Callable[[list[J], list[Any]], list[Any]] | None = None,
        threads: int = 1,
    ) -> None:
        if max_size < 1:
            raise ValueError("max_size must be at least 1")
        if threads < 1:
            raise ValueError("threads must be at least 1")
        self._threads = threads
        self._slots: asyncio.Semaphore | None = None
        self._running: set[asyncio.Task] = set()
        self._run_batch = run_batch
        self._finish_batch = finish_batch
        self._max_wait_s = max(0.0, max_wait_s)
        self._max_size = max_size
        self._on_batch = on_batch
        self._thread_name = thread_name
        self._queue: asyncio.Queue[tuple[J, asyncio.Future]] | None = None
        self._task: asyncio.Task | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._closed = False
        self._wanted = 0  # queued jobs that fill the batch being gathered
        self._filled: asyncio.Future | None = None

    async def start(self) -> None:
        self._queue = asyncio.Queue()
        self._slots = asyncio.Semaphore(self._threads)
        self._executor = ThreadPoolExecutor(max_workers=self._threads, thread_name_prefix=self._thread_name)
        self._task = asyncio.create_task(self._collect(), name="recsys-microbatcher")

    async def stop(self) -> None:
        self._closed = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        for task in list(self._running):
            task.cancel()
        for task in list(self._running):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self._queue is not None:
            while not self._queue.empty():
                _, fut = self._queue.get_nowait()
                if not fut.done():
                    fut.set_exception(BatcherClosed("the service is shutting down"))
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)

    async def submit(self, job: J) -> Any:
        """Queue ``job`` and wait for its result (raises what ``run_batch`` gave for it)."""
        if self._closed or self._queue is None:
            raise BatcherClosed("the service is shutting down")
        fut: asyncio.Future = asyncio.get_running_loop().create_future()
        self._queue.put_nowait((job, fut))
        filled = self._filled
        if filled is not None and not filled.done() and self._queue.qsize() >= self._wanted:
            filled.set_result(None)
        return await fut

    def _take_queued(self, batch: list[tuple[J, asyncio.Future]]) -> None:
        assert self._queue is not None
        while len(batch) < self._max_size:
            try:
                batch.append(self._queue.get_nowait())
            except asyncio.QueueEmpty:
                return

    async def _gather(self) -> list[tuple[J, asyncio.Future]]:
        """The next batch: everything queued (at most ``max_size``), plus what
        arrives within ``max_wait_s`` while there is room."""
        assert self._queue is not None
        batch = [await self._queue.get()]
        try:
            self._take_queued(batch)
            if len(batch) < self._max_size and self._max_wait_s > 0:
                self._wanted = self._max_size - len(batch)
                self._filled = asyncio.get_running_loop().create_future()
                try:
                    async with asyncio.timeout(self._max_wait_s):
                        await self._filled
                except TimeoutError:
                    pass
                finally:
                    self._filled = None
                self._take_queued(batch)
        except asyncio.CancelledError:
            for _, fut in batch:
                if not fut.done():
                    fut.set_exception(BatcherClosed("the service is shutting down"))
            raise
        return batch

    async def _collect(self) -> None:
        assert self._slots is not None
        while True:
            await self._slots.acquire()  # a thread is free: whatever is queued now forms the batch
            try:
                batch = await self._gather()
            except BaseException:
                self._slots.release()
                raise
            live = [(job, fut) for job, fut in batch if not fut.done()]  # skip requests that gave up
            if not live:
                self._slots.release()
                continue
            if self._on_batch is not None:
                self._on_batch(len(live))
            task = asyncio.create_task(self._run(live))
            self._running.add(task)
            task.add_done_callback(self._running.discard)

    async def _run(self, live: list[tuple[J, asyncio.Future]]) -> None:
        assert self._slots is not None
        loop = asyncio.get_running_loop()
        jobs = [job for job, _ in live]
        try:
            try:
                results = await loop.run_in_executor(self._executor, self._run_batch, jobs)
            except asyncio.CancelledError:
                for _, fut in live:
                    if not fut.done():
                        fut.set_exception(BatcherClosed("the service is shutting down"))
                raise
            except Exception as exc:  # noqa: BLE001 - handed to every waiter
                results = [exc] * len(live)
        finally:
            self._slots.release()
        if self._finish_batch is not None:
            try:
                results = self._finish_batch(jobs, results)
            except Exception as exc:  # noqa: BLE001
                results = [exc] * len(live)
        for (_, fut), result in zip(live, results, strict=True):
            if fut.done():
                continue
            if isinstance(result, BaseException):
                fut.set_exception(result)
            else:
                fut.set_result(result)
