"""The serving_gap variants: the HTTP ceiling (:func:`benchmarks.serving.ceiling.ceiling_app`,
the service's app with its model's work replaced) with one part of the request path added back.

- ``await``: the retriever awaits a future the event loop resolves on its next
  pass (one suspension per request, no thread);
- ``handoff``: the retriever hands a do-nothing job to a
  :class:`serving.retrieval.batcher.MicroBatcher` (the inference thread, a batch
  per free thread, one ``call_soon_threadsafe`` per batch) and awaits it;
- ``no-search``: the served model is not replaced (the service loads the
  version under ``--model-root`` itself) and the service's own
  :class:`~serving.retrieval.retriever.Retriever` (planning, the micro-batcher,
  the answer items), except that the inference thread hands back rankings
  computed once per user (:class:`CachedRankings`) instead of searching: what
  the service would do if the search cost nothing.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import TYPE_CHECKING, Any

from benchmarks.serving.ceiling import FixedRetriever, ceiling_app, ceiling_settings, replace_parts, with_lifespan_step

if TYPE_CHECKING:
    from fastapi import FastAPI

    from serving.retrieval.job import Job

VARIANTS = ("await", "handoff", "no-search")


class CachedRankings:
    """The inference thread's half of the service with the search replaced by a lookup: each
    (version, user row, k) is computed for real once (``execute_batch``), then handed back as a
    final ranking."""

    def __init__(self) -> None:
        self._rankings: dict[tuple[int, int | None, int], Any] = {}

    def __call__(self, jobs: list[Job]) -> list[Any]:
        from serving.retrieval.execute import Ranked, Searched, execute_batch

        def key(job: Job) -> tuple[int, int | None, int]:
            return id(job.model), job.user_row, job.k

        missing = [job for job in jobs if key(job) not in self._rankings]
        failed: dict[tuple[int, int | None, int], BaseException] = {}
        for job, got in zip(missing, execute_batch(missing), strict=True):
            if isinstance(got, BaseException):
                failed[key(job)] = got  # not kept: the next batch tries again
                continue
            if isinstance(got, Searched):
                r = got.result
                first, last = int(r.offsets[got.pos]), int(r.offsets[got.pos + 1])
                got = Ranked(r.rows[first:last].copy(), r.scores[first:last].copy())
            self._rankings[key(job)] = got
        return [failed[key(job)] if key(job) in failed else self._rankings[key(job)] for job in jobs]


def _no_search_app(model_root: Path) -> FastAPI:
    import recsys  # noqa: F401  (sets TF_USE_LEGACY_KERAS before anything imports TensorFlow)
    from serving.app import create_app
    from serving.retrieval.retriever import Retriever

    settings = ceiling_settings(model_root)
    app = create_app(settings)
    # the service's retriever with one part replaced, its inference step; the version itself is loaded by the app's watcher
    replace_parts(app, Retriever(settings, app.state.metrics, execute=CachedRankings()))
    with_lifespan_step(app)
    return app


def variant_app(variant: str, model_root: Path | None = None) -> FastAPI:
    """The ceiling with ``variant``'s part of the service's path (one of :data:`VARIANTS`)."""
    if variant == "await":

        async def next_pass(job: Any) -> None:
            loop = asyncio.get_running_loop()
            fut = loop.create_future()
            loop.call_soon(fut.set_result, None)
            await fut

        return ceiling_app(FixedRetriever(next_pass))

    if variant == "handoff":
        from serving.retrieval.batcher import MicroBatcher

        settings = ceiling_settings()
        batcher: MicroBatcher[Any] = MicroBatcher(
            lambda jobs: [None] * len(jobs), max_wait_s=0.0, max_size=settings.microbatch_max_size
        )

        async def handed_off(job: Any) -> None:
            await batcher.submit(job)

        app = ceiling_app(FixedRetriever(handed_off), settings)
        with_lifespan_step(app, batcher.start, batcher.stop)
        return app

    if variant == "no-search":
        if model_root is None:
            raise ValueError("the no-search variant needs --model-root")
        return _no_search_app(Path(model_root))

    raise ValueError(f"unknown variant {variant!r}; one of {VARIANTS}")


def serve_variant(variant: str, port: int, model_root: Path | None) -> None:
    import uvicorn

    from serving.settings import ServiceSettings
    from serving.tuning import uvicorn_options

    uvicorn.run(variant_app(variant, model_root), **uvicorn_options(ServiceSettings(host="127.0.0.1", port=port)))
