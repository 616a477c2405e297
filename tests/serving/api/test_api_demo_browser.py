"""The demo page in a real browser: Debian's chromium driven by Playwright, against
a real ``recsys serve`` on 127.0.0.1 over the session's tiny trained model.

What the page renders must be what the API answers for the same request (item
ids in order), errors must be visible, and the page must work with the keyboard
and with an API key. The demo is a development tool, off by default: these
servers switch it on (``RECSYS_DEMO_ENABLED=true``, as scripts/demo.sh does).
Screenshots go to the test's ``tmp_path``.

Needs ``playwright`` (the Python driver; no browser download) and chromium at
/usr/bin/chromium: ``scripts/install_browser.sh`` installs it. Missing either is
a failure with instructions, not a skip.
"""

import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
TIMEOUT_MS = 20_000


def _chromium() -> str:
    for candidate in ("/usr/bin/chromium", shutil.which("chromium")):
        if candidate and Path(candidate).is_file():
            return candidate
    pytest.fail("chromium is not installed (looked for /usr/bin/chromium): run scripts/install_browser.sh", pytrace=False)


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail(
            "the Python package playwright is missing: pip install 'playwright>=1.45,<2' "
            "(never `playwright install`: the test drives the system chromium)",
            pytrace=False,
        )
    executable = _chromium()
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS, headless=True)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture(scope="module")
def server(trained, start_server) -> Iterator[object]:
    root, _ = trained
    s = start_server(root, RECSYS_POLL_INTERVAL_S="30", RECSYS_DEMO_ENABLED="true")
    s.wait_ready()
    yield s
    s.stop()


class Page:
    """A browser tab on the demo, recording uncaught script errors. ``opener`` is the
    browser or a browser context (e.g. one sending extra headers); ``route`` is
    installed before the page loads."""

    def __init__(self, opener: object, url: str, shots: Path, route: object = None) -> None:
        self.page = opener.new_page()  # type: ignore[attr-defined]  # a playwright Browser or BrowserContext: both have new_page
        self.page.set_viewport_size({"width": 1400, "height": 1000})
        self.page.set_default_timeout(TIMEOUT_MS)
        self.script_errors: list[str] = []
        self.page.on("pageerror", lambda exc: self.script_errors.append(str(exc)))
        self.shots = shots
        if route is not None:
            self.page.route("**/*", route)
        self.response = self.page.goto(url + "/")

    def shot(self, name: str, full_page: bool = True) -> Path:
        path = self.shots / f"{name}.png"
        self.page.screenshot(path=str(path), full_page=full_page)
        assert path.stat().st_size > 1000
        return path

    def ids(self, list_id: str) -> list[str]:
        return self.page.locator(f"#{list_id} > li").evaluate_all("els => els.map(e => e.dataset.itemId)")

    def close(self) -> None:
        self.page.close()
        assert not self.script_errors, self.script_errors


def _ids(body: dict) -> list[str]:
    return [item["item_id"] for item in body["items"]]


