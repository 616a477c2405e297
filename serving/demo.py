"""What a person looks at: the demo page and the evaluation report.

Two parts, both mounted by :func:`serving.app.create_app`:

* :func:`api_router` — public, documented v1 routes the demo page needs and
  nothing else exposes: a few example user ids (``GET /v1/users``), a known
  user's training history (``GET /v1/users/{user_id}/history``) and the served
  version's evaluation report (``GET /v1/model/report`` as HTML,
  ``GET /v1/model/report.png``). They sit behind the same guard (API key,
  limits, deadline) as every other v1 route.
* :class:`DemoPage` — the static page at ``/`` (``serving/static/``: HTML, one
  script, one stylesheet, no build step), read once when the app is built and
  served from memory. It is the outermost ASGI layer, so the page loads without
  an API key (it holds nothing secret); every request the page makes goes to the
  public API and carries ``X-API-Key`` when the person typed one. Switched off
  with ``RECSYS_DEMO_ENABLED=false`` (``/`` then answers 404).

Everything read from disk here comes from the loaded version (``model.path``),
never from a request.
"""

from __future__ import annotations

import base64
import hashlib
import html
import math
from collections.abc import Awaitable, Callable, MutableMapping
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

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

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
    """The demo's v1 routes; ``served`` is the app's "model or 503" accessor."""
    router = APIRouter()
    not_found = {404: {"model": ErrorResponse, "description": "unknown id"}}

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

    return router


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
    """Outermost ASGI layer: GET/HEAD of the page's three files, from memory; everything else passes on."""

    def __init__(self, app: ASGIApp, *, settings: ServiceSettings) -> None:
        self.app = app
        self.files = _static_files(settings.api_key is not None)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        hit = self.files.get(scope["path"]) if scope["type"] == "http" else None
        if hit is None or scope["method"] not in ("GET", "HEAD"):
            await self.app(scope, receive, send)
            return
        body, media_type = hit
        headers = [
            (b"content-type", media_type.encode()),
            (b"content-length", str(len(body)).encode()),
            (b"cache-control", b"no-cache"),
            (b"x-content-type-options", b"nosniff"),
            (b"referrer-policy", b"no-referrer"),
        ]
        if scope["path"] == "/":
            headers += [(b"content-security-policy", _PAGE_CSP.encode()), (b"x-frame-options", b"DENY")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b"" if scope["method"] == "HEAD" else body})
