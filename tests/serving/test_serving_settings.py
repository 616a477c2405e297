"""Settings (one pydantic-settings object, RECSYS_ prefix), the entry points, and
the package boundaries (serving never imports training/towers, never reads os.environ)."""

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import SecretStr, ValidationError

import serving
from serving.main import app_from_env, build_settings, run
from serving.settings import ServiceSettings

SERVING_DIR = Path(serving.__file__).parent
REPO = SERVING_DIR.parent


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    for name in list(__import__("os").environ):
        if name.startswith("RECSYS_"):
            monkeypatch.delenv(name)


def test_defaults() -> None:
    s = ServiceSettings()
    assert (s.host, s.port, s.workers, s.poll_interval_s) == ("127.0.0.1", 8000, 1, 5.0)
    assert (s.max_k, s.default_k, s.max_batch, s.max_list_items, s.max_body_bytes) == (1000, 10, 64, 1000, 65536)
    assert s.api_key is None and s.cors_origins == [] and s.docs_enabled is True
    assert (s.microbatch_max_wait_ms, s.microbatch_max_size, s.max_concurrency, s.request_timeout_s) == (0.0, 64, 256, 5.0)


def test_environment_with_prefix(monkeypatch) -> None:
    monkeypatch.setenv("RECSYS_MODEL_ROOT", "/srv/models")
    monkeypatch.setenv("RECSYS_MAX_K", "50")
    monkeypatch.setenv("RECSYS_API_KEY", "k-123")
    monkeypatch.setenv("RECSYS_CORS_ORIGINS", "https://a.example, https://b.example")
    monkeypatch.setenv("RECSYS_DOCS_ENABLED", "false")
    monkeypatch.setenv("RECSYS_LOG_LEVEL", "WARNING")
    monkeypatch.setenv("MAX_K", "3")  # no prefix: ignored
    s = ServiceSettings()
    assert s.model_root == Path("/srv/models") and s.max_k == 50
    assert s.api_key is not None and s.api_key.get_secret_value() == "k-123"
    assert "k-123" not in repr(s)
    assert s.cors_origins == ["https://a.example", "https://b.example"]
    assert s.docs_enabled is False and s.log_level == "warning"
    monkeypatch.setenv("RECSYS_CORS_ORIGINS", '["https://c.example"]')
    assert ServiceSettings().cors_origins == ["https://c.example"]


def test_overrides_beat_the_environment(monkeypatch) -> None:
    monkeypatch.setenv("RECSYS_PORT", "9000")
    monkeypatch.setenv("RECSYS_WORKERS", "3")
    s = build_settings({"port": 8123, "workers": None, "model_root": Path("/x")})
    assert s.port == 8123 and s.workers == 3 and s.model_root == Path("/x")


@pytest.mark.parametrize(
    "bad",
    [
        {"max_k": 0},
        {"default_k": 20, "max_k": 10},
        {"port": 70000},
        {"workers": 0},
        {"log_level": "loud"},
        {"max_body_bytes": 10},
        {"poll_interval_s": 0},
        {"default_k": 50, "max_items_per_call": 20},
        {"idle_timeout_s": 0},
        {"request_read_timeout_s": 0},
        {"max_connections": 0},
        {"max_header_bytes": 100},
    ],
)
def test_invalid_settings_are_refused(bad) -> None:
    with pytest.raises(ValidationError):
        ServiceSettings(**bad)


def test_to_env_round_trips(monkeypatch) -> None:
    original = ServiceSettings(
        model_root=Path("/m"),
        port=8111,
        api_key=SecretStr("sek"),
        cors_origins=["https://x.example"],
        docs_enabled=False,
        microbatch_max_wait_ms=3.5,
    )
    for key, value in original.to_env().items():
        monkeypatch.setenv(key, value)
    assert ServiceSettings() == original


