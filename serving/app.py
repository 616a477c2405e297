"""The FastAPI application (DESIGN.md section 4).

``create_app(settings)`` composes the service and does nothing else: the shared
objects and the lifespan (:mod:`serving.lifespan`), the guard and CORS middleware
(:mod:`serving.middleware`), and one router per resource (:mod:`serving.api.routes`).
Nothing is loaded at import or at construction: the lifespan's version watcher
loads the version ``LATEST`` names.
"""

from __future__ import annotations

from collections.abc import Sequence

from fastapi import APIRouter, Depends, FastAPI, params
from fastapi.middleware.cors import CORSMiddleware
from fastapi.routing import APIRoute

import recsys
from serving.api.deps import api_key_header
from serving.api.errors import EXCEPTION_HANDLERS
from serving.api.responses import MODEL_VERSION_HEADER, JSONBytesResponse
from serving.api.routes import items, model, pages, probes, recommendations, users
from serving.lifespan import attach, lifespan
from serving.middleware import GuardMiddleware
from serving.settings import ServiceSettings


def create_app(settings: ServiceSettings | None = None) -> FastAPI:
    """Build the service. The model is loaded later, in the lifespan, by the watcher."""
    settings = settings or ServiceSettings()
    app = FastAPI(
        title="recsys two-tower retrieval",
        version=recsys.__version__,
        description="Recommendations from a two-tower model with a ScaNN index; hot-swaps published versions.",
        lifespan=lifespan,
        docs_url="/docs" if settings.docs_enabled else None,
        redoc_url="/redoc" if settings.docs_enabled else None,
        openapi_url="/openapi.json" if settings.docs_enabled else None,
        default_response_class=JSONBytesResponse,
        exception_handlers=EXCEPTION_HANDLERS,
    )
    attach(app.state, settings)
    state = app.state
    app.add_middleware(GuardMiddleware, settings=settings, metrics=state.metrics, holder=state.holder, pressure=state.pressure)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(settings.cors_origins),
            allow_methods=["GET", "POST"],
            allow_headers=["Content-Type", "X-API-Key"],
            expose_headers=[MODEL_VERSION_HEADER],
            max_age=600,
        )

    # the guard checks the key (every path); with one configured the document shows it too
    keyed = [Depends(api_key_header)] if settings.api_key is not None else []
    include_flat(app, recommendations.router(settings), keyed)
    include_flat(app, items.router(settings), keyed)
    include_flat(app, model.router, keyed)
    if settings.demo_enabled:  # a development tool; these routes expose customer data
        include_flat(app, users.router, keyed)
        include_flat(app, pages.router, [])
        app.mount("/static", pages.assets(), name="static")
    include_flat(app, probes.router, [])

    # Starlette tries routes in order: the API first, so a recommendation request is
    # not matched against the documentation routes FastAPI adds at construction
    docs_paths = {app.openapi_url, app.docs_url, app.redoc_url, app.swagger_ui_oauth2_redirect_url} - {None}
    app.router.routes.sort(key=lambda route: 1 if getattr(route, "path", None) in docs_paths else 0)
    return app


def include_flat(app: FastAPI, router: APIRouter, dependencies: Sequence[params.Depends]) -> None:
    """``router``'s path operations declared on the app's own router, with ``dependencies`` added.

    Not ``app.include_router``: FastAPI 0.165 keeps an included router as a nested matcher that
    every request walks (measured in-process, one GET route: 24.2 µs per request declared on the
    app, 32.7 µs through an included router; ``/tmp``-free figures in BENCHMARKS.md "Serving code
    shape"). The routes stay one router per resource; the document is the same."""
    for route in router.routes:
        if not isinstance(route, APIRoute):
            raise TypeError(f"{route!r}: only path operations are declared on the app's router")
        app.router.add_api_route(
            route.path,
            route.endpoint,
            response_model=route.response_model,
            status_code=route.status_code,
            tags=route.tags,
            dependencies=[*dependencies, *route.dependencies],
            summary=route.summary,
            description=route.description,
            response_description=route.response_description,
            responses=route.responses,
            deprecated=route.deprecated,
            methods=route.methods,
            operation_id=route.operation_id,
            include_in_schema=route.include_in_schema,
            response_class=route.response_class,
            name=route.name,
            openapi_extra=route.openapi_extra,
        )
