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

Everything read from disk here comes from the loaded version (``model.path``),
never from a request.
"""

from __future__ import annotations

import base64
import hashlib
import html
import math
from collections.abc import Awaitable, Callable
from importlib import resources
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request
from pydantic import AfterValidator, BaseModel, ConfigDict
from starlette.responses import HTMLResponse, Response

from serving.errors import ApiError, JSONBytesResponse
from serving.model import LoadedModel
from serving.schemas import MAX_ID_LENGTH, ErrorResponse, printable
from serving.settings import ServiceSettings

MAX_EXAMPLE_USERS = 100
MAX_HISTORY = 1000
REPORT_PNG = "report.png"

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
                {"model_version": "1795425276", "user_id": "u000001", "total": 31,
                 "items": [{"item_id": "i000042", "title": "Pageturn classic cookbook", "category": "books"}]}
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
        return HTMLResponse(render_report(model, png, problem), headers=_REPORT_HEADERS)

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


def read_report_png(model: LoadedModel) -> tuple[bytes | None, str | None]:
    """(bytes, None) or (None, why not): the loaded version's report.png, checked against the
    manifest's sha256 again on every read (the path comes from the loaded model only)."""
    digest = (model.manifest.get("files") or {}).get(REPORT_PNG)
    if not isinstance(digest, str):
        return None, "the served version has no report.png"
    try:
        data = (model.path / REPORT_PNG).read_bytes()
    except OSError:
        return None, "report.png of the served version cannot be read"
    if hashlib.sha256(data).hexdigest() != digest.lower():
        return None, "report.png of the served version no longer matches its manifest checksum"
    return data, None


# --------------------------------------------------------------------------- the HTML report

_REPORT_HEADERS = {
    "Cache-Control": "no-cache",
    "Content-Security-Policy": "default-src 'none'; img-src data:; style-src 'unsafe-inline'; base-uri 'none'; "
    "form-action 'none'",
    "X-Content-Type-Options": "nosniff",
}
_METRIC_LABELS = {
    "recall_at_10": "Recall@10",
    "recall_at_100": "Recall@100",
    "ndcg_at_10": "NDCG@10",
    "coverage_at_10": "Catalog coverage@10",
}
_REPORT_CSS = """
body{font:15px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;color:#1f2933;background:#f5f7fa}
main{max-width:1100px;margin:0 auto;padding:24px}
h1{font-size:1.5rem;margin:0 0 4px}h2{font-size:1.1rem;margin:28px 0 8px}
.sub{color:#52606d;margin:0 0 16px}
table{border-collapse:collapse;background:#fff;box-shadow:0 1px 2px rgba(0,0,0,.08);margin-bottom:8px}
th,td{padding:6px 12px;border-bottom:1px solid #e4e7eb;text-align:right}
th:first-child,td:first-child{text-align:left}thead th{background:#eef2f7}
td.up{color:#0b6e4f;font-weight:600}td.down{color:#b42318;font-weight:600}
img{max-width:100%;background:#fff;box-shadow:0 1px 2px rgba(0,0,0,.08)}
dl{display:grid;grid-template-columns:max-content 1fr;gap:2px 16px;margin:0}dt{color:#52606d}dd{margin:0}
.note{color:#52606d;font-size:.9rem}
"""


def _fmt(value: Any, digits: int = 4) -> str:
    if isinstance(value, bool) or value is None:
        return "—" if value is None else str(value)
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if not math.isfinite(value):
            return "—"
        return f"{value:.{digits}f}"
    return str(value)


def _e(value: Any, digits: int = 4) -> str:
    return html.escape(_fmt(value, digits))


def _label(name: str) -> str:
    if name in _METRIC_LABELS:
        return _METRIC_LABELS[name]
    if name.startswith("top_") and name.endswith("_accuracy"):
        return f"Top-{name[4:-9]} accuracy"
    return name.replace("_", " ")