def test_page_shows_what_the_api_answers(browser, server, truth, tmp_path: Path) -> None:
    from playwright.sync_api import expect

    api = httpx.Client(base_url=server.url, timeout=10)
    model = api.get("/v1/model").json()
    tab = Page(browser, server.url, tmp_path)
    page = tab.page

    # the served version and its evaluation figures
    expect(page.locator("#model-version")).to_have_text(truth.version)
    expect(page.locator("#fact-version")).to_have_text(truth.version)
    for name, value in model["metrics"]["evaluation"]["model"].items():
        cells = page.locator(f'#metrics-body tr[data-metric="{name}"] td')
        expect(cells.nth(0)).to_have_text(f"{value:.3f}")
        expect(cells.nth(1)).to_have_text(f"{model['metrics']['evaluation']['popularity'][name]:.3f}")
    expect(page.locator("#fact-scann")).to_have_text(f"{model['index']['recall_at_10_vs_exact']:.3f}")
    # how the version was made (a trained version: no parent)
    assert model["kind"] == "training" and model["parent_version"] is None
    expect(page.locator("#fact-kind")).to_have_attribute("data-value", "training")
    expect(page.locator("#fact-parent")).to_have_count(0)
    expect(page.locator("#report-link")).to_have_attribute("href", "/v1/model/report")

    # example users come from the public API
    examples = api.get("/v1/users", params={"limit": 12}).json()["user_ids"]
    expect(page.locator("#example-users .chip")).to_have_count(len(examples))
    assert page.locator("#example-users .chip").all_inner_texts() == examples

    # every form control has a label; all inputs are reachable without a mouse
    unlabeled = page.evaluate(
        "() => [...document.querySelectorAll('input, select, textarea')]"
        ".filter(e => e.type !== 'hidden' && !(e.labels && e.labels.length) && !e.getAttribute('aria-label'))"
        ".map(e => e.id || e.name)"
    )
    assert unlabeled == []
    assert page.locator("#results").get_attribute("aria-live") == "polite"
    assert page.locator("#errors").get_attribute("role") == "alert"

    # a known user, typed and submitted with the keyboard
    uid = examples[1]
    page.locator("#k").fill("5")
    page.locator("#user-id").fill(uid)
    page.locator("#user-id").press("Enter")
    expect(page.locator("#results")).to_have_attribute("data-strategy", "personal")
    expect(page.locator("#results-meta")).to_contain_text(f"user {uid}")
    want = api.post("/v1/recommendations", json={"user_id": uid, "k": 5, "exclude_seen": True}).json()
    assert tab.ids("results-list") == _ids(want)
    first = want["items"][0]
    card = page.locator("#results-list > li").first
    expect(card).to_contain_text(first["title"])
    expect(card.locator(".score")).to_have_text(f"score {first['score']:.3f}")

    # beside it, the user's history from the seen table
    history = api.get(f"/v1/users/{uid}/history", params={"limit": 20}).json()
    expect(page.locator("#history-list > li")).to_have_count(len(history["items"]))
    assert tab.ids("history-list") == _ids(history)
    expect(page.locator("#history-meta")).to_contain_text(f"{history['total']} item")
    tab.shot("1-known-user")

    # similar items of the first result; focus moves to the panel
    card.get_by_role("button", name=f"Similar items to {first['title']}").click()
    expect(page.locator("#similar")).to_have_attribute("data-item-id", first["item_id"])
    similar = api.get(f"/v1/items/{first['item_id']}/similar", params={"k": 5}).json()
    assert tab.ids("similar-list") == _ids(similar)
    expect(page.locator("#similar-heading")).to_be_focused()
    expect(page.locator("#similar-heading")).to_have_text(f"Similar to {first['title']}")
    tab.shot("2-similar")

    # an example user chosen with the keyboard (Tab to the chip, Enter), with a filter
    page.locator("#filters summary").press("Enter")
    category = first["category"]
    page.get_by_label("category").fill(category)
    chip = page.locator("#example-users .chip").nth(2)
    chip.focus()
    page.keyboard.press("Enter")
    expect(page.locator("#results-meta")).to_contain_text(f"user {examples[2]}")
    want = api.post(
        "/v1/recommendations",
        json={"user_id": examples[2], "k": 5, "exclude_seen": True, "filters": {"category": [category]}},
    ).json()
    assert tab.ids("results-list") == _ids(want) and len(want["items"]) > 0
    assert {i["category"] for i in want["items"]} == {category}
    page.get_by_label("category").fill("")

    # a new visitor described by features (fields generated from /v1/model's query inputs)
    page.get_by_label("New visitor, described by features").check()
    expect(page.locator("#feature-fields")).to_be_visible()
    # (the history input is the "this visit" panel's, not a field)
    feature_names = [q["name"] for q in model["query_inputs"] if q["name"] != "user_id" and q["kind"] != "history"]
    assert page.locator("#feature-inputs input").evaluate_all("els => els.map(e => e.dataset.feature)") == feature_names
    page.locator('input[data-feature="age"]').fill("31")
    page.locator('input[data-feature="country"]').fill("FR")
    page.locator("#recommend").click()
    expect(page.locator("#results")).to_have_attribute("data-strategy", "features")
    want = api.post("/v1/recommendations", json={"features": {"age": 31, "country": "FR"}, "k": 5, "exclude_seen": True}).json()
    assert want["strategy"] == "features"
    assert tab.ids("results-list") == _ids(want)
    expect(page.locator("#history-meta")).to_have_text("Only known users have a history.")
    tab.shot("3-features")

    # API errors are shown, never silent: k out of range, then an unknown item
    page.locator("#k").fill("5000")
    page.locator("#recommend").click()
    error = page.locator("#errors .error")
    expect(error).to_be_visible()
    expect(error).to_contain_text("HTTP 422 validation_error")
    expect(error).to_contain_text("less than or equal to 1000")
    expect(page.locator("#results-meta")).to_contain_text("No recommendations — HTTP 422")
    expect(page.locator("#results-list > li")).to_have_count(0)
    assert error.bounding_box()["y"] >= 0  # the alert stays in view
    tab.shot("4-error-k", full_page=False)

    page.locator("#k").fill("5")
    page.get_by_label("Item id", exact=True).fill("no-such-item")
    page.get_by_role("button", name="Show similar").click()
    expect(error).to_have_count(1)
    expect(error).to_contain_text("Similar items failed — HTTP 404 unknown_item")
    expect(page.locator("#similar-meta")).to_contain_text("No similar items for no-such-item")
    error.get_by_role("button").click()  # dismissable
    expect(error).to_have_count(0)

    # an unknown user: popular answer, explained, and the history 404 shown in its panel
    page.get_by_label("Known user").check()
    page.locator("#user-id").fill("nobody-123")
    page.locator("#recommend").click()
    expect(page.locator("#results")).to_have_attribute("data-strategy", "popular")
    expect(page.locator("#results-meta")).to_contain_text("not known to the served version")
    expect(page.locator("#history-meta")).to_contain_text("HTTP 404 unknown_user")
    assert tab.ids("results-list") == _ids(api.post("/v1/recommendations", json={"user_id": "nobody-123", "k": 5}).json())

    # the report image loads through the API
    page.locator("#report-details summary").click()
    expect(page.locator("#report-img")).to_be_visible()
    assert page.locator("#report-img").evaluate("img => img.naturalWidth") > 100
    tab.shot("5-final")
    tab.close()
    api.close()


