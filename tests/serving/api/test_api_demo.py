"""The demo page's files and the routes it needs (in process): example users, a
user's training history, the evaluation report (HTML and PNG), the switch
``demo_enabled`` (off by default) and the API key. The page itself, in a
browser, is ``test_api_demo_browser.py``; the same switches against a real
``recsys serve`` are ``test_serving_exposure.py``."""

import base64
import json
import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from tests.serving.conftest import wait_until

DEMO_ONLY = ("/", "/static/demo.js", "/static/demo.css", "/v1/users", "/v1/users/u000001/history")

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _ids(body: dict) -> list[str]:
    return [item["item_id"] for item in body["items"]]


@pytest.fixture(scope="module")
def demo_client(trained, make_client) -> Iterator:
    """The trained root served with the demo on (``RECSYS_DEMO_ENABLED=true``, as scripts/demo.sh does)."""
    root, _ = trained
    with make_client(root, poll_interval_s=30, demo_enabled=True) as c:
        yield c


# --------------------------------------------------------------------------- the page


def test_demo_page_and_assets_are_served(demo_client) -> None:
    client = demo_client
    page = client.get("/")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert 'data-api-key="none"' in page.text, "no key configured: the page must not ask for one"
    csp = page.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "connect-src 'self'" in csp and "unsafe-eval" not in csp
    for src in re.findall(r'(?:src|href)="(/static/[^"]+)"', page.text):
        asset = client.get(src)
        assert asset.status_code == 200, src
    assert client.get("/static/demo.js").headers["content-type"].startswith("text/javascript")
    assert client.get("/static/demo.css").headers["content-type"].startswith("text/css")
    head = client.head("/")
    assert head.status_code == 200 and head.content == b""
    assert client.get("/static/nope.js").status_code == 404
    assert client.post("/").status_code in (404, 405)


def test_page_and_assets_carry_their_headers_and_nothing_else_is_served(demo_client) -> None:
    """The script and stylesheet come from Starlette's StaticFiles with the page's headers; the page
    itself is only at ``/`` (with the API-key flag filled in), and nothing outside ``serving/static/``."""
    client = demo_client
    page = client.get("/")
    assert page.headers["x-frame-options"] == "DENY" and page.headers["cache-control"] == "no-cache"
    for path in ("/static/demo.js", "/static/demo.css"):
        asset = client.get(path)
        assert asset.status_code == 200, path
        assert asset.headers["x-content-type-options"] == "nosniff", path
        assert asset.headers["cache-control"] == "no-cache" and asset.headers["referrer-policy"] == "no-referrer", path
        assert int(asset.headers["content-length"]) == len(asset.content) > 0, path
        head = client.head(path)
        assert head.status_code == 200 and head.content == b"", path
    for path in ("/static/index.html", "/static/../settings.py", "/static/%2e%2e/settings.py", "/static/"):
        refused = client.get(path)
        assert refused.status_code == 404, path
        assert refused.json()["error"]["code"] == "not_found", path
    posted = client.post("/static/demo.js")
    assert posted.status_code == 405 and posted.json()["error"]["code"] == "method_not_allowed"


def test_demo_uses_only_the_public_api() -> None:
    """Every URL the script fetches is a documented v1 route (no private back door)."""
    script = (Path(__file__).resolve().parents[3] / "serving" / "static" / "demo.js").read_text()
    used = set(re.findall(r'["`](/v1/[^"`?$]*)', script))
    assert used, "the script calls the API"
    allowed = (
        "/v1/model",
        "/v1/model/report",
        "/v1/model/report.png",
        "/v1/users",
        "/v1/recommendations",
        "/v1/users/",
        "/v1/items/",
    )
    assert all(u.startswith(allowed) for u in used), used
    assert "innerHTML" not in script and "eval(" not in script