def test_run_single_worker_passes_the_app(monkeypatch, tmp_path) -> None:
    import uvicorn

    calls = []
    monkeypatch.setattr(uvicorn, "run", lambda target, **kw: calls.append((target, kw)))
    run({"model_root": tmp_path, "port": 8765})
    ((target, kw),) = calls
    assert not isinstance(target, str) and target.state.settings.model_root == tmp_path
    assert target.state.holder.model is None, "no model is loaded before the lifespan starts"
    assert kw["port"] == 8765 and kw["host"] == "127.0.0.1"


def test_run_several_workers_uses_the_factory_and_the_environment(monkeypatch, tmp_path) -> None:
    import uvicorn

    calls = []
    monkeypatch.setattr(uvicorn, "run", lambda target, **kw: calls.append((target, kw)))
    expected = ServiceSettings(model_root=tmp_path, workers=2, max_k=77)
    for key, value in expected.to_env().items():  # monkeypatch restores whatever run() writes
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("RECSYS_MODEL_ROOT", "/somewhere/else")  # the flags must win, in the workers too
    monkeypatch.setenv("RECSYS_WORKERS", "1")
    run({"model_root": tmp_path, "workers": 2})
    ((target, kw),) = calls
    assert target == "serving.main:app_from_env" and kw["factory"] is True and kw["workers"] == 2
    app = app_from_env()  # what each worker does
    assert app.state.settings.model_root == tmp_path and app.state.settings.max_k == 77
    assert app.state.settings.workers == 2


def test_serving_never_imports_training_or_towers() -> None:
    code = (
        "import sys, serving.app, serving.main, serving.model, serving.retrieval.retriever, serving.retrieval.batcher, serving.version.watcher;"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('training', 'towers'));"
        "print(bad); assert not bad, bad; assert 'tensorflow' not in sys.modules"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr


def test_serving_imports_recsys_first_and_reads_no_environment() -> None:
    first = ast.parse((SERVING_DIR / "__init__.py").read_text()).body
    imports = [n for n in first if isinstance(n, (ast.Import, ast.ImportFrom))]
    assert isinstance(imports[0], ast.Import) and imports[0].names[0].name == "recsys"
    readers = []
    for path in sorted(SERVING_DIR.rglob("*.py")):  # every module of every subpackage
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Attribute) and node.attr in ("environ", "getenv", "environb"):
                readers.append((path.name, node.lineno))
    # the one use: run() hands resolved settings to uvicorn workers (writes, never reads)
    assert [name for name, _ in readers] == ["main.py"], readers
    main_src = (SERVING_DIR / "main.py").read_text()
    assert "os.environ.update(settings.to_env())" in main_src


def test_openapi_reflects_configured_limits(tmp_path) -> None:
    from fastapi.testclient import TestClient

    from serving.app import create_app

    app = create_app(ServiceSettings(model_root=tmp_path, max_k=40, default_k=5, max_batch=3, max_list_items=7))
    with TestClient(app) as c:
        spec = c.get("/openapi.json").json()
    req = spec["components"]["schemas"]["RecommendationRequest"]["properties"]
    assert req["k"]["maximum"] == 40 and req["k"]["default"] == 5
    assert req["exclude_item_ids"]["maxItems"] == 7
    batch = spec["components"]["schemas"]["BatchRequest"]["properties"]["requests"]
    assert batch["maxItems"] == 3
    assert json.dumps(spec)  # serialisable


def test_the_service_sets_the_gil_switch_interval_while_it_runs(tmp_path) -> None:
    from fastapi.testclient import TestClient

    from serving.app import create_app

    assert ServiceSettings().gil_switch_interval_ms == 0.25
    before = sys.getswitchinterval()
    app = create_app(ServiceSettings(model_root=tmp_path, gil_switch_interval_ms=0.5))
    with TestClient(app) as c:
        assert c.get("/healthz").status_code == 200
        assert sys.getswitchinterval() == pytest.approx(0.0005)
    assert sys.getswitchinterval() == pytest.approx(before)  # given back at shutdown


@pytest.mark.parametrize("bad", [0, -1, 101])
def test_gil_switch_interval_is_bounded(bad) -> None:
    with pytest.raises(ValidationError):
        ServiceSettings(gil_switch_interval_ms=bad)
