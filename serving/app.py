"""The FastAPI application (DESIGN.md section 4).

``create_app(settings)`` builds the app; nothing is loaded at import or at
construction. The lifespan starts the micro-batcher and the version watcher,
which loads the version LATEST names in a worker thread; until one is verified
the service is alive (``/healthz``) but not ready (``/readyz`` and the model
routes answer 503).
"""

import asyncio
import contextlib
import logging
import secrets
import signal
import threading
from collections.abc import AsyncIterator, Callable
from types import SimpleNamespace
from typing import Annotated, Any

from fastapi import FastAPI, Path, Query, Request
from fastapi.middleware.cors import CORSMiddleware
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import AfterValidator
from starlette.responses import Response

import recsys
from serving.batcher import BatcherClosed, MicroBatcher
from serving.demo import api_router
from serving.engine import EXACT_NEEDED, build_job, compute_jobs, exact_rerun, finish_jobs, similar_job
from serving.errors import ApiError, JSONBytesResponse, install_error_handlers
from serving.metrics import ServiceMetrics
from serving.middleware import GuardMiddleware, Pressure
from serving.model import LoadedModel
from serving.runtime import ModelHolder, VersionWatcher, switch_interval
from serving.schemas import (
    MAX_ID_LENGTH,
    BatchResponse,
    ErrorResponse,
    HealthResponse,
    ModelResponse,
    ReadyResponse,
    RecommendationResponse,
    SimilarItemsResponse,
    make_schemas,
    printable,
)
from serving.settings import ServiceSettings

log = logging.getLogger("serving")

_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorResponse, "description": "missing or wrong X-API-Key (when a key is configured)"},
    413: {"model": ErrorResponse, "description": "request body too large"},
    422: {"model": ErrorResponse, "description": "invalid request"},
    503: {"model": ErrorResponse, "description": "no model loaded yet, or overloaded"},
    504: {"model": ErrorResponse, "description": "no answer within the deadline"},
}
_NOT_FOUND = {404: {"model": ErrorResponse, "description": "unknown id"}}

PathId = Annotated[str, Path(min_length=1, max_length=MAX_ID_LENGTH), AfterValidator(printable)]


def _install_drain_on_signal(holder: ModelHolder, metrics: ServiceMetrics, grace_s: float) -> Callable[[], None]:
    """On SIGTERM/SIGINT turn readiness off first, then (after ``grace_s``) let uvicorn stop.

    Chains in front of the handlers uvicorn installed; only possible in the main thread.
    """
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    loop = asyncio.get_running_loop()
    installed: dict[int, Any] = {}

    for sig in (signal.SIGTERM, signal.SIGINT):
        previous = signal.getsignal(sig)
        if not callable(previous):
            continue

        def handler(signum: int, frame: Any, previous: Callable = previous) -> None:
            first = not holder.shutting_down
            holder.shutting_down = True
            metrics.ready.set(0)
            if first and grace_s > 0:
                log.info("signal %d: not ready; stopping in %.1fs", signum, grace_s)
                loop.call_soon_threadsafe(loop.call_later, grace_s, previous, signum, frame)
            else:
                previous(signum, frame)

        signal.signal(sig, handler)
        installed[sig] = previous

    def restore() -> None:
        for sig, previous in installed.items():
            with contextlib.suppress(Exception):
                signal.signal(sig, previous)

    return restore


