"""Demo only (``demo_enabled``): the page at ``/`` and its script and stylesheet under ``/static/``.

The page (``serving/pages/index.html``) is read once and answered from memory; it says
whether the service has an API key (``data-api-key="required"``): whatever sent the key
for the page (a proxy, a browser extension) may send it with the page's API calls too;
when those answer 401 the page asks for the key and sends it as ``X-API-Key``. The
script and stylesheet (``serving/static/``, no build step) are Starlette's
``StaticFiles`` (:func:`assets`). Both sit behind the guard like every route but the
probes (API key, limits, deadline), and neither is in the OpenAPI document.
"""

from __future__ import annotations

import os
from importlib import resources

from fastapi import APIRouter, Request
from starlette.responses import Response
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

from serving.api.deps import SettingsDep

_PAGE = (resources.files("serving") / "pages" / "index.html").read_bytes()
_PAGES = {flag: _PAGE.replace(b'data-api-key="none"', b'data-api-key="' + flag.encode() + b'"') for flag in ("none", "required")}
_PAGE_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
_ASSET_HEADERS = {"cache-control": "no-cache", "x-content-type-options": "nosniff", "referrer-policy": "no-referrer"}
_PAGE_HEADERS = {**_ASSET_HEADERS, "content-security-policy": _PAGE_CSP, "x-frame-options": "DENY"}

router = APIRouter()


@router.api_route("/", methods=["GET", "HEAD"], include_in_schema=False, response_class=Response)
async def demo_page(request: Request, settings: SettingsDep) -> Response:
    body = _PAGES["required" if settings.api_key is not None else "none"]
    headers = {**_PAGE_HEADERS, "content-length": str(len(body))}
    return Response(b"" if request.method == "HEAD" else body, media_type="text/html; charset=utf-8", headers=headers)


class DemoAssets(StaticFiles):
    """The page's script and stylesheet (GET and HEAD), with the page's caching and sniffing headers."""

    def file_response(
        self, full_path: str | os.PathLike[str], stat_result: os.stat_result, scope: Scope, status_code: int = 200
    ) -> Response:
        response = super().file_response(full_path, stat_result, scope, status_code)
        response.headers.update(_ASSET_HEADERS)
        return response


def assets() -> DemoAssets:
    """The app to mount at ``/static``: the files of ``serving/static/``."""
    return DemoAssets(packages=[("serving", "static")])
