"""SIGKILL ``recsys train`` in the middle of its second epoch, run the same command
again: it resumes from the step checkpoint (``BackupAndRestore`` under
``<model_root>/.runs/``) instead of starting over, and ends where an
uninterrupted run of the same command ends.

Checked: the killed run published nothing (no version, no LATEST); the rerun's
first epoch line is not ``Epoch 1/``; each completed run published exactly one
version and removed its checkpoints; the resumed run's per-epoch history has one
entry per epoch (as many as the uninterrupted run's), its validation metric per
epoch and its test-split quality are the uninterrupted run's within a tolerance.
Both with the refit on the whole training split (the default) and without it.

A second case kills epoch 2 before its first step checkpoint, so the rerun
restores the end of epoch 1 and runs it again: the history must still hold one
entry per epoch.

Slow (three trainings of a small generated dataset per case): ``scripts/reliability.sh``.
"""

import json
import os
import re
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest

from artifact.latest import list_versions, read_latest

pytestmark = pytest.mark.reliability

EPOCHS = 3
TRAIN_ARGS = [
    "train",
    "--data",
    "synthetic",
    "--items",
    "300",
    "--users",
    "400",
    "--interactions",
    "30000",
    "--epochs",
    str(EPOCHS),
    "--batch-size",
    "128",
    "--seed",
    "7",
    "--retain",
    "5",
]
# progress lines every 0.2 s: recsys train's output is not a terminal here, so Keras prints a line per
# epoch and the trainer a progress line per interval (training/fit_progress.py), which the kill waits on
CONFIG = {"checkpoint_every_steps": 4, "early_stopping_patience": 5, "progress_every_s": 0.2}
# with the refit (the default) the published model is retrained from scratch once the epoch count
# is chosen; without it the published model is the resumed model itself
VARIANTS = {"refit": {}, "no-refit": {"refit_on_full_train": False}}
TOLERANCE = {"recall_at_100": 0.05, "recall_at_10": 0.05, "ndcg_at_10": 0.05}
EPOCH_LINE = re.compile(r"Epoch (\d+)/(\d+)")


class Trainer:
    """``recsys train`` in a child process; stdout collected as it comes (Keras prints the
    epoch lines there), stderr into a file."""

    def __init__(self, cli, root: Path, config: Path, log: Path) -> None:
        self.root = root
        self.log = log
        self._err = open(log, "wb")  # noqa: SIM115  (the child writes into it until wait() closes it)
        self.proc = subprocess.Popen(
            cli.cmd(*TRAIN_ARGS, "--model-root", str(root), "--config", str(config)),
            cwd=str(cli.repo),
            env=cli.env(),
            stdout=subprocess.PIPE,
            stderr=self._err,
        )
        self.out = b""
        self.lock = threading.Lock()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None  # Popen(stdout=PIPE)
        fd = self.proc.stdout.fileno()
        while block := os.read(fd, 65536):
            with self.lock:
                self.out += block

    def text(self) -> str:
        with self.lock:
            return self.out.decode(errors="replace")

    def wait(self, timeout: float) -> int:
        try:
            code = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=30)
            raise
        finally:
            self.reader.join(timeout=30)
            self._err.close()
        return code

    def stderr_tail(self, chars: int = 3000) -> str:
        return self.log.read_bytes()[-chars:].decode(errors="replace")

    def epochs(self) -> list[str]:
        return [m.group(0) for m in EPOCH_LINE.finditer(self.text())]

    def summary(self) -> dict:
        text = self.text()
        return json.loads(text[text.rindex('{\n  "version"') :])


def _checkpoint_files(root: Path) -> list[Path]:
    return [p for p in (root / ".runs").glob("*/backup/**/*") if p.is_file()]


def _latest_checkpoint_time(root: Path) -> float | None:
    """mtime of the checkpoint BackupAndRestore would restore (the one its ``checkpoint`` state
    file names, index written), or None."""
    for state in (root / ".runs").glob("*/backup/chief/checkpoint"):
        try:
            found = re.search(r'model_checkpoint_path: "([^"]+)"', state.read_text())
            if found is None:
                return None
            return (state.parent / f"{found.group(1)}.index").stat().st_mtime
        except OSError:
            return None
    return None


STEP = re.compile(r"epoch \d+: step ([\d,]+)/([\d,]+)")  # training.fit_progress.MinuteLines


