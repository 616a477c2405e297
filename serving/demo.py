"""What a person looks at: the demo page and the evaluation report.

:func:`api_router` (mounted by :func:`serving.app.create_app`) holds

* always: the served version's evaluation report (``GET /v1/model/report`` as
  HTML, ``GET /v1/model/report.png``), documented v1 routes;
* only with ``demo_enabled`` (``RECSYS_DEMO_ENABLED=true``; off by default, a
  development tool that ``scripts/demo.sh`` switches on): the routes the demo
  page needs that expose customer data, a few known user ids (``GET /v1/users``)
  and a known user's training history (``GET /v1/users/{user_id}/history``),
  both documented; and :class:`DemoPage`, the page at ``/`` with its script and
  stylesheet (``serving/static/``, no build step), read once when the app is
  built and served from memory (not in OpenAPI).

Every one of them is an ordinary route behind the guard: with
``RECSYS_API_KEY`` set, the page's files need ``X-API-Key`` like every other
route but the probes. The page then says so (``data-api-key="required"``):
whatever sent the key for the page (a proxy, a browser extension) may send it
with the page's API calls too; when those answer 401 the page asks for the key
and sends it as ``X-API-Key``. With the demo off, ``/`` and the two user routes
answer 404 and are absent from ``/openapi.json``.

The report page itself is rendered by :mod:`serving.report`. Everything read
from disk comes from the loaded version (``model.path``), never from a request.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from importlib import resources
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request
from pydantic import AfterValidator, BaseModel, ConfigDict
from starlette.responses import HTMLResponse, Response

from serving.errors import ApiError, JSONBytesResponse
from serving.model import LoadedModel
from serving.report import REPORT_HEADERS, read_report_png, render_report
from serving.schemas import MAX_ID_LENGTH, ErrorResponse, printable
from serving.settings import ServiceSettings

MAX_EXAMPLE_USERS = 100
MAX_HISTORY = 1000

PathId = Annotated[str, Path(min_length=1, max_length=MAX_ID_LENGTH), AfterValidator(printable)]


# --------------------------------------------------------------------------- response models


class ExampleUsersResponse(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"model_version": "1795425276", "num_users": 943, "user_ids": ["u000001", "u000002"]}]}
    )

    model_version: str
    num_users: int
    user_ids: list[str]


class HistoryItem(BaseModel):
    """An item the user interacted with in training: id, then the item's metadata columns."""

    model_config = ConfigDict(
        extra="allow",
        json_schema_extra={"examples": [{"item_id": "i000042", "title": "Pageturn classic cookbook", "category": "books"}]},
    )

    item_id: str


class HistoryResponse(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "model_version": "1795425276",
                    "user_id": "u000001",
                    "total": 31,
                    "items": [{"item_id": "i000042", "title": "Pageturn classic cookbook", "category": "books"}],
                }
            ]
        }
    )

    model_version: str
    user_id: str
    total: int
    items: list[HistoryItem]


# --------------------------------------------------------------------------- the API routes


def api_router(
    settings: ServiceSettings,
    served: Callable[[Request], LoadedModel],
    errors: dict[int | str, dict[str, Any]],
) -> APIRouter:
    """The report routes, and with ``settings.demo_enabled`` the demo page and the user
    routes it needs; ``served`` is the app's "model or 503" accessor."""
    router = APIRouter()
    if settings.demo_enabled:
        _add_demo_routes(router, settings, served, errors)
    _add_report_routes(router, served, errors)
    return router


def _add_demo_routes(
    router: APIRouter,
    settings: ServiceSettings,
    served: Callable[[Request], LoadedModel],
    errors: dict[int | str, dict[str, Any]],
) -> None:
    """The page's files and the two routes that expose customer data (known user ids, a user's history)."""
    not_found = {404: {"model": ErrorResponse, "description": "unknown id"}}
    page = DemoPage(settings)
    for path in _PAGES:
        router.add_api_route(path, page.endpoint(path), methods=["GET", "HEAD"], include_in_schema=False, response_class=Response)

    @router.get(
        "/v1/users",
        response_model=ExampleUsersResponse,
        responses=errors,
        tags=["users"],
        summary="A few user ids the served version knows (users with training history first)",
    )
    async def example_users(
        request: Request,
        limit: Annotated[int, Query(ge=1, le=MAX_EXAMPLE_USERS, description="how many ids")] = 20,
    ) -> Response:
        model = served(request)
        return JSONBytesResponse(
            {"model_version": model.version, "num_users": len(model.users), "user_ids": example_user_ids(model, limit)}
        )

    @router.get(
        "/v1/users/{user_id}/history",
        response_model=HistoryResponse,
        responses={**errors, **not_found},
        tags=["users"],
        summary="Items a known user interacted with in the training data (catalog order), with metadata",
    )
    async def user_history(
        request: Request,
        user_id: PathId,
        limit: Annotated[int, Query(ge=1, le=MAX_HISTORY, description="most items returned")] = 20,
    ) -> Response:
        model = served(request)
        user_row = model.users.get(user_id)
        if user_row is None:
            raise ApiError(404, "unknown_user", "this user is not known to the served model version")
        rows = model.seen.of(user_row)
        items = model.items.records(rows[:limit])
        return JSONBytesResponse({"model_version": model.version, "user_id": user_id, "total": len(rows), "items": items})


