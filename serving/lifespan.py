"""What one app holds besides its routes, and its lifespan.

:func:`attach` makes the app's shared objects once, at construction (nothing is loaded
then) and keeps them on ``app.state``, where :mod:`serving.api.deps` and the guard get
them: the settings, the metrics registry, the :class:`ModelHolder` (the served version),
the :class:`VersionWatcher`, the :class:`Retriever` (micro-batcher and inference
threads), the in-flight :class:`Pressure` and the worker's random ``instance`` id.

:func:`lifespan` starts the inference threads and the watcher, which loads the version
``LATEST`` names in a thread of its own; until one is verified the service is alive
(``/healthz``) but not ready (``/readyz`` and the model routes answer 503). On the way
out readiness goes off before anything stops.
"""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import AsyncIterator

from fastapi import FastAPI
from starlette.datastructures import State

from serving.drain import install_drain_on_signal
from serving.metrics import ServiceMetrics
from serving.middleware import Pressure
from serving.retrieval.retriever import Retriever
from serving.settings import ServiceSettings
from serving.tuning import switch_interval
from serving.version.holder import ModelHolder
from serving.version.watcher import VersionWatcher


def attach(state: State, settings: ServiceSettings) -> None:
    """The app's shared objects, made for ``settings`` and kept on ``state`` (``app.state``)."""
    metrics = ServiceMetrics()
    holder = ModelHolder()
    state.settings = settings
    state.metrics = metrics
    state.holder = holder
    state.pressure = Pressure(settings.max_concurrency)
    state.instance = secrets.token_hex(6)
    state.retriever = Retriever(settings, metrics)
    state.watcher = VersionWatcher(
        settings.model_root,
        holder,
        metrics,
        settings.poll_interval_s,
        int(settings.user_vectors_max_mb * (1 << 20)),
        min_index_recall=settings.min_index_recall,
    )


@contextlib.asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Inference threads and version watcher for the app's life; readiness off first on the way out."""
    settings: ServiceSettings = app.state.settings
    metrics: ServiceMetrics = app.state.metrics
    holder: ModelHolder = app.state.holder
    retriever: Retriever = app.state.retriever
    watcher: VersionWatcher = app.state.watcher
    holder.shutting_down = False
    metrics.model_version.set(0)
    with switch_interval(settings.gil_switch_interval_ms):
        await retriever.start()
        await watcher.start()
        restore = install_drain_on_signal(holder, metrics, settings.shutdown_grace_s)
        try:
            yield
        finally:
            holder.shutting_down = True  # readiness off before anything stops
            metrics.ready.set(0)
            restore()
            await watcher.stop()
            await retriever.stop()