def _kill_in_epoch_2(trainer: Trainer, *, after_a_checkpoint: bool, timeout: float = 400) -> dict:
    """SIGKILL during epoch 2 (Keras' ``Epoch 2/`` line printed, ``Epoch 3/`` not yet).

    ``after_a_checkpoint``: wait until epoch 2 is a quarter done and the checkpoint to restore
    was written during epoch 2 (resume lands mid-epoch 2). Otherwise kill at once, before any
    checkpoint of epoch 2 exists (resume lands back in epoch 1, after its end-of-epoch work ran)."""
    deadline = time.monotonic() + timeout
    began = None
    while time.monotonic() < deadline:
        assert trainer.proc.poll() is None, (
            f"trainer ended before epoch 2 was checkpointed:\n{trainer.text()[-3000:]}\nstderr:\n{trainer.stderr_tail()}"
        )
        text = trainer.text()
        at = text.find("Epoch 2/")
        if at >= 0:
            began = began or time.time()
            steps = STEP.findall(text[at:])
            step, total = (int(steps[-1][0].replace(",", "")), int(steps[-1][1].replace(",", ""))) if steps else (0, 0)
            latest = _latest_checkpoint_time(trainer.root)
            in_epoch_2 = latest is not None and latest > began
            if (after_a_checkpoint and in_epoch_2 and total // 4 <= step < total) or not after_a_checkpoint:
                trainer.proc.send_signal(signal.SIGKILL)
                code = trainer.wait(60)
                after = trainer.text()[at:]
                assert "Epoch 3/" not in after and (not total or f"{total}/{total} - " not in after), "epoch 2 ended"
                latest = _latest_checkpoint_time(trainer.root)
                return {
                    "code": code,
                    "seconds_into_epoch_2": time.time() - began,
                    "step": f"{step}/{total}",
                    "checkpoint_from_epoch_2": latest is not None and latest > began,
                }
        time.sleep(0.02)
    trainer.proc.kill()
    raise AssertionError(f"epoch 2 never reached a quarter with a checkpoint in {timeout}s:\n{trainer.text()[-3000:]}")


def _published(root: Path) -> list[str]:
    return list_versions(root)


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_sigkill_mid_epoch_then_rerun_resumes_and_matches_an_uninterrupted_run(variant: str, tmp_path: Path, cli) -> None:
    config = tmp_path / "train.json"
    config.write_text(json.dumps({**CONFIG, **VARIANTS[variant]}))
    logs = tmp_path / "logs"
    logs.mkdir()

    # 1. killed in the middle of epoch 2
    root = tmp_path / "resumed"
    start = time.perf_counter()
    killed = Trainer(cli, root, config, logs / "killed.err")
    kill = _kill_in_epoch_2(killed, after_a_checkpoint=True)
    assert kill["code"] == -signal.SIGKILL and kill["checkpoint_from_epoch_2"], kill
    assert _published(root) == [] and read_latest(root) is None, "a killed run published something"
    assert _checkpoint_files(root), "no checkpoint left to resume from"

    # 2. the same command again: resumes, publishes one version, removes its checkpoints
    rerun = Trainer(cli, root, config, logs / "rerun.err")
    assert rerun.wait(600) == 0, rerun.text()[-3000:] + (logs / "rerun.err").read_text()[-3000:]
    rerun_epochs = rerun.epochs()
    assert rerun_epochs, rerun.text()[-2000:]
    first_steps = re.findall(r"Epoch \d+/\d+\s+epoch \d+: step ([\d,]+/[\d,]+)", rerun.text())
    assert rerun_epochs[0] != f"Epoch 1/{EPOCHS}", (
        f"the rerun started over: {rerun_epochs}, first progress of each epoch {first_steps}; killed: {kill}"
    )
    versions = _published(root)
    assert len(versions) == 1 and read_latest(root) == versions[0] == rerun.summary()["version"]
    assert not list((root / ".runs").glob("*")), "checkpoints left after publishing"
    resumed_manifest = json.loads((root / versions[0] / "manifest.json").read_text())

    # 3. the same command, uninterrupted, into another root
    clean_root = tmp_path / "uninterrupted"
    clean = Trainer(cli, clean_root, config, logs / "clean.err")
    assert clean.wait(600) == 0, clean.text()[-3000:]
    assert clean.epochs()[0] == f"Epoch 1/{EPOCHS}"
    clean_versions = _published(clean_root)
    assert len(clean_versions) == 1 and read_latest(clean_root) == clean_versions[0]
    clean_manifest = json.loads((clean_root / clean_versions[0] / "manifest.json").read_text())

    resumed, uninterrupted = rerun.summary()["evaluation"], clean.summary()["evaluation"]
    history_r = resumed_manifest["metrics"]["training"]["history"]
    history_c = clean_manifest["metrics"]["training"]["history"]
    diffs = {k: resumed[k] - uninterrupted[k] for k in TOLERANCE}
    val_key = next(k for k in history_c if k.startswith("val_"))
    print(
        f"\nresume [{variant}]: killed at epoch 2 step {kill['step']}, {kill['seconds_into_epoch_2']:.1f}s into it "
        f"(exit {kill['code']}), "
        f"rerun epoch lines {rerun_epochs}, uninterrupted epoch lines {clean.epochs()}; "
        + ", ".join(f"{k} resumed={resumed[k]:.4f} uninterrupted={uninterrupted[k]:.4f}" for k in TOLERANCE)
        + f"; {val_key} per epoch resumed={[round(v, 4) for v in history_r[val_key]]} "
        f"uninterrupted={[round(v, 4) for v in history_c[val_key]]}; "
        f"history lengths resumed={len(history_r['loss'])} uninterrupted={len(history_c['loss'])}; "
        f"best_epoch resumed={resumed_manifest['metrics']['training']['best_epoch']} "
        f"uninterrupted={clean_manifest['metrics']['training']['best_epoch']}; "
        f"versions killed=0 resumed={len(versions)} uninterrupted={len(clean_versions)}; "
        f"total {time.perf_counter() - start:.0f}s"
    )
    assert len(history_r["loss"]) == len(history_c["loss"]) == len(history_r[val_key]), (history_r, history_c)
    for r, c in zip(history_r[val_key], history_c[val_key], strict=True):  # validation quality, epoch by epoch
        assert abs(r - c) <= TOLERANCE["recall_at_100"], (history_r[val_key], history_c[val_key])
    for key, limit in TOLERANCE.items():
        assert abs(diffs[key]) <= limit, (key, resumed[key], uninterrupted[key])


def test_sigkill_before_the_first_checkpoint_of_an_epoch_keeps_one_history_entry_per_epoch(tmp_path: Path, cli) -> None:
    """Killed early in epoch 2, before its first step checkpoint (every 100 steps here), the
    rerun restores the last checkpoint of epoch 1 and finishes epoch 1 again. The per-epoch
    history (``history.json`` beside the checkpoint, written at each epoch end) must not get a
    second entry for epoch 1: it decides the best epoch, hence how long the refit trains."""
    config = tmp_path / "train.json"
    config.write_text(json.dumps({**CONFIG, "checkpoint_every_steps": 100}))
    root = tmp_path / "models"
    (tmp_path / "logs").mkdir()
    killed = Trainer(cli, root, config, tmp_path / "logs" / "killed.err")
    kill = _kill_in_epoch_2(killed, after_a_checkpoint=False)
    assert kill["code"] == -signal.SIGKILL and not kill["checkpoint_from_epoch_2"], kill
    assert _published(root) == [] and _checkpoint_files(root)

    rerun = Trainer(cli, root, config, tmp_path / "logs" / "rerun.err")
    assert rerun.wait(600) == 0, rerun.text()[-3000:]
    versions = _published(root)
    assert len(versions) == 1 and read_latest(root) == versions[0]
    training = json.loads((root / versions[0] / "manifest.json").read_text())["metrics"]["training"]
    # the first progress line after each epoch line: a resumed epoch goes on from its checkpoint's step
    first_steps = [int(x.replace(",", "")) for x in re.findall(r"Epoch \d+/\d+\s+epoch \d+: step ([\d,]+)/", rerun.text())]
    print(
        f"\nresume [kill before epoch 2's first checkpoint]: killed {kill['seconds_into_epoch_2']:.2f}s into epoch 2; "
        f"rerun epoch lines {rerun.epochs()} (first progress {first_steps}); history entries "
        f"{len(training['history']['loss'])} for --epochs {EPOCHS}; best_epoch {training['best_epoch']}"
    )
    started_over = rerun.epochs()[0] == f"Epoch 1/{EPOCHS}" and bool(first_steps) and first_steps[0] <= 100
    assert not started_over, (rerun.epochs(), first_steps)
    assert len(training["history"]["loss"]) == EPOCHS, training["history"]
    assert training["best_epoch"] <= EPOCHS
    assert f"Epoch 1/{EPOCHS + 1}" not in rerun.text(), "the refit trains for more epochs than --epochs"
