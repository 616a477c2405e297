"""The report page from its Jinja2 template: every manifest value escaped, the figures
formatted as the page shows them, and the template shipped as package data."""

import re
from pathlib import Path
from types import MappingProxyType, SimpleNamespace
from typing import Any

import pytest

import recsys  # noqa: F401  (sets TF_USE_LEGACY_KERAS before serving imports TensorFlow)
from serving.report import REPORT_HEADERS, render_report


def _model(manifest: dict[str, Any], version: str = "0003") -> Any:
    """What render_report reads of a LoadedModel: its manifest and version name."""
    return SimpleNamespace(manifest=MappingProxyType(manifest), version=version, path=Path("/nonexistent"))


MANIFEST: dict[str, Any] = {
    "created_at": "2026-12-01T10:00:00+00:00",
    "num_items": 1682,
    "num_users": 943,
    "embedding_dim": 32,
    "kind": "update-catalog",
    "parent_version": "0002",
    "metrics": {
        "evaluation": {
            "split": "temporal",
            "num_test_interactions": 2000,
            "num_test_users_scored": 900,
            "model": {"recall_at_10": 0.1234, "ndcg_at_10": 0.2, "top_100_accuracy": 0.45},
            "popularity": {"recall_at_10": 0.2, "ndcg_at_10": 0.1},
        },
        "training": {"best_epoch": 3, "history": {"loss": [1.0, 0.5, 0.25], "val_recall": [0.1, 0.2]}},
    },
    "index": {
        "kind": "tree_ah",
        "recall_at_10_vs_exact": 0.9712,
        "params": {"leaves": 100},
        "tuning": {
            "trees": [{"shape": "100 leaves"}],
            "frontier": [
                {"pareto": True, "tree": 0, "leaves_to_search": 5, "reorder": 100, "recall_at_10": 0.9, "us_per_query": 50.0},
                {"pareto": False, "tree": 0, "us_per_query": 1.0},
            ],
        },
    },
    "dataset": {"source": "ml-100k", "num_interactions": 100000},
}


def test_figures_are_formatted_into_the_page() -> None:
    html = render_report(_model(MANIFEST), b"\x89PNG", None)
    assert html.startswith("<!doctype html>") and "Evaluation report — version 0003" in html
    row = re.search(r'<tr data-metric="recall_at_10">(.*?)</tr>', html, re.S)
    assert row and "0.1234" in row.group(1) and "0.2000" in row.group(1) and 'class="down">-0.0766' in row.group(1)
    row = re.search(r'<tr data-metric="ndcg_at_10">(.*?)</tr>', html, re.S)
    assert row and 'class="up">+0.1000' in row.group(1)
    row = re.search(r'<tr data-metric="top_100_accuracy">(.*?)</tr>', html, re.S)
    assert row and "Top-100 accuracy" in row.group(1) and "<td>—</td>" in row.group(1)  # no popularity figure
    assert re.search(r'data-figure="scann-recall">0\.9712<', html)
    assert 'data-figure="parent-version">0002<' in html and "1,682 items" in html
    frontier = re.findall(r"<tr><th scope=\"row\">100 leaves</th>(.*?)</tr>", html)
    assert len(frontier) == 1 and "<td>50.0</td>" in frontier[0]  # only the Pareto point
    for loss in ("1.0000", "0.5000", "0.2500"):
        assert f"<td>{loss}</td>" in html
    assert 'src="data:image/png;base64,iVBORw=="' in html


def test_every_manifest_value_is_escaped() -> None:
    hostile = "<script>alert(1)</script>"
    manifest = {**MANIFEST, "kind": hostile, "dataset": {"source": hostile}}
    manifest["metrics"] = {"evaluation": {"model": {hostile: 0.5}, "popularity": {}}}
    html = render_report(_model(manifest, version='9"><b>'), None, hostile)
    assert "<script>" not in html and "<b>" not in html
    assert html.count("&lt;script&gt;") >= 4  # kind, dataset, metric name, the reason for no chart
    assert "Evaluation report — version 9&#34;&gt;&lt;b&gt;" in html


def test_missing_figures_say_so() -> None:
    html = render_report(_model({}), None, "the served version has no report.png")
    assert "The manifest holds no test metrics." in html
    assert "No chart: the served version has no report.png." in html
    assert re.search(r'data-figure="index-kind">—<', html)


@pytest.mark.parametrize("name", ["report.html.j2", "report.css"])
def test_templates_are_package_data(name: str) -> None:
    import tomllib

    import serving.report

    assert (Path(serving.report.__file__).parent / "templates" / name).is_file()
    data = tomllib.loads((Path(__file__).resolve().parents[3] / "pyproject.toml").read_text())
    patterns = data["tool"]["setuptools"]["package-data"]["*"]
    assert f"templates/*{Path(name).suffix}" in patterns


def test_headers_keep_scripts_out() -> None:
    csp = REPORT_HEADERS["Content-Security-Policy"]
    assert "default-src 'none'" in csp and "script-src" not in csp
