"""What a real ``recsys serve`` (uvicorn on 127.0.0.1) exposes, and to whom.

* Default settings: the demo is off, so the routes that expose customer data
  (``GET /v1/users``: known user ids; ``GET /v1/users/{user_id}/history``: what
  a customer bought) and the page do not exist: 404 and absent from
  ``/openapi.json``.
* ``RECSYS_DEMO_ENABLED=true``: they exist and are documented.
* ``RECSYS_API_KEY`` set: every route of the app (enumerated from the app
  itself, not a hand-written list), and any unmatched path, answers 401 without
  the key and not 401 with it; only the probes ``/healthz``, ``/readyz`` and
  ``/metrics`` answer without it.
* ``scripts/demo.sh`` switches the demo on for the server it starts.
"""

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest

REPO = Path(__file__).resolve().parents[2]
PROBES = {"/healthz", "/readyz", "/metrics"}
DEMO_ROUTES = ("/v1/users", "/v1/users/{user_id}/history")
KEY = "exposure-key-1"


def _known(truth) -> tuple[str, str]:
    """A known user with training history and a known item."""
    uid = next(u for u in truth.users["user_id"] if truth.seen.get(u))
    return uid, str(truth.items["item_id"].iloc[0])


@pytest.fixture(scope="module")
def default_server(trained, start_server):
    root, _ = trained
    server = start_server(root, RECSYS_POLL_INTERVAL_S="30")
    server.wait_ready()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def keyed_demo_server(trained, start_server):
    root, _ = trained
    server = start_server(root, RECSYS_POLL_INTERVAL_S="30", RECSYS_DEMO_ENABLED="true", RECSYS_API_KEY=KEY)
    server.wait_ready()
    yield server
    server.stop()


def test_by_default_no_route_lists_users_or_their_history(default_server, truth) -> None:
    uid, _ = _known(truth)
    s = default_server
    # the user is known (its recommendations answer), so a 404 below is the missing route
    assert s.get(f"/v1/users/{uid}/recommendations").status_code == 200
    for path in ("/v1/users", "/v1/users?limit=5", f"/v1/users/{uid}/history", "/", "/static/demo.js"):
        r = s.get(path)
        assert r.status_code == 404, path
        assert r.json()["error"]["code"] == "not_found", path
    paths = s.get("/openapi.json").json()["paths"]
    assert not set(DEMO_ROUTES) & set(paths), sorted(paths)
    assert not any(p.startswith("/v1/users") and not p.endswith("/recommendations") for p in paths), sorted(paths)
    assert "/v1/recommendations" in paths and "/v1/model/report" in paths


def test_with_the_demo_on_the_routes_exist_and_are_documented(keyed_demo_server, truth) -> None:
    uid, _ = _known(truth)
    s = keyed_demo_server
    key = {"X-API-Key": KEY}
    listed = s.get("/v1/users", params={"limit": 5}, headers=key)
    assert listed.status_code == 200 and len(listed.json()["user_ids"]) == 5
    history = s.get(f"/v1/users/{uid}/history", headers=key)
    assert history.status_code == 200 and history.json()["total"] == len(truth.seen[uid])
    assert s.get("/", headers=key).status_code == 200
    paths = s.get("/openapi.json", headers=key).json()["paths"]
    assert set(DEMO_ROUTES) <= set(paths)


def _app_routes(root: Path) -> list[tuple[str, str]]:
    """(method, path template) of every route of the app built with the keyed server's settings."""
    from pydantic import SecretStr

    from serving.app import create_app
    from serving.settings import ServiceSettings

    app = create_app(ServiceSettings(model_root=root, demo_enabled=True, api_key=SecretStr(KEY)))
    out: list[tuple[str, str]] = []

    def walk(routes: list, prefix: str) -> None:
        for route in routes:
            included = getattr(route, "original_router", None)  # FastAPI >= 0.165 keeps included routers whole
            if included is not None:
                walk(included.routes, prefix + (getattr(getattr(route, "include_context", None), "prefix", "") or ""))
                continue
            path = getattr(route, "path", None)
            assert path is not None, f"a route this test cannot enumerate: {route!r}"
            for method in sorted(getattr(route, "methods", None) or ()):
                out.append((method, prefix + path))

    walk(app.routes, "")
    return out


