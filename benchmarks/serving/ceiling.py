"""The HTTP ceiling: the service's own app (``serving.app.create_app``) with the model's work
taken out.

Everything a request meets is the service's: the uvicorn settings, the guard
middleware (concurrency cap, body limit, deadline, API key, X-Model-Version,
latency histogram), the routers and their dependencies, the request schema, the
orjson response class and the lifespan (interpreter switch interval, the idle
micro-batcher, the version watcher). Two objects are replaced where the app's
own dependencies find them (``app.state``): the served version
(:func:`serving.api.deps.get_served_model` reads the holder) is
:data:`CEILING_MODEL` (version "0", never loaded) and the retriever
(:func:`serving.api.deps.get_retrieval`) a :class:`FixedRetriever` whose
ranking is a fixed 10-item answer shaped like a real one, ready at once.

Not through ``app.dependency_overrides``: while it holds any entry, FastAPI
(0.165, ``solve_dependencies``) rebuilds the description of every dependency
of a route on every request, which measured 45 -> 74 µs per request for a
route with two dependencies: a ceiling built that way is slower than the
service it bounds and flatters the ratio. Tests use the overrides; the
benchmarks' servers must run the service's request path at its own cost. The watcher looks at an empty model root of its own;
once started, the heap is settled (collected and frozen) as the service does
after loading a version. :mod:`benchmarks.serving.variants` adds parts of the
request path back, one at a time.
"""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from fastapi import FastAPI

    from serving.retrieval.retriever import Ranking
    from serving.settings import ServiceSettings

CEILING_ITEMS = [
    {
        "item_id": f"i{row:07d}",
        "score": 100.0 - rank * 1.37,
        "rank": rank,
        "popularity": 3 * rank,
        "category": f"c{rank:02d}",
        "price": 12.5 + rank,
    }
    for rank, row in enumerate((4711, 815, 90210, 1234, 777, 31337, 4242, 1001, 65535, 2718), start=1)
]


@dataclass(frozen=True)
class CeilingModel:
    """What the recommendation route reads of the served version when the retriever is fixed: its name."""

    version: str = "0"
    loaded_at: float = 0.0  # /readyz reports it


CEILING_MODEL = CeilingModel()


def fixed_ranking() -> Ranking:
    from serving.retrieval.retriever import Ranking
    from serving.retrieval.strategy import Strategy

    return Ranking(Strategy.PERSONAL, CEILING_ITEMS, None)


class FixedRetriever:
    """The retriever's interface (``plan``, ``plan_similar``, ``rank``) answering :func:`fixed_ranking`;
    ``pause`` (awaited in ``rank``, none by default) is where a variant puts the part it adds back."""

    def __init__(self, pause: Callable[[Any], Awaitable[None]] | None = None) -> None:
        self._ranking = fixed_ranking()
        self._pause = pause

    def plan(self, model: Any, query: Any) -> Any:
        return query

    def plan_similar(self, model: Any, item_row: int, k: int) -> Any:
        return item_row

    async def start(self) -> None:  # the app's lifespan starts and stops its retriever
        return None

    async def stop(self) -> None:
        return None

    async def rank(self, job: Any) -> Ranking:
        if self._pause is not None:
            await self._pause(job)
        return self._ranking


def ceiling_settings(model_root: Path | None = None) -> ServiceSettings:
    """The service's settings from the ``RECSYS_*`` environment, like its workers'; the model root is
    ``model_root`` or an empty folder of the ceiling's own (nothing to load)."""
    from serving.settings import ServiceSettings

    if model_root is None:
        model_root = Path(tempfile.gettempdir()) / "recsys-ceiling-no-model"  # no LATEST: the watcher finds nothing
        model_root.mkdir(exist_ok=True)
    return ServiceSettings(model_root=model_root)


def with_lifespan_step(
    app: FastAPI, start: Callable[[], Awaitable[None]] | None = None, stop: Callable[[], Awaitable[None]] | None = None
) -> None:
    """After the app's own lifespan has started: ``start()``, then the libraries frozen as the
    service freezes them before its first load (``freeze_libraries``: TensorFlow, ScaNN, pandas,
    pyarrow imported, then ``gc.freeze``) and the heap settled (without it every full collection
    walks the imported libraries' objects: an awaiting variant then stalls a twentieth of its
    requests for 60-100 ms, and a variant that loads a version, 150-200 ms); ``stop()`` before the
    app's lifespan ends. Freezing first matters: settling alone, before the app's watcher has
    frozen the libraries, would freeze what is imported so far and leave TensorFlow unfrozen."""
    from serving.tuning import freeze_libraries, settle_heap

    service_lifespan = app.router.lifespan_context

    @contextlib.asynccontextmanager
    async def lifespan(app: Any) -> AsyncIterator[Any]:
        async with service_lifespan(app) as state:
            if start is not None:
                await start()
            await asyncio.to_thread(freeze_libraries)  # as the app's watcher does it; once per process
            settle_heap()
            try:
                yield state
            finally:
                if stop is not None:
                    await stop()

    app.router.lifespan_context = lifespan


def ceiling_app(retriever: Any = None, settings: ServiceSettings | None = None) -> FastAPI:
    """``create_app(settings)`` serving :data:`CEILING_MODEL` with ``retriever`` (a
    :class:`FixedRetriever` by default) in place of the service's. The app factory of ``ceiling-server``."""
    import recsys  # noqa: F401  (TF_USE_LEGACY_KERAS before anything imports TensorFlow)
    from serving.app import create_app

    app = create_app(settings or ceiling_settings())
    replace_parts(app, retriever if retriever is not None else FixedRetriever(), CEILING_MODEL)
    with_lifespan_step(app)
    return app


def replace_parts(app: FastAPI, retriever: Any, model: Any = None) -> None:
    """Put ``retriever`` (and ``model`` as the served version, if given) where the app's own
    dependencies read them: its lifespan then starts and stops ``retriever`` as the service's."""
    app.state.retriever = retriever
    if model is not None:
        app.state.holder.swap(model)


def serve_ceiling(host: str, port: int, workers: int) -> None:
    import uvicorn

    import recsys  # noqa: F401  (sets TF_USE_LEGACY_KERAS before anything imports TensorFlow)
    from serving.settings import ServiceSettings
    from serving.tuning import uvicorn_options

    kw = uvicorn_options(ServiceSettings(host=host, port=port))  # exactly what `recsys serve` runs with
    if workers == 1:
        uvicorn.run(ceiling_app(), **kw)
    else:
        uvicorn.run("benchmarks.serving.ceiling:ceiling_app", factory=True, workers=workers, **kw)
