"""The probes: ``/healthz`` (liveness), ``/readyz`` (readiness, with the reason when not ready)
and ``/metrics`` (Prometheus). The guard lets them through without the API key."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.responses import Response

from serving.api.deps import HolderDep, InstanceId, MetricsDep, PressureDep, SettingsDep
from serving.api.responses import JSONBytesResponse
from serving.api.schemas import HealthResponse, ReadyResponse

router = APIRouter(tags=["probes"])


@router.get("/healthz", response_model=HealthResponse, summary="Liveness: the process answers")
async def healthz() -> Response:
    return JSONBytesResponse({"status": "alive"})


@router.get(
    "/readyz",
    response_model=ReadyResponse,
    responses={503: {"model": ReadyResponse, "description": "not ready (reason given)"}},
    summary="Readiness: a verified model is loaded and the service is not stopping",
)
async def readyz(
    settings: SettingsDep, metrics: MetricsDep, holder: HolderDep, pressure: PressureDep, instance: InstanceId
) -> Response:
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


@router.get("/metrics", summary="Prometheus metrics", response_class=Response)
async def prometheus(metrics: MetricsDep) -> Response:
    return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)
