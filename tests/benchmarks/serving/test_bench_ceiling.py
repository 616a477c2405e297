"""The HTTP ceiling: the service's own app (``create_app``) with the served model and the
retriever replaced, run with the service's uvicorn options."""

import sys
from typing import Any

import pytest

from benchmarks.serving import ceiling


def test_ceiling_app_is_the_service_stack_without_the_model(monkeypatch):
    from fastapi.testclient import TestClient

    monkeypatch.setenv("RECSYS_MAX_BODY_BYTES", "2048")
    with TestClient(ceiling.ceiling_app()) as client:
        r = client.post("/v1/recommendations", json={"user_id": "u0000001", "k": 10})
        assert r.status_code == 200, r.text
        body = r.json()
        assert body == {"model_version": "0", "user_id": "u0000001", "strategy": "personal", "items": ceiling.CEILING_ITEMS}
        assert [it["rank"] for it in body["items"]] == list(range(1, 11))
        assert r.headers["x-model-version"] == "0"
        assert client.post("/v1/recommendations", json={"k": 0}).status_code == 422  # the service's schema
        big = {"user_id": "u", "exclude_item_ids": ["x" * 50] * 100}
        assert client.post("/v1/recommendations", json=big).status_code == 413  # the guard's body limit
        assert client.get("/healthz").status_code == 200
        ready = client.get("/readyz")
        assert ready.status_code == 200 and ready.json()["model_version"] == "0"  # the fixed stand-in, never a loaded model


def _signature(app: Any) -> tuple[list[tuple[str, tuple[str, ...]]], list[str]]:
    """The app's routes (path, methods) and its middleware classes, in order."""
    routes = sorted((getattr(r, "path", ""), tuple(sorted(getattr(r, "methods", None) or ()))) for r in app.router.routes)
    return routes, [m.cls.__name__ for m in app.user_middleware]


def test_ceiling_is_create_app_with_two_parts_replaced(tmp_path):
    """Not a copy of the stack: the service's routes, middleware and dependencies; only the served
    version and the retriever differ, and no dependency override (FastAPI rebuilds every dependency
    per request while one is set, which would make the ceiling slower than the service)."""
    import recsys  # noqa: F401  (sets TF_USE_LEGACY_KERAS before anything imports TensorFlow)
    from serving.app import create_app
    from serving.retrieval.retriever import Retriever
    from serving.settings import ServiceSettings

    settings = ServiceSettings(model_root=tmp_path)
    app = ceiling.ceiling_app(settings=settings)
    service = create_app(settings)
    assert _signature(app) == _signature(service)
    assert "GuardMiddleware" in _signature(app)[1]
    assert not app.dependency_overrides and not service.dependency_overrides
    assert isinstance(app.state.retriever, ceiling.FixedRetriever) and isinstance(service.state.retriever, Retriever)
    assert app.state.holder.model is ceiling.CEILING_MODEL and service.state.holder.model is None


def test_ceiling_lifespan_is_the_services_plus_a_settled_heap(monkeypatch):
    import gc

    from fastapi.testclient import TestClient

    monkeypatch.setenv("RECSYS_GIL_SWITCH_INTERVAL_MS", "0.5")
    before = sys.getswitchinterval()
    with TestClient(ceiling.ceiling_app()) as client:
        assert abs(sys.getswitchinterval() - 0.0005) < 1e-9  # the service's lifespan: its switch interval
        assert gc.get_freeze_count() > 0  # the heap settled as the service settles it after a load
        assert client.post("/v1/recommendations", json={"user_id": "u1"}).status_code == 200
    assert sys.getswitchinterval() == before


def test_ceiling_runs_with_the_service_uvicorn_options(monkeypatch: pytest.MonkeyPatch) -> None:
    import uvicorn

    seen: dict = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: seen.update(kw))
    monkeypatch.setenv("RECSYS_REQUEST_TIMEOUT_S", "7")
    ceiling.serve_ceiling("127.0.0.1", 8123, workers=1)
    assert seen["host"] == "127.0.0.1" and seen["port"] == 8123
    assert seen["access_log"] is False and seen["timeout_graceful_shutdown"] == 14.0
    from serving.settings import ServiceSettings
    from serving.tuning import uvicorn_options

    assert seen == uvicorn_options(ServiceSettings(host="127.0.0.1", port=8123))