def test_this_visit_panel(browser, server, truth, tmp_path: Path) -> None:
    """Pressing "Add to this visit" on an item of any list adds it to the visit's recent
    items; the recommendations are the API's answer with those recent_item_ids, and the
    strategy is shown (session for an anonymous visitor, personal for a known user)."""
    from playwright.sync_api import expect

    api = httpx.Client(base_url=server.url, timeout=10)
    tab = Page(browser, server.url, tmp_path)
    page = tab.page
    expect(page.locator("#model-version")).to_have_text(truth.version)
    expect(page.locator("#visit-list > li")).to_have_count(0)
    expect(page.locator("#visit-clear")).to_be_hidden()

    # an anonymous visitor: popular items first
    page.locator("#k").fill("6")
    page.get_by_label("Anonymous (popular items)").check()
    page.locator("#recommend").click()
    expect(page.locator("#results")).to_have_attribute("data-strategy", "popular")
    popular = _ids(api.post("/v1/recommendations", json={"k": 6}).json())
    assert tab.ids("results-list") == popular

    # a click from the results list: the visit alone makes the query (session)
    first = page.locator("#results-list > li").first
    first_title = first.locator(".item-title").inner_text()
    first.get_by_role("button", name=f"Add {first_title} to this visit").click()
    expect(page.locator("#results")).to_have_attribute("data-strategy", "session")
    expect(page.locator("#visit")).to_have_attribute("data-strategy", "session")
    expect(page.locator("#visit-strategy")).to_contain_text("Strategy: session")
    expect(page.locator("#results-meta")).to_contain_text("session")
    visit = [popular[0]]
    assert tab.ids("visit-list") == visit
    want = api.post("/v1/recommendations", json={"k": 6, "exclude_seen": True, "recent_item_ids": visit}).json()
    assert want["strategy"] == "session"
    assert tab.ids("results-list") == _ids(want) and popular[0] not in _ids(want)
    tab.shot("visit-1-session")

    # a click from another list (similar items), with the keyboard
    page.locator("#results-list > li").first.get_by_role("button", name=re.compile("^Similar items to ")).click()
    expect(page.locator("#similar-list > li").first).to_be_visible()
    similar_first = tab.ids("similar-list")[0]
    add = page.locator("#similar-list > li").first.get_by_role("button", name=re.compile(" to this visit$"))
    add.focus()
    page.keyboard.press("Enter")
    visit.append(similar_first)
    expect(page.locator("#visit-list > li")).to_have_count(2)
    assert tab.ids("visit-list") == visit
    want = api.post("/v1/recommendations", json={"k": 6, "exclude_seen": True, "recent_item_ids": visit}).json()
    expect(page.locator("#results-meta")).to_contain_text("with 2 items of this visit")
    assert tab.ids("results-list") == _ids(want)

    # a known user keeps the visit: stored history then the visit (personal)
    page.get_by_label("Known user").check()
    uid = page.locator("#example-users .chip").first.inner_text()
    page.locator("#example-users .chip").first.click()
    expect(page.locator("#results-meta")).to_contain_text(f"user {uid}")
    expect(page.locator("#results")).to_have_attribute("data-strategy", "personal")
    expect(page.locator("#visit-strategy")).to_contain_text("Strategy: personal")
    want = api.post("/v1/recommendations", json={"user_id": uid, "k": 6, "exclude_seen": True, "recent_item_ids": visit}).json()
    plain = api.post("/v1/recommendations", json={"user_id": uid, "k": 6, "exclude_seen": True}).json()
    assert tab.ids("results-list") == _ids(want) and set(_ids(want)).isdisjoint(visit)
    assert [i["score"] for i in want["items"]] != [i["score"] for i in plain["items"]]  # the visit counts
    # a click from the user's training history panel goes in too
    expect(page.locator("#history-list > li").first).to_be_visible()
    seen_first = tab.ids("history-list")[0]
    page.locator("#history-list > li").first.get_by_role("button", name=re.compile(" to this visit$")).click()
    visit.append(seen_first)
    expect(page.locator("#visit-list > li")).to_have_count(3)
    want = api.post("/v1/recommendations", json={"user_id": uid, "k": 6, "exclude_seen": True, "recent_item_ids": visit}).json()
    expect(page.locator("#results-meta")).to_contain_text("with 3 items of this visit")
    assert tab.ids("results-list") == _ids(want)
    tab.shot("visit-2-known-user")

    # clearing the visit: back to the user's own answer, no strategy line in the panel
    page.get_by_role("button", name="Clear this visit").click()
    expect(page.locator("#visit-list > li")).to_have_count(0)
    expect(page.locator("#visit-strategy")).to_have_text("")
    expect(page.locator("#results-meta")).not_to_contain_text("of this visit")
    assert tab.ids("results-list") == _ids(plain)
    tab.close()
    api.close()


