"""``GET /v1/model`` (the served version) and its evaluation report: ``GET /v1/model/report``
(HTML: figures from the manifest and report.png) and ``GET /v1/model/report.png``.

No customer data: everything read from disk comes from the loaded version (``model.path``),
never from a request. The page is rendered by :mod:`serving.report`.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from starlette.responses import HTMLResponse, Response

from serving.api.deps import ServedModel
from serving.api.errors import ApiError
from serving.api.responses import answer
from serving.api.schemas import ERRORS, ErrorResponse, ModelResponse
from serving.report import REPORT_HEADERS, read_report_png, render_report
from serving.version.describe import describe

router = APIRouter(tags=["model"])

_NO_REPORT: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorResponse, "description": "the served version has no report.png"}
}


@router.get("/v1/model", response_model=ModelResponse, responses=ERRORS, summary="The served version")
async def model_info(model: ServedModel) -> Response:
    return answer(model, describe(model))


@router.get(
    "/v1/model/report",
    response_class=HTMLResponse,
    responses={**ERRORS, 200: {"content": {"text/html": {}}, "description": "an HTML page"}},
    summary="Evaluation report of the served version (HTML: figures from the manifest and report.png)",
)
def model_report(model: ServedModel) -> Response:
    png, problem = read_report_png(model)
    return HTMLResponse(render_report(model, png, problem), headers={**REPORT_HEADERS, "x-model-version": model.version})


@router.get(
    "/v1/model/report.png",
    response_class=Response,
    responses={**ERRORS, **_NO_REPORT, 200: {"content": {"image/png": {}}, "description": "the version's report.png"}},
    summary="The served version's report.png (training curves, model vs popularity)",
)
def model_report_png(model: ServedModel) -> Response:
    png, problem = read_report_png(model)
    if png is None:
        raise ApiError(404, "no_report", problem or "no report.png")
    return Response(png, media_type="image/png", headers={"Cache-Control": "no-cache", "x-model-version": model.version})
