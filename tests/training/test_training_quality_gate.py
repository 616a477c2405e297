"""The quality gate and the side-by-side comparison of two versions."""

import json

from typer.testing import CliRunner

from artifact.manifest import parse_manifest
from recsys.cli import app
from tests.artifact.sample import manifest_dict
from training.publish import publish
from training.quality_gate import comparison_rows, quality_gate


def metrics(recall10: float, split: str = "temporal") -> dict:
    model = {"top_100_accuracy": 0.3, "recall_at_10": recall10, "recall_at_100": 0.5, "ndcg_at_10": 0.2, "coverage_at_10": 0.3}
    pop = {k: v / 2 for k, v in model.items()}
    return {"evaluation": {"split": split, "model": model, "popularity": pop}}


def publish_metrics(root, recall10: float, **changes) -> str:
    def write(dest, version):
        (dest / "manifest.json").write_text(json.dumps(manifest_dict(version, metrics=metrics(recall10), **changes)))

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
    index = manifest_dict()["index"]
    a = parse_manifest(manifest_dict("1", metrics=metrics(0.10), index={**index, "recall_at_10_vs_exact": 1.0}))
    b = parse_manifest(manifest_dict("2", metrics=metrics(0.12), index={**index, "recall_at_10_vs_exact": 0.98}))
    rows = {r[0]: r for r in comparison_rows(a, b)}
    _, old, new, change = rows["recall_at_10"]
    assert (old, new) == (0.10, 0.12) and abs(change - 0.02) < 1e-12
    assert rows["index recall@10 vs exact"][1:3] == (1.0, 0.98)


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


def test_the_gate_is_skipped_saying_why_when_the_served_manifest_is_of_another_format(tmp_path):
    """A version of the current format must be able to replace one published before it."""
    served = publish_metrics(tmp_path, 0.90, schema_version=1)
    result = quality_gate(tmp_path, metrics(0.10), 0.01)
    assert result.passed and f"served version {served}" in result.message and "schema_version 1" in result.message


def test_compare_names_the_bad_field_of_a_malformed_manifest_and_exits_2(tmp_path):
    v1 = publish_metrics(tmp_path, 0.20, embedding_dim=-3)
    v2 = publish_metrics(tmp_path, 0.10)
    result = CliRunner().invoke(app, ["compare", "--model-root", str(tmp_path), v1, v2])
    assert result.exit_code == 2
    assert "manifest.embedding_dim must be greater than 0, got -3" in " ".join(result.output.split())
    assert "Traceback" not in result.output


def test_compare_refuses_a_version_of_another_format_and_says_to_publish_again(tmp_path):
    v1 = publish_metrics(tmp_path, 0.20, schema_version=1)
    publish_metrics(tmp_path, 0.10)
    result = CliRunner().invoke(app, ["compare", "--model-root", str(tmp_path)])
    text = " ".join(result.output.split())
    assert result.exit_code == 2 and f"version {v1}" in text and "publish it again" in text
