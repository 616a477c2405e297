"""The retrieval path behind one facade: what the routes call.

:class:`Retriever` owns the micro-batcher (:mod:`serving.retrieval.batcher`):
``plan``/``plan_similar`` make a job on the event loop
(:mod:`serving.retrieval.plan`), ``rank`` sends it through the inference thread
(:func:`~serving.retrieval.execute.execute_batch`, full scan included) and back
to the loop for its answer items (:func:`~serving.retrieval.answers.build_answers`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, NamedTuple

from serving.metrics import ServiceMetrics
from serving.model import LoadedModel
from serving.retrieval.answers import AnswerItems, build_answers
from serving.retrieval.batcher import BatcherClosed, MicroBatcher
from serving.retrieval.errors import ServiceStopping
from serving.retrieval.execute import Executed, execute_batch
from serving.retrieval.job import Job
from serving.retrieval.plan import RecommendationQuery, plan_recommendation, plan_similar
from serving.retrieval.strategy import Strategy
from serving.settings import ServiceSettings


class Ranking(NamedTuple):
    """A job's answer: how it was ranked, its items, and the recent item ids left out (None: none were given).

    Immutable; a NamedTuple rather than a frozen dataclass because one is made per request on the
    event loop (about 0.4 us against 0.8 us)."""

    strategy: Strategy
    items: list[dict[str, Any]]
    ignored_item_ids: list[str] | None


class Retriever:
    """Plans jobs on the event loop and ranks them in micro-batches."""

    def __init__(
        self,
        settings: ServiceSettings,
        metrics: ServiceMetrics,
        *,
        execute: Callable[[list[Job]], list[Executed]] | None = None,
    ) -> None:
        """``execute``: the inference-thread step (default :func:`execute_batch`; a benchmark
        replaces it to take the search out of the path)."""
        self._metrics = metrics
        self._batcher: MicroBatcher[Job] = MicroBatcher(
            execute or execute_batch,
            finish_batch=build_answers,
            max_wait_s=settings.microbatch_max_wait_ms / 1000.0,
            max_size=settings.microbatch_max_size,
            threads=settings.inference_threads,
            on_batch=metrics.batch_size.observe,
        )

    async def start(self) -> None:
        """Start the inference threads (the lifespan calls it)."""
        await self._batcher.start()

    async def stop(self) -> None:
        """Refuse new work, fail what waits with :class:`ServiceStopping`, let the threads end."""
        await self._batcher.stop()

    def plan(self, model: LoadedModel, query: RecommendationQuery) -> Job:
        """A recommendation request's job (event loop, cheap); raises InvalidQuery."""
        return plan_recommendation(model, query)

    def plan_similar(self, model: LoadedModel, item_row: int, k: int) -> Job:
        """The job of the ``k`` items nearest item ``item_row``."""
        return plan_similar(model, item_row, k)

    async def rank(self, job: Job) -> Ranking:
        """``job`` ranked in the next micro-batch. Raises InvalidQuery (a query vector that cannot be
        scored) and ServiceStopping; when the caller is cancelled (its deadline passed) the job is marked
        abandoned, so the inference thread drops what is left of it."""
        try:
            items: AnswerItems = await self._batcher.submit(job)
        except BatcherClosed as exc:
            raise ServiceStopping("the service is shutting down") from exc
        except asyncio.CancelledError:
            job.abandoned = True
            raise
        self._metrics.answered(job.strategy)
        return Ranking(job.strategy, items, job.ignored)


def rank_jobs(jobs: list[Job]) -> list[AnswerItems | BaseException]:
    """Both steps of a batch on the caller's thread, without the micro-batcher (tests, benchmarks)."""
    return build_answers(jobs, execute_batch(jobs))
