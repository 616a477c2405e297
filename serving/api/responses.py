"""JSON responses: rendered with orjson, and stamped with the version that answered."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.responses import JSONResponse

from serving.model import LoadedModel

MODEL_VERSION_HEADER = "x-model-version"


class JSONBytesResponse(JSONResponse):
    """JSON rendered with orjson (numpy scalars and arrays allowed). A JSONResponse
    subclass, so the OpenAPI document shows the routes' response models."""

    def render(self, content: Any) -> bytes:
        rendered: bytes = orjson.dumps(content, option=orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS)
        return rendered


def answer(model: LoadedModel, body: dict[str, Any]) -> JSONBytesResponse:
    """``body`` as the 200 answer of ``model``: its ``X-Model-Version`` header names the version
    that answered (the guard stamps every other response with the version being served)."""
    return JSONBytesResponse(body, headers={MODEL_VERSION_HEADER: model.version})
