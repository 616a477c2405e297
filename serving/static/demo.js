// The demo page: plain JavaScript over the public v1 API, nothing else.
// Every value from the API is put on the page with textContent (never as HTML).
(() => {
  "use strict";

  const $ = (id) => document.getElementById(id);
  // visit: the item ids this visit added, oldest first (sent as recent_item_ids); visitTitles: id -> title
  const state = { apiKey: "", model: null, loadingModel: false, visit: [], visitTitles: new Map() };
  const MAX_VISIT = 50; // the service's default RECSYS_MAX_RECENT_ITEMS; a lower limit answers 422, shown
  const HIDDEN_KEYS = new Set(["item_id", "score", "rank", "title"]);

  // ------------------------------------------------------------------ API access

  class ApiFailure extends Error {
    constructor(status, code, message) {
      super(message);
      this.status = status;
      this.code = code;
    }
  }

  async function api(path, { method = "GET", body, raw = false } = {}) {
    const headers = { Accept: raw ? "*/*" : "application/json" };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    if (state.apiKey) headers["X-API-Key"] = state.apiKey;
    let response;
    try {
      response = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
    } catch (err) {
      throw new ApiFailure(0, "network_error", `the service could not be reached (${err.message})`);
    }
    if (response.ok && raw) return response;
    let data = null;
    try {
      data = await response.json();
    } catch (_) {
      data = null;
    }
    if (!response.ok) {
      const detail = (data && data.error) || {};
      if (response.status === 401) showKeyForm();
      throw new ApiFailure(response.status, detail.code || `http_${response.status}`, detail.message || response.statusText);
    }
    if (data === null) throw new ApiFailure(response.status, "bad_response", "the answer was not JSON");
    return data;
  }

  // ------------------------------------------------------------------ errors, shown on the page

  function clearErrors() {
    $("errors").replaceChildren();
  }

  function showError(context, err) {
    const box = document.createElement("div");
    box.className = "error";
    const title = document.createElement("strong");
    title.textContent = `${context} failed`;
    const text = document.createElement("span");
    text.textContent = ` — ${describe(err)}`;
    const dismiss = document.createElement("button");
    dismiss.type = "button";
    dismiss.className = "dismiss";
    dismiss.textContent = "Dismiss";
    dismiss.setAttribute("aria-label", `Dismiss: ${context} failed`);
    dismiss.addEventListener("click", () => box.remove());
    box.append(title, text, dismiss);
    $("errors").append(box);
  }

  function showKeyForm() {
    $("key-form").hidden = false;
  }

  // ------------------------------------------------------------------ formatting

  function fmtNumber(value, digits = 3) {
    if (typeof value !== "number" || !Number.isFinite(value)) return "—";
    return Number.isInteger(value) ? value.toLocaleString("en") : value.toFixed(digits);
  }

  function fmtMetric(value) {
    return typeof value === "number" && Number.isFinite(value) ? value.toFixed(3) : "—";
  }

  function describe(err) {
    if (err instanceof ApiFailure) return err.status ? `HTTP ${err.status} ${err.code}: ${err.message}` : `${err.code}: ${err.message}`;
    return err && err.message ? err.message : String(err);
  }

  function failed(node, text) {
    node.textContent = text;
    node.classList.add("failed");
  }

  function ok(node, text) {
    node.textContent = text;
    node.classList.remove("failed");
  }

  function fmtValue(key, value) {
    if (Array.isArray(value)) return value.join(", ");
    if (typeof value === "number") return key === "price" ? value.toFixed(2) : fmtNumber(value, 2);
    return String(value);
  }

  function humanize(name) {
    return name.replace(/_at_/g, "@").replace(/_/g, " ");
  }

  function safeId(prefix, name, index) {
    return `${prefix}-${index}-${name.replace(/[^A-Za-z0-9_-]/g, "_")}`;
  }

  function el(tag, props = {}, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(props)) {
      if (key === "class") node.className = value;
      else if (key === "text") node.textContent = value;
      else if (key.startsWith("data-") || key.startsWith("aria-")) node.setAttribute(key, value);
      else node[key] = value;
    }
    node.append(...children);
    return node;
  }

  // ------------------------------------------------------------------ items

  function itemCard(item, { score = true, similar = true, visit = true } = {}) {
    const title = item.title ? String(item.title) : String(item.item_id);
    const li = el("li", { class: "item", "data-item-id": item.item_id });
    const head = el("div", { class: "item-head" });
    head.append(el("span", { class: "item-title", text: title }));
    if (score && typeof item.score === "number") {
      head.append(el("span", { class: "score", "data-score": String(item.score), text: `score ${fmtNumber(item.score)}` }));
    }
    li.append(head);
    const meta = el("p", { class: "item-meta" });
    meta.append(el("code", { class: "item-id", text: item.item_id }));
    for (const [key, value] of Object.entries(item)) {
      if (HIDDEN_KEYS.has(key) || value === null || value === "" || (Array.isArray(value) && !value.length)) continue;
      meta.append(el("span", { class: "kv" }, el("span", { class: "k", text: `${humanize(key)} ` }), fmtValue(key, value)));
    }
    li.append(meta);
    if (similar) {
      const button = el("button", { type: "button", class: "link-button", text: "Similar items" });
      button.setAttribute("aria-label", `Similar items to ${title}`);
      button.addEventListener("click", () => showSimilar(item.item_id, title, true));
      li.append(button);
    }
    if (visit) {
      const add = el("button", { type: "button", class: "link-button visit-add", text: "Add to this visit" });
      add.setAttribute("aria-label", `Add ${title} to this visit`);
      add.addEventListener("click", () => addToVisit(item.item_id, title));
      li.append(add);
    }
    return li;
  }

  function currentK() {
    const raw = $("k").value.trim();
    if (raw === "") return undefined; // the API's default
    const n = Number(raw);
    return Number.isFinite(n) ? n : raw; // the API validates and answers with a visible error
  }

  // ------------------------------------------------------------------ the served model

  function fact(list, term, value, attrs = {}) {
    list.append(el("dt", { text: term }), el("dd", { ...attrs, text: value }));
  }

  function renderModel(model) {
    state.model = model;
    $("model-version").textContent = model.model_version;
    const facts = $("model-facts");
    facts.replaceChildren();
    const metrics = model.metrics || {};
    const evaluation = metrics.evaluation || {};
    const index = model.index || metrics.index || {};
    const training = metrics.training || {};
    fact(facts, "version", model.model_version, { id: "fact-version" });
    if (model.kind) {
      const made = model.kind === "catalog_update" ? "catalog update (towers of its parent, a new item table)" : model.kind;
      fact(facts, "made by", made, { id: "fact-kind", "data-value": model.kind });
    }
    if (model.parent_version) fact(facts, "parent version", model.parent_version, { id: "fact-parent" });
    if (model.created_at) fact(facts, "created", new Date(model.created_at).toLocaleString("en-GB"));
    if (model.loaded_at) fact(facts, "loaded", new Date(model.loaded_at * 1000).toLocaleString("en-GB"));
    fact(facts, "items", fmtNumber(model.num_items));
    if (model.num_users != null) fact(facts, "users", fmtNumber(model.num_users));
    fact(facts, "embedding dim", fmtNumber(model.embedding_dim));
    if (index.kind) fact(facts, "index", index.kind);
    if (index.us_per_query != null) fact(facts, "index µs per query", fmtNumber(Math.round(index.us_per_query)));
    if (index.recall_at_10_vs_exact != null) {
      fact(facts, "ScaNN recall@10 vs exact", fmtMetric(index.recall_at_10_vs_exact),
        { id: "fact-scann", "data-value": String(index.recall_at_10_vs_exact) });
    }
    if (evaluation.split) fact(facts, "test split", evaluation.split);
    if (training.best_epoch != null) fact(facts, "best epoch", `${training.best_epoch} of ${training.epochs_run ?? "?"}`);
    if (model.dataset && model.dataset.source) fact(facts, "data", model.dataset.source);

    const body = $("metrics-body");
    body.replaceChildren();
    const ours = evaluation.model || {};
    const pop = evaluation.popularity || {};
    for (const [name, value] of Object.entries(ours)) {
      if (typeof value !== "number") continue;
      const better = typeof pop[name] === "number" && value > pop[name];
      const row = el("tr", { "data-metric": name });
      row.append(
        el("th", { scope: "row", text: humanize(name) }),
        el("td", { class: better ? "better" : "", "data-value": String(value), text: fmtMetric(value) }),
        el("td", { "data-value": typeof pop[name] === "number" ? String(pop[name]) : "", text: fmtMetric(pop[name]) }),
      );
      body.append(row);
    }
    if (!body.children.length) body.append(el("tr", {}, el("td", { colSpan: 3, text: "no test metrics in this version" })));

    renderFeatureFields(model.query_inputs || []);
    renderVisit();
    renderFilterFields(model.filterable || {});
    loadReportImage();
  }

  function renderFeatureFields(inputs) {
    const box = $("feature-inputs");
    const previous = new Map([...box.querySelectorAll("input")].map((i) => [i.dataset.feature, i.value]));
    box.replaceChildren();
    inputs.forEach((qi, index) => {
      if (qi.name === "user_id" || qi.kind === "id" || qi.kind === "history") return; // history: the visit panel
      const id = safeId("feat", qi.name, index);
      const numeric = qi.dtype === "float32";
      const input = el("input", {
        id, name: qi.name, type: numeric ? "number" : "text", autocomplete: "off", "data-feature": qi.name,
        "data-dtype": qi.dtype,
      });
      if (numeric) input.step = "any";
      const fallback = numeric ? fmtNumber(Number(qi.default), 1) : (qi.default || "unknown");
      input.placeholder = `default: ${fallback}`;
      if (previous.has(qi.name)) input.value = previous.get(qi.name);
      const kind = qi.kind ? ` (${qi.kind.replace(/_/g, " ")})` : "";
      box.append(el("div", { class: "field" }, el("label", { htmlFor: id, text: `${humanize(qi.name)}${kind}` }), input));
    });
    if (!box.children.length) box.append(el("p", { class: "hint", text: "This model reads no features besides the user id." }));
  }

  function renderFilterFields(filterable) {
    const box = $("filter-inputs");
    box.replaceChildren();
    Object.entries(filterable).forEach(([name, kind], index) => {
      if (kind === "numeric") {
        const lo = safeId("fmin", name, index);
        const hi = safeId("fmax", name, index);
        const set = el("fieldset", { class: "range" }, el("legend", { text: humanize(name) }));
        set.append(
          el("label", { htmlFor: lo, text: "min" }),
          el("input", { id: lo, type: "number", step: "any", "data-filter": name, "data-bound": "min" }),
          el("label", { htmlFor: hi, text: "max" }),
          el("input", { id: hi, type: "number", step: "any", "data-filter": name, "data-bound": "max" }),
        );
        box.append(set);
      } else {
        const id = safeId("filter", name, index);
        box.append(el("div", { class: "field" },
          el("label", { htmlFor: id, text: `${humanize(name)}${kind === "list" ? " (any of)" : ""}` }),
          el("input", { id, type: "text", autocomplete: "off", "data-filter": name, "data-kind": kind,
            placeholder: "comma separated" })));
      }
    });
  }

  async function loadReportImage() {
    const img = $("report-img");
    const note = $("report-note");
    if (img.src && img.src.startsWith("blob:")) URL.revokeObjectURL(img.src);
    img.hidden = true;
    try {
      const response = await api("/v1/model/report.png", { raw: true });
      img.src = URL.createObjectURL(await response.blob());
      img.alt = `Training loss and validation recall per epoch, and test metrics of model version ${state.model.model_version} beside the popularity baseline`;
      img.hidden = false;
      note.textContent = "";
    } catch (err) {
      if (err instanceof ApiFailure && err.status === 404) note.textContent = "This version has no report.png.";
      else showError("Loading the report image", err);
    }
  }

  async function loadModel() {
    try {
      renderModel(await api("/v1/model"));
    } catch (err) {
      $("model-version").textContent = "unavailable";
      showError("Loading the served model", err);
      return false;
    }
    try {
      const users = await api("/v1/users?limit=12");
      const chips = $("example-users");
      const list = $("user-list");
      chips.replaceChildren();
      list.replaceChildren();
      for (const uid of users.user_ids) {
        const chip = el("button", { type: "button", class: "chip", text: uid, "data-user-id": uid });
        chip.setAttribute("aria-label", `Recommend for user ${uid}`);
        chip.addEventListener("click", () => {
          $("mode-user").checked = true;
          syncMode();
          $("user-id").value = uid;
          $("query-form").requestSubmit();
        });
        chips.append(chip);
        list.append(el("option", { value: uid }));
      }
    } catch (err) {
      showError("Loading example users", err);
    }
    return true;
  }

  // ------------------------------------------------------------------ recommendations

  function collectFeatures() {
    const features = {};
    for (const input of $("feature-inputs").querySelectorAll("input[data-feature]")) {
      const raw = input.value.trim();
      if (raw === "") continue;
      if (input.dataset.dtype === "float32") {
        const n = Number(raw);
        features[input.dataset.feature] = Number.isFinite(n) ? n : raw;
      } else {
        features[input.dataset.feature] = raw;
      }
    }
    return features;
  }

  function collectFilters() {
    const filters = {};
    for (const input of $("filter-inputs").querySelectorAll("input[data-filter]")) {
      const raw = input.value.trim();
      if (raw === "") continue;
      const name = input.dataset.filter;
      if (input.dataset.bound) {
        const n = Number(raw);
        filters[name] = { ...(filters[name] || {}), [input.dataset.bound]: Number.isFinite(n) ? n : raw };
      } else {
        filters[name] = raw.split(",").map((v) => v.trim()).filter(Boolean);
      }
    }
    return filters;
  }

  const STRATEGY_TEXT = {
    personal: "personal: from this user's query embedding",
    features: "features: from the described visitor's query embedding",
    popular: "popular: nothing known about the visitor, most popular items",
    session: "session: from this visit's items alone (the visitor is not known)",
  };

  function readsHistory() {
    return Boolean(state.model && (state.model.query_inputs || []).some((qi) => qi.kind === "history"));
  }

  async function recommend(event) {
    event.preventDefault();
    clearErrors();
    const mode = document.querySelector('input[name="mode"]:checked').value;
    const body = { exclude_seen: $("exclude-seen").checked };
    const k = currentK();
    if (k !== undefined) body.k = k;
    let who = "anonymous visitor";
    if (mode === "user") {
      const uid = $("user-id").value.trim();
      if (!uid) {
        showError("Recommendations", new Error("type or pick a user id first"));
        $("user-id").focus();
        return;
      }
      body.user_id = uid;
      who = `user ${uid}`;
    } else if (mode === "features") {
      const features = collectFeatures();
      if (Object.keys(features).length) body.features = features;
      who = "new visitor";
    }
    const filters = collectFilters();
    if (Object.keys(filters).length) body.filters = filters;
    const visiting = state.visit.length > 0 && readsHistory();
    if (visiting) body.recent_item_ids = [...state.visit];

    const results = $("results");
    results.setAttribute("aria-busy", "true");
    $("recommend").disabled = true;
    const history = mode === "user" ? loadHistory(body.user_id) : clearHistory();
    try {
      const answer = await api("/v1/recommendations", { method: "POST", body });
      const list = $("results-list");
      list.replaceChildren(...answer.items.map((item) => itemCard(item)));
      let meta = `${answer.items.length} item${answer.items.length === 1 ? "" : "s"} for ${who} · ` +
        `${STRATEGY_TEXT[answer.strategy] || answer.strategy} · version ${answer.model_version}`;
      if (mode === "user" && answer.strategy === "popular") meta += " · this user is not known to the served version";
      if (mode === "user" && answer.strategy === "session") meta += " · this user is not known to the served version: this visit alone";
      if (!answer.items.length) meta += " · no item matches the filters";
      if (visiting) meta += ` · with ${state.visit.length} item${state.visit.length === 1 ? "" : "s"} of this visit`;
      ok($("results-meta"), meta);
      results.dataset.strategy = answer.strategy;
      showVisitStrategy(visiting ? answer : null);
      if (state.model && answer.model_version !== state.model.model_version) loadModel();
    } catch (err) {
      failed($("results-meta"), `No recommendations — ${describe(err)}`);
      $("results-list").replaceChildren();
      showVisitStrategy(null);
      showError("Recommendations", err);
    } finally {
      results.setAttribute("aria-busy", "false");
      $("recommend").disabled = false;
    }
    await history;
  }

  // ------------------------------------------------------------------ this visit

  function renderVisit() {
    const list = $("visit-list");
    list.replaceChildren(...state.visit.map((id) => {
      const card = itemCard({ item_id: id, title: state.visitTitles.get(id) || id }, { score: false, visit: false });
      return card;
    }));
    $("visit-clear").hidden = !state.visit.length;
    const meta = $("visit-meta");
    if (!state.visit.length) {
      ok(meta, "Press “Add to this visit” on any item: the recommendations follow what this visit clicked.");
    } else if (!readsHistory()) {
      failed(meta, `${state.visit.length} item${state.visit.length === 1 ? "" : "s"} in this visit, not used: ` +
        "the served model version reads no recent items (its query tower has no history feature).");
    } else {
      ok(meta, `${state.visit.length} item${state.visit.length === 1 ? "" : "s"} in this visit (oldest first), ` +
        "sent as recent_item_ids with every recommendation request.");
    }
  }

  function showVisitStrategy(answer) {
    const node = $("visit-strategy");
    const panel = $("visit");
    if (!answer) {
      node.textContent = "";
      delete panel.dataset.strategy;
      return;
    }
    let text = `Strategy: ${answer.strategy}` + (answer.strategy === "personal"
      ? " (the user's stored history, then this visit)"
      : answer.strategy === "session" ? " (this visit alone)" : "");
    const ignored = answer.ignored_item_ids || [];
    if (ignored.length) text += ` · not known to the served version, ignored: ${ignored.join(", ")}`;
    node.textContent = text;
    panel.dataset.strategy = answer.strategy;
  }

  function addToVisit(itemId, title) {
    state.visit = [...state.visit, itemId].slice(-MAX_VISIT);
    state.visitTitles.set(itemId, title);
    renderVisit();
    $("query-form").requestSubmit();
  }

  function clearVisit() {
    state.visit = [];
    state.visitTitles.clear();
    renderVisit();
    showVisitStrategy(null);
    $("query-form").requestSubmit();
  }

  function clearHistory() {
    $("history-list").replaceChildren();
    ok($("history-meta"), "Only known users have a history.");
    return Promise.resolve();
  }

  async function loadHistory(uid) {
    const meta = $("history-meta");
    const list = $("history-list");
    try {
      const answer = await api(`/v1/users/${encodeURIComponent(uid)}/history?limit=20`);
      list.replaceChildren(...answer.items.map((item) => itemCard(item, { score: false })));
      ok(meta, answer.total
        ? `${answer.total} item${answer.total === 1 ? "" : "s"} from ${uid}'s training data` +
          (answer.total > answer.items.length ? `, first ${answer.items.length} shown` : "") + " (catalog order)"
        : `${uid} has no items in the training data.`);
    } catch (err) {
      list.replaceChildren();
      if (err instanceof ApiFailure && err.status === 404) {
        ok(meta, `No history: ${uid} is not known to the served version (HTTP 404 ${err.code}).`);
      } else {
        failed(meta, `History unavailable — ${describe(err)}`);
        showError("Loading the history", err);
      }
    }
  }

  // ------------------------------------------------------------------ similar items

  async function showSimilar(itemId, label, moveFocus) {
    clearErrors();
    const panel = $("similar");
    const meta = $("similar-meta");
    const list = $("similar-list");
    const k = currentK();
    const query = k === undefined ? "" : `?k=${encodeURIComponent(k)}`;
    $("similar-id").value = itemId;
    panel.setAttribute("aria-busy", "true");
    try {
      const answer = await api(`/v1/items/${encodeURIComponent(itemId)}/similar${query}`);
      list.replaceChildren(...answer.items.map((item) => itemCard(item)));
      $("similar-heading").textContent = `Similar to ${label || itemId}`;
      ok(meta, `${answer.items.length} items closest to ${itemId} (dot product of item embeddings) · version ${answer.model_version}`);
      panel.dataset.itemId = itemId;
    } catch (err) {
      list.replaceChildren();
      $("similar-heading").textContent = "Similar items";
      failed(meta, `No similar items for ${itemId} — ${describe(err)}`);
      delete panel.dataset.itemId;
      showError("Similar items", err);
    } finally {
      panel.setAttribute("aria-busy", "false");
      if (moveFocus) $("similar-heading").focus();
    }
  }

  // ------------------------------------------------------------------ wiring

  function syncMode() {
    const mode = document.querySelector('input[name="mode"]:checked').value;
    $("user-fields").hidden = mode !== "user";
    $("feature-fields").hidden = mode !== "features";
    $("exclude-seen").disabled = mode !== "user";
  }

  async function openReport(event) {
    if (!state.apiKey) return; // a plain link works when the service needs no key
    event.preventDefault();
    const win = window.open("", "_blank");
    try {
      const response = await api("/v1/model/report", { raw: true });
      const url = URL.createObjectURL(new Blob([await response.text()], { type: "text/html" }));
      if (win) win.location.href = url;
      else showError("Opening the report", new Error("the browser blocked the new window"));
    } catch (err) {
      if (win) win.close();
      showError("Opening the report", err);
    }
  }

  document.addEventListener("DOMContentLoaded", () => {
    for (const radio of document.querySelectorAll('input[name="mode"]')) radio.addEventListener("change", syncMode);
    syncMode();
    $("query-form").addEventListener("submit", recommend);
    $("similar-form").addEventListener("submit", (event) => {
      event.preventDefault();
      const itemId = $("similar-id").value.trim();
      if (!itemId) {
        clearErrors();
        showError("Similar items", new Error("type an item id first"));
        $("similar-id").focus();
        return;
      }
      showSimilar(itemId, itemId, false);
    });
    $("report-link").addEventListener("click", openReport);
    $("visit-clear").addEventListener("click", clearVisit);
    $("key-form").addEventListener("submit", async (event) => {
      event.preventDefault();
      state.apiKey = $("api-key").value.trim();
      clearErrors();
      if (await loadModel()) $("key-hint").textContent = "Key accepted; it is sent as X-API-Key and kept in this page only.";
    });
    if (document.body.dataset.apiKey === "required") {
      startWithKey();
    } else {
      loadModel();
    }
  });

  // The service needs an API key, and this page was only served with it: whatever sent
  // the key for the page (a proxy, a browser extension) may send it with the page's own
  // API calls too. Ask for the key only when they are refused.
  async function startWithKey() {
    $("model-version").textContent = "checking the API key…";
    let status = 0;
    try {
      status = (await fetch("/v1/model", { headers: { Accept: "application/json" } })).status;
    } catch (_) {
      status = 0;
    }
    if (status === 401) {
      showKeyForm();
      $("model-version").textContent = "waiting for the API key";
      $("api-key").focus();
    } else {
      loadModel();
    }
  }
})();
