"""Micro-batching: many concurrent requests, one model call.

Requests ``submit`` a job and await a future. Whenever an inference thread is
free, the jobs waiting at that moment (at most ``max_size``) leave as one batch
for ``run_batch``, which runs in that thread (never on the event loop). While
the threads work, new jobs queue up and form the next batches, so under load
batches grow by themselves and throughput grows with concurrency.

With ``max_wait_s`` 0 (the service's default) a batch leaves as soon as a thread
is free: a quiet service adds no batching delay, and under load the threads'
own run time is what lets the next batch fill, so the event loop handles one
batch's HTTP work while a thread computes another. A positive ``max_wait_s``
waits that long for mates (up to ``max_size``) first, which trades latency for
bigger batches.

``run_batch(jobs) -> results`` returns one result per job, in order; a result
that is an exception fails only its own request. The optional
``finish_batch(jobs, results) -> results`` then runs on the event loop (light
work that gains nothing from the thread).

The hand-over is kept lean because it is paid per batch on the event loop, the
service's busiest thread: a plain deque of waiting jobs, dedicated threads fed
through a ``queue.SimpleQueue``, and one ``call_soon_threadsafe`` per finished
batch (no executor futures, no collector task).
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
from collections import deque
from collections.abc import Callable
from typing import Any, Generic, TypeVar

log = logging.getLogger("serving")

J = TypeVar("J")

_Batch = list[tuple[Any, asyncio.Future[Any]]]


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
        join_timeout_s: float = 60.0,
    ) -> None:
        if max_size < 1:
            raise ValueError("max_size must be at least 1")
        if threads < 1:
            raise ValueError("threads must be at least 1")
        self._run_batch = run_batch
        self._finish_batch = finish_batch
        self._max_wait_s = max(0.0, max_wait_s)
        self._max_size = max_size
        self._on_batch = on_batch
        self._thread_name = thread_name
        self._threads = threads
        self._join_timeout_s = join_timeout_s
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pending: deque[tuple[J, asyncio.Future[Any]]] = deque()
        self._work: queue.SimpleQueue[_Batch | None] = queue.SimpleQueue()
        self._workers: list[threading.Thread] = []
        self._in_flight: dict[int, _Batch] = {}
        self._idle = 0
        self._closed = True
        self._dispatch_scheduled = False
        self._timer: asyncio.TimerHandle | None = None
        self._wait_over = False

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._closed = False
        self._idle = self._threads
        self._work = queue.SimpleQueue()
        self._workers = [
            threading.Thread(target=self._serve, args=(self._work,), name=f"{self._thread_name}-{i}", daemon=True)
            for i in range(self._threads)
        ]
        for worker in self._workers:
            worker.start()

    async def stop(self) -> None:
        """Refuse new work, fail what waits or runs with :class:`BatcherClosed`, let the threads end."""
        self._closed = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        closed = BatcherClosed("the service is shutting down")
        while self._pending:
            _, fut = self._pending.popleft()
            if not fut.done():
                fut.set_exception(closed)
        for batch in self._in_flight.values():
            for _, fut in batch:
                if not fut.done():
                    fut.set_exception(closed)
        self._in_flight.clear()
        workers, self._workers = self._workers, []
        for _ in workers:
            self._work.put(None)
        if workers:
            await asyncio.to_thread(self._join, workers)

    def _join(self, workers: list[threading.Thread]) -> None:
        for worker in workers:
            worker.join(self._join_timeout_s)
            if worker.is_alive():
                log.warning("inference thread %s still busy after %.0fs; leaving it", worker.name, self._join_timeout_s)

    async def submit(self, job: J) -> Any:
        """Queue ``job`` and wait for its result (raises what ``run_batch`` gave for it)."""
        loop = self._loop
        if self._closed or loop is None:
            raise BatcherClosed("the service is shutting down")
        fut = loop.create_future()
        self._pending.append((job, fut))
        if self._idle and not self._dispatch_scheduled and (self._timer is None or len(self._pending) >= self._max_size):
            # after the callbacks already due, so requests read in the same loop pass share the batch
            self._dispatch_scheduled = True
            loop.call_soon(self._dispatch)
        return await fut

    # ------------------------------------------------------------------ event loop side
    def _dispatch(self) -> None:
        """Hand batches to idle threads (after ``max_wait_s`` for mates when one is set)."""
        self._dispatch_scheduled = False
        while self._idle and self._pending and not self._closed:
            if self._max_wait_s > 0 and len(self._pending) < self._max_size and not self._wait_over:
                if self._timer is None:
                    assert self._loop is not None
                    self._timer = self._loop.call_later(self._max_wait_s, self._waited)
                return
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            self._wait_over = False
            batch: _Batch = []
            while self._pending and len(batch) < self._max_size:
                entry = self._pending.popleft()
                if not entry[1].done():  # skip requests that gave up
                    batch.append(entry)
            if not batch:
                continue
            self._idle -= 1
            self._in_flight[id(batch)] = batch
            if self._on_batch is not None:
                self._on_batch(len(batch))
            self._work.put(batch)

    def _waited(self) -> None:
        self._timer = None
        self._wait_over = True
        self._dispatch()

    def _done(self, batch: _Batch, results: list[Any] | BaseException) -> None:
        self._idle += 1
        if self._in_flight.pop(id(batch), None) is None:  # stopped meanwhile: its requests were failed
            return
        if self._pending and not self._dispatch_scheduled:
            self._dispatch()  # the next batch leaves before this one is finished here
        jobs = [job for job, _ in batch]
        if not isinstance(results, BaseException) and len(results) != len(batch):
            results = RuntimeError(f"the batch gave {len(results)} results for {len(batch)} jobs")
        if not isinstance(results, BaseException) and self._finish_batch is not None:
            try:
                results = self._finish_batch(jobs, results)
            except Exception as exc:
                results = exc
        if isinstance(results, BaseException):
            results = [results] * len(batch)
        for (_, fut), result in zip(batch, results, strict=True):
            if fut.done():
                continue
            if isinstance(result, BaseException):
                fut.set_exception(result)
            else:
                fut.set_result(result)

    # ------------------------------------------------------------------ inference threads
    def _serve(self, work: queue.SimpleQueue[_Batch | None]) -> None:
        loop = self._loop
        assert loop is not None
        while True:
            batch = work.get()
            if batch is None:
                return
            results: list[Any] | BaseException
            try:
                results = self._run_batch([job for job, _ in batch])
            except Exception as exc:
                results = exc
            try:
                loop.call_soon_threadsafe(self._done, batch, results)
            except RuntimeError:  # the loop is closed: nobody waits any more
                return
