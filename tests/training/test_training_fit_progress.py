"""training.fit_progress: a progress bar on a terminal, a line per epoch and per minute
elsewhere (no carriage-return bars in logs)."""

import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from training.fit_progress import MinuteLines, keras_verbose, progress_callbacks


@pytest.mark.parametrize(("tty", "want"), [(True, "auto"), (False, 2)])
def test_auto_is_the_bar_on_a_terminal_and_a_line_per_epoch_elsewhere(monkeypatch, tty, want) -> None:
    monkeypatch.setattr(sys.stdout, "isatty", lambda: tty)
    assert keras_verbose("auto") == want
    assert keras_verbose(0) == 0 and keras_verbose(1) == 1  # an explicit choice stays
    assert [type(c) for c in progress_callbacks("auto", 32)] == ([] if tty else [MinuteLines])


def test_minute_lines_report_step_loss_and_rate(capsys) -> None:
    model = tf.keras.Sequential([tf.keras.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    x, y = np.ones((64, 3), np.float32), np.zeros((64, 1), np.float32)
    model.fit(x, y, batch_size=16, epochs=2, verbose=0, callbacks=[MinuteLines(16, every_s=0.0)])
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 8 and lines[0].startswith("epoch 1: step 1/4, loss ") and lines[-1].startswith("epoch 2: step 4/4")
    assert all(line.endswith("examples/s") for line in lines)


def test_a_training_run_into_a_pipe_writes_no_carriage_returns(tmp_path) -> None:
    """``recsys train`` with stdout not a terminal (CI, a container's log)."""
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "recsys.cli",
            "train",
            "--data",
            "synthetic",
            "--items",
            "200",
            "--users",
            "150",
            "--interactions",
            "3000",
            "--epochs",
            "2",
            "--batch-size",
            "256",
            "--no-publish",
            "--model-root",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert "Epoch 1/" in out.stdout and "\r" not in out.stdout, out.stdout[-2000:]
    assert "\x08" not in out.stdout  # no backspaces either


def test_the_interval_between_lines_is_a_training_setting() -> None:
    from training.config import TrainConfig

    assert TrainConfig().progress_every_s == 60.0
    (lines,) = progress_callbacks(2, 32, TrainConfig(progress_every_s=0.5).progress_every_s)
    assert isinstance(lines, MinuteLines) and lines.every_s == 0.5
    with pytest.raises(ValueError, match="progress_every_s"):
        TrainConfig(progress_every_s=0)
