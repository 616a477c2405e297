"""The report page: the manifest's figures, formatted, rendered from ``templates/report.html.j2``.

The template is package data, loaded once with autoescaping on: every value
from the manifest is escaped by Jinja2, never by hand. This module only picks
and formats figures (``_fmt``: "—" for a missing or non-finite value, thousands
separators for integers, fixed decimals for floats); the markup is the
template's.
"""

from __future__ import annotations

import base64
import math
from collections.abc import Mapping
from functools import cache
from typing import Any

import jinja2

from serving.model import LoadedModel

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
_TRAINING_FIGURES = ("best_epoch", "epochs_run", "train_seconds", "examples_per_second")


@cache
def _template() -> jinja2.Template:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("serving.report", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=False,
    )
    env.filters["fmt"] = _fmt
    return env.get_template("report.html.j2")


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


def _label(name: str) -> str:
    if name in _METRIC_LABELS:
        return _METRIC_LABELS[name]
    if name.startswith("top_") and name.endswith("_accuracy"):
        return f"Top-{name[4:-9]} accuracy"
    return name.replace("_", " ")


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _metric_rows(ours: Mapping[str, Any], pop: Mapping[str, Any]) -> list[dict[str, Any]]:
    """One row per numeric test metric: the model's value, popularity's, their difference."""
    rows = []
    for name in (n for n in ours if isinstance(ours.get(n), (int, float))):
        a, b = ours.get(name), pop.get(name)
        diff = (a - b) if isinstance(a, (int, float)) and isinstance(b, (int, float)) else None
        direction = None if diff is None else ("up" if diff > 0 else ("down" if diff < 0 else None))
        rows.append({"name": name, "label": _label(name), "model": a, "baseline": b, "diff": diff, "direction": direction})
    return rows


def _index_figures(index: Mapping[str, Any], tuning: Mapping[str, Any]) -> list[tuple[str, str, Any, int]]:
    """(label, data-figure key, value, digits) of the index's operating point; absent ones left out
    (except the kind and the recall, always shown)."""
    target = (
        None
        if "target_recall_at_10" not in tuning
        else f"{_fmt(tuning.get('target_recall_at_10'))} within {_fmt(tuning.get('max_us_per_query'), 0)}"
    )
    figures = (
        ("kind", "index-kind", index.get("kind"), 4),
        ("recall@10 vs exact, known users", "scann-recall", index.get("recall_at_10_vs_exact"), 4),
        ("recall@10 vs exact, similar items", "scann-similar-recall", index.get("similar_recall_at_10_vs_exact"), 4),
        ("recall@100 vs exact, known users", "scann-recall-100", index.get("recall_at_100_vs_exact"), 4),
        ("µs per query (search + re-scoring, CPU)", "scann-us-per-query", index.get("us_per_query"), 1),
        ("brute force µs per query", "brute-force-us-per-query", tuning.get("brute_force_us_per_query"), 1),
        ("target recall@10 within µs per query", "scann-target", target, 4),
        ("meets target", "scann-meets-target", index.get("meets_target"), 4),
        ("build seconds (tuning included)", "scann-build-seconds", index.get("build_seconds"), 3),
    )
    return [f for f in figures if f[2] is not None or f[1] in ("index-kind", "scann-recall")]


def _frontier(tuning: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The Pareto points of the index tuning, fastest first, each with its tree's shape."""
    trees = tuning.get("trees") or []
    points = [p for p in tuning.get("frontier") or [] if isinstance(p, Mapping) and p.get("pareto")]
    rows = []
    for point in sorted(points, key=lambda q: q.get("us_per_query") or 0):
        tree = point.get("tree")
        if isinstance(tree, int) and 0 <= tree < len(trees) and isinstance(trees[tree], Mapping):
            rows.append({**point, "shape": trees[tree].get("shape")})
        else:
            rows.append({**point, "shape": tree})
    return rows


def render_report(model: LoadedModel, png: bytes | None, problem: str | None = None) -> str:
    """One self-contained HTML page (the PNG inline as a data URI, so it also works behind an API key)."""
    m = model.manifest
    metrics = _mapping(m.get("metrics"))
    evaluation = _mapping(metrics.get("evaluation"))
    training = _mapping(metrics.get("training"))
    index = _mapping(m.get("index") or metrics.get("index"))
    tuning = _mapping(index.get("tuning"))
    history = _mapping(training.get("history"))
    series = {str(k): v for k, v in history.items() if isinstance(v, list) and v}
    return _template().render(
        version=model.version,
        m=m,
        evaluation=evaluation,
        metric_rows=_metric_rows(_mapping(evaluation.get("model")), _mapping(evaluation.get("popularity"))),
        ours=_mapping(evaluation.get("model")),
        pop=_mapping(evaluation.get("popularity")),
        ftk=_mapping(evaluation.get("factorized_top_k")),
        index_figures=_index_figures(index, tuning),
        params=", ".join(f"{k}={v}" for k, v in dict(index["params"]).items()) if index.get("params") else None,
        tuning=tuning,
        frontier=_frontier(tuning),
        tried=len(tuning.get("frontier") or []),
        num_trees=len(tuning.get("trees") or []),
        training_figures=[(key.replace("_", " "), training[key]) for key in _TRAINING_FIGURES if key in training],
        dataset=_mapping(m.get("dataset")),
        series=series,
        epochs=max((len(v) for v in series.values()), default=0),
        png_base64=base64.b64encode(png).decode("ascii") if png is not None else None,
        problem=problem or "no report.png",
    )