def _add_report_routes(
    router: APIRouter, served: Callable[[Request], LoadedModel], errors: dict[int | str, dict[str, Any]]
) -> None:
    """The served version's evaluation report (no customer data: figures from the manifest and report.png)."""
    no_report = {404: {"model": ErrorResponse, "description": "the served version has no report.png"}}

    @router.get(
        "/v1/model/report",
        response_class=HTMLResponse,
        responses={**errors, 200: {"content": {"text/html": {}}, "description": "an HTML page"}},
        tags=["model"],
        summary="Evaluation report of the served version (HTML: figures from the manifest and report.png)",
    )
    def model_report(request: Request) -> Response:
        model = served(request)
        png, problem = read_report_png(model)
        return HTMLResponse(render_report(model, png, problem), headers=REPORT_HEADERS)

    @router.get(
        "/v1/model/report.png",
        response_class=Response,
        responses={**errors, **no_report, 200: {"content": {"image/png": {}}, "description": "the version's report.png"}},
        tags=["model"],
        summary="The served version's report.png (training curves, model vs popularity)",
    )
    def model_report_png(request: Request) -> Response:
        model = served(request)
        png, problem = read_report_png(model)
        if png is None:
            raise ApiError(404, "no_report", problem or "no report.png")
        return Response(png, media_type="image/png", headers={"Cache-Control": "no-cache"})


def example_user_ids(model: LoadedModel, limit: int) -> list[str]:
    """Up to ``limit`` known user ids in users-table order, those with training history first."""
    with_history: list[str] = []
    without: list[str] = []
    for row, uid in enumerate(model.users):
        if model.seen.count(row):
            with_history.append(uid)
            if len(with_history) >= limit:
                break
        elif len(without) < limit:
            without.append(uid)
    return (with_history + without)[:limit]


# --------------------------------------------------------------------------- the static page

_PAGES = {
    "/": ("index.html", "text/html; charset=utf-8"),
    "/static/demo.js": ("demo.js", "text/javascript; charset=utf-8"),
    "/static/demo.css": ("demo.css", "text/css; charset=utf-8"),
}
_PAGE_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)


def _static_files(api_key_required: bool) -> dict[str, tuple[bytes, str]]:
    folder = resources.files("serving") / "static"
    out = {}
    for path, (name, media_type) in _PAGES.items():
        data = (folder / name).read_bytes()
        if name == "index.html":
            flag = b"required" if api_key_required else b"none"
            data = data.replace(b'data-api-key="none"', b'data-api-key="' + flag + b'"')
        out[path] = (data, media_type)
    return out


class DemoPage:
    """The page's three files (``_PAGES``), read once and answered from memory to GET and HEAD.

    Mounted as routes by :func:`api_router` when the demo is on, so the guard (API
    key, limits, deadline) applies to them as to every other route but the probes."""

    def __init__(self, settings: ServiceSettings) -> None:
        self.files = _static_files(settings.api_key is not None)

    def endpoint(self, path: str) -> Callable[[Request], Awaitable[Response]]:
        """The route handler answering ``path`` (one of ``_PAGES``)."""
        body, media_type = self.files[path]
        headers = {
            "content-length": str(len(body)),
            "cache-control": "no-cache",
            "x-content-type-options": "nosniff",
            "referrer-policy": "no-referrer",
        }
        if path == "/":
            headers.update({"content-security-policy": _PAGE_CSP, "x-frame-options": "DENY"})

        async def serve(request: Request) -> Response:
            return Response(b"" if request.method == "HEAD" else body, media_type=media_type, headers=headers)

        return serve