def render_report(model: LoadedModel, png: bytes | None, problem: str | None = None) -> str:
    """One self-contained HTML page (the PNG inline as a data URI, so it also works behind an API key)."""
    m = model.manifest
    metrics = m.get("metrics") or {}
    evaluation = metrics.get("evaluation") or {}
    ours = evaluation.get("model") or {}
    pop = evaluation.get("popularity") or {}
    training = metrics.get("training") or {}
    index = m.get("index") or metrics.get("index") or {}
    dataset = m.get("dataset") or {}
    version = html.escape(model.version)
    parts: list[str] = [
        "<!doctype html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>Evaluation report — version {version}</title>",
        f"<style>{_REPORT_CSS}</style></head><body><main>",
        f"<h1>Evaluation report — version {version}</h1>",
        f'<p class="sub">created {_e(m.get("created_at"))} · {_e(m.get("num_items"))} items · '
        f'{_e(m.get("num_users"))} users · embedding dim {_e(m.get("embedding_dim"))}</p>',
    ]

    parts.append('<h2 id="test-metrics">Test split: two-tower model vs popularity</h2>')
    names = [n for n in ours if isinstance(ours.get(n), (int, float))]
    if names:
        parts.append(
            f'<p class="note">{_e(evaluation.get("split", "?"))} split; '
            f'{_e(evaluation.get("num_test_interactions"))} test interactions, '
            f'{_e(evaluation.get("num_test_users_scored"))} users scored; items seen in training excluded.</p>'
        )
        parts.append(
            '<table aria-labelledby="test-metrics"><thead><tr><th scope="col">metric</th><th scope="col">two-tower</th>'
            '<th scope="col">popularity</th><th scope="col">difference</th></tr></thead><tbody>'
        )
        for name in names:
            a, b = ours.get(name), pop.get(name)
            diff = (a - b) if isinstance(a, (int, float)) and isinstance(b, (int, float)) else None
            cls = "" if diff is None else (' class="up"' if diff > 0 else (' class="down"' if diff < 0 else ""))
            sign = "" if diff is None or diff < 0 else "+"
            parts.append(
                f'<tr data-metric="{html.escape(name)}"><th scope="row">{html.escape(_label(name))}</th>'
                f"<td>{_e(a)}</td><td>{_e(b)}</td><td{cls}>{sign}{_e(diff)}</td></tr>"
            )
        parts.append("</tbody></table>")
        if "coverage_at_10" in ours:
            parts.append(
                f'<p class="note">Catalog coverage@10: the share of the catalog that appears in some top-10 list — '
                f"model {_e(ours.get('coverage_at_10'))}, popularity {_e(pop.get('coverage_at_10'))}.</p>"
            )
    else:
        parts.append('<p class="note">The manifest holds no test metrics.</p>')

    ftk = evaluation.get("factorized_top_k") or {}
    if ftk:
        parts.append('<h2 id="ftk">TFRS FactorizedTopK (cross-check of the top-K accuracy above)</h2>')
        parts.append('<table aria-labelledby="ftk"><thead><tr><th scope="col">metric</th><th scope="col">value</th></tr></thead><tbody>')
        for name, value in ftk.items():
            parts.append(f"<tr><th scope=\"row\">{html.escape(str(name))}</th><td>{_e(value)}</td></tr>")
        parts.append("</tbody></table>")

    parts.append('<h2 id="index">ScaNN index vs exact search</h2><dl>')
    parts.append(f"<dt>kind</dt><dd>{_e(index.get('kind'))}</dd>")
    parts.append(f"<dt>recall@10 vs exact</dt><dd data-figure=\"scann-recall\">{_e(index.get('recall_at_10_vs_exact'))}</dd>")
    parts.append(f"<dt>build seconds</dt><dd>{_e(index.get('build_seconds'), 3)}</dd>")
    if index.get("params"):
        params = ", ".join(f"{k}={v}" for k, v in dict(index["params"]).items())
        parts.append(f"<dt>parameters</dt><dd>{html.escape(params)}</dd>")
    parts.append("</dl>")

    parts.append('<h2 id="training">Training</h2><dl>')
    for key in ("best_epoch", "epochs_run", "train_seconds", "examples_per_second"):
        if key in training:
            parts.append(f"<dt>{html.escape(key.replace('_', ' '))}</dt><dd>{_e(training[key], 2)}</dd>")
    parts.append(f"<dt>dataset</dt><dd>{_e(dataset.get('source'))}</dd>")
    parts.append(f"<dt>interactions</dt><dd>{_e(dataset.get('num_interactions'))}</dd></dl>")
    history = training.get("history") or {}
    series = {k: v for k, v in history.items() if isinstance(v, list) and v}
    if series:
        epochs = max(len(v) for v in series.values())
        parts.append('<table aria-label="training curves per epoch"><thead><tr><th scope="col">epoch</th>')
        parts.extend(f'<th scope="col">{html.escape(str(k))}</th>' for k in series)
        parts.append("</tr></thead><tbody>")
        for epoch in range(epochs):
            parts.append(f"<tr><th scope=\"row\">{epoch + 1}</th>")
            parts.extend(f"<td>{_e(v[epoch]) if epoch < len(v) else '—'}</td>" for v in series.values())
            parts.append("</tr>")
        parts.append("</tbody></table>")

    parts.append('<h2 id="charts">Charts (report.png)</h2>')
    if png is not None:
        data = base64.b64encode(png).decode("ascii")
        parts.append(
            f'<img src="data:image/png;base64,{data}" alt="Training loss and validation recall per epoch, and test '
            f'metrics of the two-tower model beside the popularity baseline, for version {version}">'
            '<p class="note">The same image: <a href="report.png">/v1/model/report.png</a>.</p>'
        )
    else:
        parts.append(f'<p class="note">No chart: {html.escape(problem or "no report.png")}.</p>')
    parts.append("</main></body></html>")
    return "\n".join(parts)


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