def test_report_page_renders(browser, server, tmp_path: Path) -> None:
    from playwright.sync_api import expect

    page = browser.new_page(viewport={"width": 1200, "height": 900})
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(server.url + "/v1/model/report")
    expect(page.locator("h1")).to_contain_text("Evaluation report")
    img = page.locator("img")
    expect(img).to_be_visible()
    assert img.evaluate("img => img.complete && img.naturalWidth") > 100
    page.screenshot(path=str(tmp_path / "report.png"), full_page=True)
    page.close()
    assert not errors


def test_page_with_an_api_key(browser, trained, start_server, truth, tmp_path: Path) -> None:
    """With ``RECSYS_API_KEY`` the page's own files need the key too (every route but the
    probes does). A browser that sends the key with every request (a proxy or an
    extension adding the header) gets a working page at once; one that sent it only for
    the page's files is asked for it, and the page then sends it as ``X-API-Key``."""
    from playwright.sync_api import expect

    root, _ = trained
    keyed = start_server(root, RECSYS_API_KEY="sek-demo", RECSYS_POLL_INTERVAL_S="30", RECSYS_DEMO_ENABLED="true")
    keyed.wait_ready()
    key = {"X-API-Key": "sek-demo"}
    try:
        # no key: not even the page
        bare = browser.new_page()
        response = bare.goto(keyed.url + "/")
        assert response is not None and response.status == 401
        assert response.json()["error"]["code"] == "unauthorized"
        assert bare.locator("#key-form").count() == 0
        bare.close()

        # the key on every request: no key form, the page works
        context = browser.new_context(extra_http_headers=key)
        try:
            tab = Page(context, keyed.url, tmp_path)
            page = tab.page
            assert tab.response is not None and tab.response.status == 200
            expect(page.locator("#model-version")).to_have_text(truth.version)
            expect(page.locator("#key-form")).to_be_hidden()
            _first_example_user_matches_the_api(tab, keyed.url, key)
            tab.shot("key-sent-by-the-browser")
            tab.close()
        finally:
            context.close()

        # the key only with the page's own files: the page asks for it
        def key_for_page_files(route, request) -> None:
            path = httpx.URL(request.url).path
            if path == "/" or path.startswith("/static/"):
                route.continue_(headers={**request.headers, "x-api-key": "sek-demo"})
            else:
                route.continue_()

        tab = Page(browser, keyed.url, tmp_path, route=key_for_page_files)
        page = tab.page
        expect(page.locator("#key-form")).to_be_visible()
        expect(page.locator("#model-version")).to_have_text("waiting for the API key")
        expect(page.locator("#api-key")).to_be_focused()

        page.locator("#api-key").fill("wrong")
        page.locator("#api-key").press("Enter")
        expect(page.locator("#errors .error")).to_contain_text("HTTP 401 unauthorized")
        tab.shot("key-wrong", full_page=False)

        page.locator("#api-key").fill("sek-demo")
        page.get_by_role("button", name="Use key").click()
        expect(page.locator("#model-version")).to_have_text(truth.version)
        expect(page.locator("#errors .error")).to_have_count(0)
        _first_example_user_matches_the_api(tab, keyed.url, key)
        expect(page.locator("#report-img")).to_have_attribute("src", re.compile(r"^blob:"))  # fetched with the key
        tab.shot("key-ok")
        tab.close()
    finally:
        keyed.stop()


def _first_example_user_matches_the_api(tab, url: str, key: dict) -> None:
    """Press the first example user: the page's personal results are the API's answer for that user."""
    from playwright.sync_api import expect

    page = tab.page
    uid = page.locator("#example-users .chip").first.inner_text()
    page.locator("#example-users .chip").first.click()
    expect(page.locator("#results")).to_have_attribute("data-strategy", "personal")
    want = httpx.post(url + "/v1/recommendations", json={"user_id": uid, "k": 10, "exclude_seen": True}, headers=key, timeout=10)
    assert tab.ids("results-list") == _ids(want.json())