def test_demo_is_off_by_default(client, truth, demo_client) -> None:
    """Default settings (the shared ``client``): no page, no user listing, no history; the rest unchanged."""
    from serving.settings import ServiceSettings

    assert ServiceSettings().demo_enabled is False
    assert "u000001" in set(truth.users["user_id"])  # a known user: the 404 below is the missing route
    for path in DEMO_ONLY:
        r = client.get(path)
        assert r.status_code == 404, path
        assert r.json()["error"]["code"] == "not_found", path
        assert demo_client.get(path).status_code == 200, path  # the same request with the demo on
    paths = client.get("/openapi.json").json()["paths"]
    assert "/v1/users" not in paths and "/v1/users/{user_id}/history" not in paths
    assert "/v1/model/report" in paths and "/v1/model/report.png" in paths  # no customer data: always there
    assert client.get("/v1/model").json()["model_version"] == truth.version  # the API is unchanged
    assert client.get("/v1/users/u000001/recommendations").status_code == 200


def test_with_an_api_key_the_page_and_every_demo_route_need_it(trained, make_client) -> None:
    root, _ = trained
    with make_client(root, api_key="sek", demo_enabled=True) as c:
        for path in (*DEMO_ONLY, "/v1/model", "/v1/model/report", "/v1/model/report.png"):
            refused = c.get(path)
            assert refused.status_code == 401, path
            assert refused.json()["error"]["code"] == "unauthorized" and "sek" not in refused.text
            assert c.get(path, headers={"X-API-Key": "wrong"}).status_code == 401, path
            assert c.get(path, headers={"X-API-Key": "sek"}).status_code == 200, path
        assert c.head("/").status_code == 401
        page = c.get("/", headers={"X-API-Key": "sek"})
        assert 'data-api-key="required"' in page.text, "the page knows the service needs a key"
        assert "sek" not in page.text


# --------------------------------------------------------------------------- example users and history


def test_example_users_are_known_with_history_first(demo_client, truth) -> None:
    client = demo_client
    body = client.get("/v1/users").json()
    assert body["model_version"] == truth.version
    assert body["num_users"] == len(truth.users)
    ids = body["user_ids"]
    assert len(ids) == 20 and len(set(ids)) == 20
    known = set(truth.users["user_id"])
    assert all(u in known and truth.seen.get(u) for u in ids)
    assert client.get("/v1/users", params={"limit": 3}).json()["user_ids"] == ids[:3]
    assert len(client.get("/v1/users", params={"limit": 100}).json()["user_ids"]) == 100
    for bad in (0, 101, "x"):
        r = client.get("/v1/users", params={"limit": bad})
        assert r.status_code == 422 and r.json()["error"]["code"] == "validation_error"


def test_history_is_the_seen_table_with_metadata(demo_client, truth) -> None:
    client = demo_client
    uid = max(truth.seen, key=lambda u: len(truth.seen[u]))
    rows = sorted(truth.seen[uid])
    body = client.get(f"/v1/users/{uid}/history", params={"limit": 1000}).json()
    assert body["model_version"] == truth.version and body["user_id"] == uid
    assert body["total"] == len(rows)
    assert _ids(body) == [truth.items["item_id"].iloc[r] for r in rows]
    first = truth.items.iloc[rows[0]]
    item = body["items"][0]
    assert item["title"] == first["title"] and item["category"] == first["category"]
    assert item["tags"] == list(first["tags"]) and np.isclose(item["price"], first["price"])
    assert "score" not in item and "rank" not in item

    short = client.get(f"/v1/users/{uid}/history", params={"limit": 2}).json()
    assert _ids(short) == _ids(body)[:2] and short["total"] == len(rows)
    assert _ids(client.get(f"/v1/users/{uid}/history").json()) == _ids(body)[:20]

    missing = client.get("/v1/users/not-a-user/history")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "unknown_user"
    for bad in (0, 1001):
        assert client.get(f"/v1/users/{uid}/history", params={"limit": bad}).status_code == 422


# --------------------------------------------------------------------------- the report


def _fmt4(value: float) -> str:
    return f"{value:.4f}"


