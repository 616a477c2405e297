"""The served version's evaluation report as one HTML page (``GET /v1/model/report``).

No customer data: figures from the loaded version's manifest (test metrics
beside popularity, the ScaNN index's operating point, recall and cost, the
training curves per epoch, how the version was made) and its ``report.png``
inline, re-checked against the manifest's sha256 on every read. The routes are
in :mod:`serving.demo`.
"""

from __future__ import annotations

import base64
import hashlib
import html
import math
from typing import Any

from serving.model import LoadedModel

REPORT_PNG = "report.png"


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

REPORT_HEADERS = {
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
        f"{_e(m.get('num_users'))} users · embedding dim {_e(m.get('embedding_dim'))}</p>",
    ]
    if m.get("kind") is not None or m.get("parent_version") is not None:
        made = f'made by <span data-figure="version-kind">{_e(m.get("kind"))}</span>'
        if m.get("parent_version") is not None:
            made += f' from version <span data-figure="parent-version">{_e(m.get("parent_version"))}</span>'
        parts.append(f'<p class="sub">{made}</p>')

    parts.append('<h2 id="test-metrics">Test split: two-tower model vs popularity</h2>')
    names = [n for n in ours if isinstance(ours.get(n), (int, float))]
    if names:
        parts.append(
            f'<p class="note">{_e(evaluation.get("split", "?"))} split; '
            f"{_e(evaluation.get('num_test_interactions'))} test interactions, "
            f"{_e(evaluation.get('num_test_users_scored'))} users scored; items seen in training excluded.</p>"
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
        parts.append(
            '<table aria-labelledby="ftk"><thead><tr><th scope="col">metric</th><th scope="col">value</th></tr></thead><tbody>'
        )
        for name, value in ftk.items():
            parts.append(f'<tr><th scope="row">{html.escape(str(name))}</th><td>{_e(value)}</td></tr>')
        parts.append("</tbody></table>")

    parts.extend(_index_section(index if isinstance(index, dict) else {}))

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
            parts.append(f'<tr><th scope="row">{epoch + 1}</th>')
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


def _index_section(index: dict) -> list[str]:
    """The ScaNN index: its operating point (what the service searches with), recall against
    exact search and cost, how it was chosen, and the points tried on the recall/time frontier."""
    tuning = index.get("tuning") if isinstance(index.get("tuning"), dict) else {}
    parts = ['<h2 id="index">ScaNN index vs exact search</h2><dl>']
    figures = (
        ("kind", "index-kind", index.get("kind"), 4),
        ("recall@10 vs exact, known users", "scann-recall", index.get("recall_at_10_vs_exact"), 4),
        ("recall@10 vs exact, similar items", "scann-similar-recall", index.get("similar_recall_at_10_vs_exact"), 4),
        ("recall@100 vs exact, known users", "scann-recall-100", index.get("recall_at_100_vs_exact"), 4),
        ("µs per query (search + re-scoring, CPU)", "scann-us-per-query", index.get("us_per_query"), 1),
        ("brute force µs per query", "brute-force-us-per-query", tuning.get("brute_force_us_per_query"), 1),
        (
            "target recall@10 within µs per query",
            "scann-target",
            None
            if "target_recall_at_10" not in tuning
            else f"{_fmt(tuning.get('target_recall_at_10'))} within {_fmt(tuning.get('max_us_per_query'), 0)}",
            4,
        ),
        ("meets target", "scann-meets-target", index.get("meets_target"), 4),
        ("build seconds (tuning included)", "scann-build-seconds", index.get("build_seconds"), 3),
    )
    for label, key, value, digits in figures:
        if value is not None or key in ("index-kind", "scann-recall"):
            parts.append(f'<dt>{html.escape(label)}</dt><dd data-figure="{key}">{_e(value, digits)}</dd>')
    if index.get("params"):
        params = ", ".join(f"{k}={v}" for k, v in dict(index["params"]).items())
        parts.append(f'<dt>parameters</dt><dd data-figure="scann-params">{html.escape(params)}</dd>')
    if tuning.get("reason"):
        parts.append(f"<dt>chosen</dt><dd>{_e(tuning.get('chosen'))}: {_e(tuning.get('reason'))}</dd>")
    parts.append("</dl>")
    frontier = [p for p in tuning.get("frontier") or [] if isinstance(p, dict) and p.get("pareto")]
    if frontier:
        trees = tuning.get("trees") or []
        parts.append(
            f'<p class="note">{len(tuning.get("frontier") or [])} settings tried on {len(trees)} tree(s); '
            "the recall/time frontier (recall@10 on the tuning queries, checking queries where measured):</p>"
        )
        parts.append(
            '<table aria-label="index settings on the recall/time frontier"><thead><tr><th scope="col">tree</th>'
            '<th scope="col">leaves searched</th><th scope="col">pool re-scored</th><th scope="col">recall@10</th>'
            '<th scope="col">checking recall@10</th><th scope="col">µs per query</th></tr></thead><tbody>'
        )
        for point in sorted(frontier, key=lambda q: q.get("us_per_query") or 0):
            tree = point.get("tree")
            shape = (
                trees[tree].get("shape")
                if isinstance(tree, int) and 0 <= tree < len(trees) and isinstance(trees[tree], dict)
                else tree
            )
            parts.append(
                f'<tr><th scope="row">{_e(shape)}</th><td>{_e(point.get("leaves_to_search"))}</td><td>{_e(point.get("reorder"))}</td>'
                f"<td>{_e(point.get('recall_at_10'))}</td><td>{_e(point.get('checking_recall_at_10'))}</td>"
                f"<td>{_e(point.get('us_per_query'), 1)}</td></tr>"
            )
        parts.append("</tbody></table>")
    return parts
