"""The one error shape, ``{"error": {"code", "message"}}``, and the app's exception handlers.

:data:`EXCEPTION_HANDLERS` (given to ``FastAPI(exception_handlers=...)``) maps

* :class:`ApiError` (raised by routes and dependencies) to its status and code;
* the retrieval path's :class:`~serving.retrieval.errors.InvalidQuery` to 422 with its code
  and :class:`~serving.retrieval.errors.ServiceStopping` to 503 ``shutting_down``;
* request validation to 422 ``validation_error`` (location and message, never the input),
  HTTP errors to their status, anything else to 500 ``internal_error``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine, Mapping, Sequence
from typing import Any

import orjson
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import Request
from starlette.responses import Response

from serving.api.responses import JSONBytesResponse
from serving.retrieval.errors import InvalidQuery, ServiceStopping

log = logging.getLogger("serving")


class ApiError(Exception):
    """An error the service answers with ``status`` and ``{"error": {code, message}}``."""

    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}


def error_body(code: str, message: str, **extra: Any) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, **extra}}


def error_bytes(code: str, message: str) -> bytes:
    rendered: bytes = orjson.dumps(error_body(code, message))
    return rendered


def error_response(status: int, code: str, message: str, headers: Mapping[str, str] | None = None, **extra: Any) -> Response:
    return JSONBytesResponse(error_body(code, message, **extra), status_code=status, headers=headers)


_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "validation_error",
    429: "too_many_requests",
    503: "unavailable",
    504: "timeout",
}


def _location(loc: Sequence[Any]) -> str:
    return ".".join(str(part) for part in loc)


async def _api_error(_: Request, exc: ApiError) -> Response:
    return error_response(exc.status, exc.code, exc.message, headers=exc.headers)


async def _invalid_query(_: Request, exc: InvalidQuery) -> Response:
    return error_response(422, exc.code, exc.message)


async def _stopping(_: Request, exc: ServiceStopping) -> Response:
    return error_response(503, "shutting_down", "the service is shutting down", headers={"Retry-After": "1"})


async def _validation(_: Request, exc: RequestValidationError) -> Response:
    # Location and message only: never echo the input back.
    details = [{"loc": _location(e.get("loc", ())), "msg": str(e.get("msg", ""))} for e in exc.errors()[:20]]
    first = details[0] if details else {"loc": "", "msg": "invalid request"}
    message = f"{first['loc']}: {first['msg']}" if first["loc"] else first["msg"]
    return error_response(422, "validation_error", message, details=details)


async def _http(_: Request, exc: StarletteHTTPException) -> Response:
    if exc.status_code == 400:  # FastAPI's "error parsing the body" (e.g. bytes that are not UTF-8)
        return error_response(422, "validation_error", "the request body is not valid UTF-8 JSON")
    code = _HTTP_CODES.get(exc.status_code, "http_error")
    message = exc.detail if isinstance(exc.detail, str) else code.replace("_", " ")
    return error_response(exc.status_code, code, message, headers=exc.headers)


async def _internal(_: Request, exc: Exception) -> Response:  # pragma: no cover - the guard middleware catches first
    log.error("unhandled error", exc_info=exc)
    return error_response(500, "internal_error", "internal server error")


# what FastAPI(exception_handlers=...) takes: each handler gets the exceptions of its key
EXCEPTION_HANDLERS: dict[int | type[Exception], Callable[[Request, Any], Coroutine[Any, Any, Response]]] = {
    ApiError: _api_error,
    InvalidQuery: _invalid_query,
    ServiceStopping: _stopping,
    RequestValidationError: _validation,
    StarletteHTTPException: _http,
    Exception: _internal,
}