def _request(server, method: str, path: str, uid: str, item: str, headers: dict) -> httpx.Response:
    url = path.replace("{user_id}", uid).replace("{item_id}", item)
    assert "{" not in url, f"no value for the path parameter of {path}: add one to this test"
    bodies = {
        "/v1/recommendations": {"user_id": uid, "k": 3},
        "/v1/recommendations/batch": {"requests": [{"user_id": uid, "k": 3}, {"k": 2}]},
    }
    kwargs: dict[str, Any] = {"json": bodies.get(path, {})} if method in ("POST", "PUT", "PATCH") else {}
    return httpx.request(method, server.url + url, headers=headers, timeout=30, **kwargs)


def test_with_an_api_key_every_route_but_the_probes_needs_it(trained, keyed_demo_server, truth) -> None:
    root, _ = trained
    uid, item = _known(truth)
    s = keyed_demo_server
    routes = _app_routes(root)
    paths = {p for _, p in routes}
    # the enumeration is the whole app: the probes, the page, the docs, every documented path
    assert paths >= PROBES and {"/", "/docs", "/openapi.json", *DEMO_ROUTES} <= paths
    documented = s.get("/openapi.json", headers={"X-API-Key": KEY}).json()["paths"]
    assert set(documented) <= paths
    assert len(routes) >= 18, routes

    for method, path in routes:
        without = _request(s, method, path, uid, item, {})
        wrong = _request(s, method, path, uid, item, {"X-API-Key": KEY + "x"})
        with_key = _request(s, method, path, uid, item, {"X-API-Key": KEY})
        if path in PROBES:
            assert without.status_code == 200, (method, path, without.status_code)
            continue
        assert without.status_code == 401, (method, path, without.status_code, without.text[:200])
        if method != "HEAD":
            assert without.json()["error"]["code"] == "unauthorized"
        assert without.headers["www-authenticate"] == "ApiKey"
        assert wrong.status_code == 401, (method, path)
        assert with_key.status_code == 200, (method, path, with_key.status_code, with_key.text[:300])

    # a path no route matches is refused the same way: without the key nothing tells what exists
    assert s.get("/no/such/route").status_code == 401
    assert s.get("/no/such/route", headers={"X-API-Key": KEY}).status_code == 404
    assert s.post("/v1/users", json={}).status_code == 401


def test_demo_script_serves_with_the_demo_on(tmp_path: Path) -> None:
    """scripts/demo.sh, run as it is: its setup step and the `recsys` it calls record
    what they were given (no virtual environment is built, nothing is trained)."""
    from serving.settings import ServiceSettings

    (tmp_path / "scripts").mkdir()
    shutil.copy(REPO / "scripts" / "demo.sh", tmp_path / "scripts" / "demo.sh")
    (tmp_path / "scripts" / "setup.sh").write_text("#!/usr/bin/env bash\nexit 0\n")
    (tmp_path / ".venv" / "bin").mkdir(parents=True)
    recorder = tmp_path / ".venv" / "bin" / "recsys"
    recorder.write_text('#!/usr/bin/env bash\nprintf "%s\\n" "$*" >> "$CALLS"\nenv | grep "^RECSYS_" | sort > "$CALLS.$1.env"\n')
    for f in (tmp_path / "scripts" / "setup.sh", tmp_path / "scripts" / "demo.sh", recorder):
        f.chmod(0o755)
    env = {k: v for k, v in os.environ.items() if not k.startswith("RECSYS_")}
    env["CALLS"] = str(tmp_path / "calls")
    done = subprocess.run(
        ["bash", str(tmp_path / "scripts" / "demo.sh"), "--epochs", "1"], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    calls = (tmp_path / "calls").read_text().splitlines()
    assert [c.split()[0] for c in calls] == ["train", "serve"] and "--epochs 1" in calls[0]
    assert "--host 127.0.0.1" in calls[1]
    served = dict(line.split("=", 1) for line in (tmp_path / "calls.serve.env").read_text().splitlines())
    assert served["RECSYS_DEMO_ENABLED"] == "true"
    fields: dict[str, Any] = {k[len("RECSYS_") :].lower(): v for k, v in served.items()}  # text, as the environment gives it
    assert ServiceSettings(**fields).demo_enabled is True