def test_report_html_shows_the_figures(client, base_dir: Path) -> None:
    manifest = json.loads((base_dir / "manifest.json").read_text())
    r = client.get("/v1/model/report")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    assert (
        "script-src" not in r.headers["content-security-policy"] and "default-src 'none'" in r.headers["content-security-policy"]
    )
    html = r.text
    assert f"version {manifest['version']}" in html
    evaluation = manifest["metrics"]["evaluation"]
    for name, value in evaluation["model"].items():
        row = re.search(rf'<tr data-metric="{name}">(.*?)</tr>', html, re.S)
        assert row, name
        assert _fmt4(value) in row.group(1) and _fmt4(evaluation["popularity"][name]) in row.group(1), name
    assert "Catalog coverage@10" in html
    scann = re.search(r'data-figure="scann-recall">([^<]*)<', html)
    assert scann and scann.group(1) == _fmt4(manifest["index"]["recall_at_10_vs_exact"])
    for loss in manifest["metrics"]["training"]["history"]["loss"]:  # the training curve, as a table
        assert _fmt4(loss) in html
    embedded = re.search(r'src="data:image/png;base64,([^"]+)"', html)
    assert embedded and base64.b64decode(embedded.group(1)) == (base_dir / "report.png").read_bytes()


def test_report_png_is_the_versions_file(client, base_dir: Path) -> None:
    manifest = json.loads((base_dir / "manifest.json").read_text())
    assert "report.png" in manifest["files"]
    r = client.get("/v1/model/report.png")
    assert r.status_code == 200 and r.headers["content-type"] == "image/png"
    assert r.content.startswith(PNG_SIGNATURE)
    assert r.content == (base_dir / "report.png").read_bytes()
    # the path comes from the loaded model, never from the request
    assert client.get("/v1/model/report.png", params={"path": "/etc/passwd"}).content == r.content


def test_report_png_missing_or_changed_is_404(versions, make_client) -> None:
    good = versions.clone()
    versions.set_latest(good)
    with make_client(versions.root) as c:
        png = versions.root / good / "report.png"
        assert c.get("/v1/model/report.png").content == png.read_bytes()
        png.write_bytes(png.read_bytes() + b"tampered")  # changed after it was verified: refused
        r = c.get("/v1/model/report.png")
        assert r.status_code == 404 and r.json()["error"]["code"] == "no_report"
        assert "checksum" in r.json()["error"]["message"]
        page = c.get("/v1/model/report")  # the page still renders, without the chart, and says why
        assert page.status_code == 200 and "data:image/png" not in page.text
        assert "no longer matches its manifest checksum" in page.text and "Recall@10" in page.text

        def drop_report(vdir: Path) -> None:
            (vdir / "report.png").unlink()
            manifest = json.loads((vdir / "manifest.json").read_text())
            del manifest["files"]["report.png"]
            (vdir / "manifest.json").write_text(json.dumps(manifest, indent=2))

        bare = versions.clone(corrupt=drop_report)
        versions.set_latest(bare)
        assert wait_until(lambda: c.get("/v1/model").json()["model_version"] == bare, timeout=30.0)
        r = c.get("/v1/model/report.png")
        assert r.status_code == 404 and r.json()["error"]["message"] == "the served version has no report.png"
        page = c.get("/v1/model/report")
        assert page.status_code == 200 and "No chart: the served version has no report.png." in page.text


def test_openapi_documents_the_new_routes(demo_client) -> None:
    paths = demo_client.get("/openapi.json").json()["paths"]
    users = paths["/v1/users"]["get"]
    limit = next(p for p in users["parameters"] if p["name"] == "limit")
    assert limit["schema"]["maximum"] == 100 and limit["schema"]["minimum"] == 1
    history = paths["/v1/users/{user_id}/history"]["get"]
    assert "404" in history["responses"] and "422" in history["responses"]
    assert "text/html" in paths["/v1/model/report"]["get"]["responses"]["200"]["content"]
    png = paths["/v1/model/report.png"]["get"]["responses"]
    assert "image/png" in png["200"]["content"] and "404" in png
    assert "/" not in paths