def create_app(settings: ServiceSettings | None = None) -> FastAPI:
    """Build the service. The model is loaded later, in the lifespan, by the watcher."""
    settings = settings or ServiceSettings()
    metrics = ServiceMetrics()
    holder = ModelHolder()
    pressure = Pressure(settings.max_concurrency)
    instance = secrets.token_hex(6)
    batcher: MicroBatcher = MicroBatcher(
        compute_jobs,
        finish_batch=finish_jobs,
        max_wait_s=settings.microbatch_max_wait_ms / 1000.0,
        max_size=settings.microbatch_max_size,
        threads=settings.inference_threads,
        on_batch=metrics.batch_size.observe,
    )
    watcher = VersionWatcher(
        settings.model_root,
        holder,
        metrics,
        settings.poll_interval_s,
        int(settings.user_vectors_max_mb * (1 << 20)),
        min_index_recall=settings.min_index_recall,
    )
    schemas = make_schemas(settings)
    RecommendationRequest = schemas.RecommendationRequest  # noqa: N806
    BatchRequest = schemas.BatchRequest  # noqa: N806

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        holder.shutting_down = False
        metrics.model_version.set(0)
        with switch_interval(settings.gil_switch_interval_ms):
            await batcher.start()
            await watcher.start()
            restore = _install_drain_on_signal(holder, metrics, settings.shutdown_grace_s)
            try:
                yield
            finally:
                holder.shutting_down = True  # readiness off before anything stops
                metrics.ready.set(0)
                restore()
                await watcher.stop()
                await batcher.stop()

    app = FastAPI(
        title="recsys two-tower retrieval",
        version=recsys.__version__,
        description="Recommendations from a two-tower model with a ScaNN index; hot-swaps published versions.",
        lifespan=lifespan,
        docs_url="/docs" if settings.docs_enabled else None,
        redoc_url="/redoc" if settings.docs_enabled else None,
        openapi_url="/openapi.json" if settings.docs_enabled else None,
        default_response_class=JSONBytesResponse,
    )
    app.state.settings = settings
    app.state.metrics = metrics
    app.state.holder = holder
    app.state.watcher = watcher
    app.state.batcher = batcher
    app.state.pressure = pressure
    app.state.instance = instance
    install_error_handlers(app)
    app.add_middleware(GuardMiddleware, settings=settings, metrics=metrics, holder=holder, pressure=pressure)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(settings.cors_origins),
            allow_methods=["GET", "POST"],
            allow_headers=["Content-Type", "X-API-Key"],
            expose_headers=["X-Model-Version"],
            max_age=600,
        )

    def served(request: Request) -> LoadedModel:
        model = holder.model
        if model is None:
            raise ApiError(503, "model_not_loaded", "no model version is loaded yet", {"Retry-After": "5"})
        request.state.model_version = model.version
        return model

    async def rank(job: Any) -> list[dict]:
        try:
            items = await batcher.submit(job)
            if items is EXACT_NEEDED:  # the index's candidates ran short: score every eligible item
                job = exact_rerun(job)
                items = await batcher.submit(job)
        except BatcherClosed as exc:
            raise ApiError(503, "shutting_down", "the service is shutting down", {"Retry-After": "1"}) from exc
        except asyncio.CancelledError:  # the deadline passed (504): the inference thread drops what is left
            job.abandoned = True
            raise
        metrics.answered(job.strategy)
        return items

    def answer(model: LoadedModel, user_id: str | None, job: Any, items: list[dict]) -> dict:
        out = {"model_version": model.version, "user_id": user_id, "strategy": job.strategy, "items": items}
        if job.ignored is not None:  # the request gave recent_item_ids
            out["ignored_item_ids"] = job.ignored
        return out

    @app.post(
        "/v1/recommendations",
        response_model=RecommendationResponse,
        responses=_ERRORS,
        tags=["recommendations"],
        summary="Top-k items for a user, a feature description, this visit's items (session), or nobody (popular items)",
    )
    async def recommend(body: RecommendationRequest, request: Request) -> Response:  # type: ignore[valid-type]
        model = served(request)
        job = build_job(model, body)
        items = await rank(job)
        return JSONBytesResponse(answer(model, body.user_id, job, items))

    @app.post(
        "/v1/recommendations/batch",
        response_model=BatchResponse,
        responses=_ERRORS,
        tags=["recommendations"],
        summary=f"Up to {settings.max_batch} recommendation requests in one call",
    )
    async def recommend_batch(body: BatchRequest, request: Request) -> Response:  # type: ignore[valid-type]
        model = served(request)
        jobs = []
        for i, sub in enumerate(body.requests):
            try:
                jobs.append(build_job(model, sub))
            except ApiError as exc:
                raise ApiError(exc.status, exc.code, f"requests[{i}]: {exc.message}") from exc

        async def ranked(i: int, job: Any) -> list[dict]:
            try:
                return await rank(job)
            except ApiError as exc:  # e.g. features the query tower cannot score
                raise ApiError(exc.status, exc.code, f"requests[{i}]: {exc.message}", exc.headers) from exc

        results = await asyncio.gather(*(ranked(i, job) for i, job in enumerate(jobs)))
        return JSONBytesResponse(
            {
                "model_version": model.version,
                "results": [
                    answer(model, sub.user_id, job, items) for sub, job, items in zip(body.requests, jobs, results, strict=True)
                ],
            }
        )

    @app.get(
        "/v1/users/{user_id}/recommendations",
        response_model=RecommendationResponse,
        responses={**_ERRORS, **_NOT_FOUND},
        tags=["recommendations"],
        summary="Top-k items for a known user",
    )
    async def recommend_for_user(
        request: Request,
        user_id: PathId,
        k: Annotated[int, Query(ge=1, le=min(settings.max_k, settings.max_items_per_call))] = settings.default_k,
        exclude_seen: bool = True,
    ) -> Response:
        model = served(request)
        if user_id not in model.users:
            raise ApiError(404, "unknown_user", "this user is not known to the served model version")
        req = SimpleNamespace(user_id=user_id, features=None, k=k, exclude_seen=exclude_seen, exclude_item_ids=[], filters=None)
        job = build_job(model, req)
        items = await rank(job)
        return JSONBytesResponse(answer(model, user_id, job, items))

    @app.get(
        "/v1/items/{item_id}/similar",
        response_model=SimilarItemsResponse,
        responses={**_ERRORS, **_NOT_FOUND},
        tags=["items"],
        summary="Items closest to an item (dot product of item embeddings)",
    )
    async def similar_items(
        request: Request,
        item_id: PathId,
        k: Annotated[int, Query(ge=1, le=min(settings.max_k, settings.max_items_per_call))] = settings.default_k,
    ) -> Response:
        model = served(request)
        row = model.items.ids.get(item_id)
        if row is None:
            raise ApiError(404, "unknown_item", "this item is not in the served model version")
        items = await rank(similar_job(model, row, k))
        return JSONBytesResponse({"model_version": model.version, "item_id": item_id, "strategy": "similar", "items": items})

    @app.get("/v1/model", response_model=ModelResponse, responses=_ERRORS, tags=["model"], summary="The served version")
    async def model_info(request: Request) -> Response:
        model = served(request)
        return JSONBytesResponse(model.summary())

    # the evaluation report; with settings.demo_enabled (off by default) also the demo page
    # and the user-listing and history routes it needs; all behind the guard (API key)
    app.include_router(api_router(settings, served, _ERRORS))

    @app.get("/healthz", response_model=HealthResponse, tags=["probes"], summary="Liveness: the process answers")
    async def healthz() -> Response:
        return JSONBytesResponse({"status": "alive"})

    @app.get(
        "/readyz",
        response_model=ReadyResponse,
        responses={503: {"model": ReadyResponse, "description": "not ready (reason given)"}},
        tags=["probes"],
        summary="Readiness: a verified model is loaded and the service is not stopping",
    )
    async def readyz() -> Response:
        model = holder.model
        failure = holder.last_failure.as_dict() if holder.last_failure else None
        body: dict[str, Any] = {
            "status": "ready",
            "reason": None,
            "model_version": model.version if model else None,
            "latest": holder.latest_name,
            "instance": instance,
            "last_reload_failure": failure,
        }
        if holder.shutting_down:
            body.update(status="not_ready", reason="shutting_down", detail="the service is stopping")
        elif pressure.saturated:
            detail = f"{pressure.in_flight} requests in flight, the most this worker takes ({pressure.max_concurrency})"
            body.update(status="not_ready", reason="overloaded", detail=detail)
        elif model is None:
            if failure is not None:
                detail = f"version {failure['version']} refused: {failure['reason']}: {failure['detail']}"
            elif holder.latest_name is None:
                detail = f"no published version: {settings.model_root}/LATEST is missing or empty"
            else:
                detail = f"loading version {holder.latest_name}"
            body.update(status="not_ready", reason="model_not_loaded", detail=detail)
        else:
            body["loaded_at"] = model.loaded_at
        metrics.ready.set(1 if body["status"] == "ready" else 0)
        return JSONBytesResponse(body, status_code=200 if body["status"] == "ready" else 503)

    @app.get("/metrics", tags=["probes"], summary="Prometheus metrics", response_class=Response)
    async def prometheus() -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    # Starlette tries routes in order: the API first, so a recommendation request is
    # not matched against the documentation routes FastAPI adds at construction
    docs_paths = {app.openapi_url, app.docs_url, app.redoc_url, app.swagger_ui_oauth2_redirect_url} - {None}
    app.router.routes.sort(key=lambda route: 1 if getattr(route, "path", None) in docs_paths else 0)
    return app
