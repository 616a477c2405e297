"""The quality gate and the side-by-side comparison of two versions."""

import json

from typer.testing import CliRunner

from recsys.cli import app
from training.publish import publish
from training.quality_gate import comparison_rows, quality_gate


def metrics(recall10: float, split: str = "temporal") -> dict:
    model = {"top_100_accuracy": 0.3, "recall_at_10": recall10, "recall_at_100": 0.5, "ndcg_at_10": 0.2, "coverage_at_10": 0.3}
    pop = {k: v / 2 for k, v in model.items()}
    return {"evaluation": {"split": split, "model": model, "popularity": pop}}


def publish_metrics(root, recall10: float) -> str:
    def write(dest, version):
        m = metrics(recall10)
        (dest / "manifest.json").write_text(
            json.dumps({"version": version, "metrics": m, "index": {"recall_at_10_vs_exact": 1.0}})
        )

    return publish(root, write)


def test_gate_passes_without_a_served_version(tmp_path):
    assert quality_gate(tmp_path, metrics(0.1), 0.01).passed


def test_gate_refuses_a_version_worse_by_more_than_the_margin(tmp_path):
    publish_metrics(tmp_path, 0.20)
    assert quality_gate(tmp_path, metrics(0.195), 0.01).passed
    result = quality_gate(tmp_path, metrics(0.15), 0.01)
    assert not result.passed and "recall_at_10" in result.message


def test_gate_skips_when_the_served_version_used_another_protocol(tmp_path):
    publish_metrics(tmp_path, 0.20)
    assert quality_gate(tmp_path, metrics(0.01, split="random"), 0.01).passed


def test_comparison_rows_show_both_versions_and_the_change():
    a = {"metrics": metrics(0.10), "index": {"recall_at_10_vs_exact": 1.0}}
    b = {"metrics": metrics(0.12), "index": {"recall_at_10_vs_exact": 0.98}}
    rows = {r[0]: r for r in comparison_rows(a, b)}
    name, old, new, change = rows["recall_at_10"]
    assert (old, new) == (0.10, 0.12) and abs(change - 0.02) < 1e-12


def test_compare_command_prints_side_by_side_and_fails_on_a_drop(tmp_path):
    v1 = publish_metrics(tmp_path, 0.20)
    v2 = publish_metrics(tmp_path, 0.10)
    runner = CliRunner()
    ok = runner.invoke(app, ["compare", "--model-root", str(tmp_path)])
    assert ok.exit_code == 0, ok.output
    assert v1 in ok.output and v2 in ok.output and "-0.1000" in ok.output
    gated = runner.invoke(app, ["compare", "--model-root", str(tmp_path), "--max-drop", "0.05"])
    assert gated.exit_code == 4
    bad = runner.invoke(app, ["compare", "--model-root", str(tmp_path), "../etc", v2])
    assert bad.exit_code == 2 and "not a version name" in bad.output
