"""The ``recsys`` console script: help, errors, and a real run on the user's own CSV files."""

import json
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from recsys.cli import app

runner = CliRunner()


@pytest.mark.parametrize("command", ["train", "serve", "compare"])
def test_every_subcommand_has_help(command):
    result = runner.invoke(app, [command, "--help"])
    assert result.exit_code == 0
    assert "--model-root" in result.output


def test_tf_legacy_keras_is_forced_before_tensorflow_loads():
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            "import recsys, os, tensorflow as tf; print(os.environ['TF_USE_LEGACY_KERAS'], tf.keras.__name__)",
        ],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "TF_USE_LEGACY_KERAS": "0"},
    )
    assert out.stdout.split()[0] == "1" and "tf_keras" in out.stdout


def test_unknown_source_is_a_clear_error_not_a_traceback(tmp_path):
    result = runner.invoke(app, ["train", "--data", "ftp:somewhere", "--model-root", str(tmp_path)])
    assert result.exit_code == 2
    assert "synthetic" in result.output and "Traceback" not in result.output


def test_bad_rows_refuse_training_and_name_file_and_line(tmp_path):
    (tmp_path / "events.csv").write_text("customer,sku\nu1,i1\nu2,i_missing\n")
    (tmp_path / "items.csv").write_text("sku,title\ni1,hello\n")
    spec = tmp_path / "spec.yaml"
    spec.write_text(
        "interactions: {path: events.csv, columns: {user_id: customer, item_id: sku}}\n"
        "items: {path: items.csv, columns: {item_id: sku}}\n"
    )
    result = runner.invoke(app, ["train", "--data", f"files:{spec}", "--model-root", str(tmp_path / "m")])
    assert result.exit_code == 2
    assert "events.csv" in result.output and "3" in result.output  # line 3 holds the unknown item
    assert not (tmp_path / "m" / "LATEST").exists()
    assert list((tmp_path / "m" / ".runs").glob("log-*")) == []  # the refused run's log folder is gone with it


@pytest.mark.slow
def test_train_on_own_csv_files_publishes_a_version(tmp_path):
    rng = np.random.default_rng(0)
    n_users, n_items = 60, 40
    users = [f"c{u}" for u in range(n_users)]
    items = [f"s{i}" for i in range(n_items)]
    rows = [
        (users[u], items[(u % 4) * 10 + int(rng.integers(10))], 1_700_000_000 + k)
        for k, u in enumerate(rng.integers(n_users, size=2000))
    ]
    pd.DataFrame(rows, columns=["customer", "sku", "ts"]).to_csv(tmp_path / "events.csv", index=False)
    pd.DataFrame({"sku": items, "name": [f"thing {i % 4}" for i in range(n_items)], "tags": ["a|b"] * n_items}).to_parquet(
        tmp_path / "catalog.parquet"
    )
    spec = tmp_path / "spec.yaml"
    spec.write_text(
        "interactions: {path: events.csv, columns: {user_id: customer, item_id: sku, timestamp: ts}}\n"
        "items: {path: catalog.parquet, columns: {item_id: sku}, multi_valued: {tags: '|'}}\n"
    )
    root = tmp_path / "models"
    result = runner.invoke(
        app, ["train", "--data", f"files:{spec}", "--model-root", str(root), "--epochs", "2", "--batch-size", "128"]
    )
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output[result.output.index("{") :])
    version = (root / "LATEST").read_text().strip()
    assert summary["version"] == version
    manifest = json.loads((root / version / "manifest.json").read_text())
    assert manifest["num_items"] == n_items and manifest["dataset"]["source"].startswith("files")
    assert [i["name"] for i in manifest["candidate_inputs"]] == ["item_id"]
