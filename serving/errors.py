"""The one error shape, ``{"error": {"code", "message"}}``, and fast JSON responses."""

from __future__ import annotations

import logging
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import JSONResponse, Response

log = logging.getLogger("serving")


class JSONBytesResponse(JSONResponse):
    """JSON rendered with orjson (numpy scalars and arrays allowed). A JSONResponse
    subclass, so the OpenAPI document shows the routes' response models."""

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content, option=orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS)


class ApiError(Exception):
    """An error the service answers with ``status`` and ``{"error": {code, message}}``."""

    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}


def error_body(code: str, message: str, **extra: Any) -> dict:
    return {"error": {"code": code, "message": message, **extra}}


def error_bytes(code: str, message: str) -> bytes:
    return orjson.dumps(error_body(code, message))


def error_response(status: int, code: str, message: str, headers: dict[str, str] | None = None, **extra: Any) -> Response:
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


def _location(loc: tuple | list) -> str:
    return ".".join(str(part) for part in loc)


def install_error_handlers(app: FastAPI) -> None:
    """422 for invalid requests, JSON for HTTP errors, 500 ``internal_error`` for the rest."""

    @app.exception_handler(ApiError)
    async def _api_error(_: Request, exc: ApiError) -> Response:
        return error_response(exc.status, exc.code, exc.message, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> Response:
        # Location and message only: never echo the input back.
        details = [{"loc": _location(e.get("loc", ())), "msg": str(e.get("msg", ""))} for e in exc.errors()[:20]]
        first = details[0] if details else {"loc": "", "msg": "invalid request"}
        message = f"{first['loc']}: {first['msg']}" if first["loc"] else first["msg"]
        return error_response(422, "validation_error", message, details=details)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> Response:
        if exc.status_code == 400:  # FastAPI's "error parsing the body" (e.g. bytes that are not UTF-8)
            return error_response(422, "validation_error", "the request body is not valid UTF-8 JSON")
        code = _HTTP_CODES.get(exc.status_code, "http_error")
        message = exc.detail if isinstance(exc.detail, str) else code.replace("_", " ")
        return error_response(exc.status_code, code, message, headers=getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def _internal(_: Request, exc: Exception) -> Response:  # pragma: no cover - the guard middleware catches first
        log.error("unhandled error", exc_info=exc)
        return error_response(500, "internal_error", "internal server error")
