"""The only way routes get shared objects: ``Annotated[..., Depends()]`` aliases.

The objects are made once per app (:func:`serving.lifespan.attach`) and kept on
``app.state``; the functions here read them from the request's app. Tests and
benchmarks replace them through ``app.dependency_overrides`` (for example
:func:`get_retrieval` to hold or fail the rankings of a test).

The API key is checked by the guard (:mod:`serving.middleware`), before the
body is read and for every path, the page's files and unknown paths included.
:data:`api_key_header` is the same key as FastAPI's ``APIKeyHeader`` security
scheme: included with the routers when a key is configured, it documents the
key in OpenAPI.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated, TypeVar

from fastapi import Depends, Request
from fastapi.security import APIKeyHeader

from serving.api.errors import ApiError
from serving.metrics import ServiceMetrics
from serving.middleware import Pressure
from serving.model import LoadedModel
from serving.retrieval.retriever import Retriever
from serving.settings import ServiceSettings
from serving.version.holder import ModelHolder

api_key_header = APIKeyHeader(
    name="X-API-Key", auto_error=False, description="required on every route but the probes when the service has a key"
)
T = TypeVar("T")


def _from_state(name: str, kind: type[T]) -> Callable[[Request], Awaitable[T]]:
    """A dependency returning ``app.state.<name>`` (an object made once per app); ``kind`` types it."""

    async def get(request: Request) -> T:
        value: T = getattr(request.app.state, name)
        return value

    get.__name__ = get.__qualname__ = f"get_{name}"
    return get


get_settings = _from_state("settings", ServiceSettings)
get_metrics = _from_state("metrics", ServiceMetrics)
get_holder = _from_state("holder", ModelHolder)
get_pressure = _from_state("pressure", Pressure)
get_instance = _from_state("instance", str)  # this worker's random id (``/readyz`` reports it: which process answered)


def _served(request: Request) -> LoadedModel:
    holder: ModelHolder = request.app.state.holder
    model = holder.model
    if model is None:
        raise ApiError(503, "model_not_loaded", "no model version is loaded yet", {"Retry-After": "5"})
    return model


async def get_served_model(request: Request) -> LoadedModel:
    """The version being served, or 503 ``model_not_loaded``. A request keeps the version it got
    here to its end, whatever is swapped in meanwhile."""
    return _served(request)


@dataclass(frozen=True, slots=True)
class Retrieval:
    """What a retrieval route works with: the served version (kept to the request's end) and the
    app's :class:`Retriever`. One dependency, not two: FastAPI solves each dependency of a route on
    every request (measured in-process: 10.5 µs for the first, 7 µs for the second; BENCHMARKS.md
    "Serving code shape"), and these routes are the service's hot path."""

    model: LoadedModel
    retriever: Retriever


async def get_retrieval(request: Request) -> Retrieval:
    """The served version (or 503 ``model_not_loaded``) and the retriever."""
    retriever: Retriever = request.app.state.retriever
    return Retrieval(_served(request), retriever)


SettingsDep = Annotated[ServiceSettings, Depends(get_settings)]
MetricsDep = Annotated[ServiceMetrics, Depends(get_metrics)]
HolderDep = Annotated[ModelHolder, Depends(get_holder)]
PressureDep = Annotated[Pressure, Depends(get_pressure)]
InstanceId = Annotated[str, Depends(get_instance)]
ServedModel = Annotated[LoadedModel, Depends(get_served_model)]
RetrievalDep = Annotated[Retrieval, Depends(get_retrieval)]
