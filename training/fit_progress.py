"""What Keras prints while fitting: its progress bar on a terminal; elsewhere (CI,
containers, CronJobs, a log file) a line per epoch (Keras's ``verbose=2``) and a line
per minute within long epochs, instead of a carriage-return bar that fills the log."""

from __future__ import annotations

import sys
import time

import tensorflow as tf

LINE_EVERY_S = 60.0


def keras_verbose(verbose: int | str) -> int | str:
    """``"auto"``: the progress bar when stdout is a terminal, else a line per epoch (2)."""
    if verbose != "auto":
        return verbose
    return "auto" if sys.stdout.isatty() else 2


class MinuteLines(tf.keras.callbacks.Callback):
    """A line per ``every_s`` seconds within an epoch: step, loss, examples per second."""

    def __init__(self, batch_size: int, every_s: float = LINE_EVERY_S) -> None:
        super().__init__()
        self.batch_size = batch_size
        self.every_s = every_s
        self._epoch = 0
        self._start = self._last = 0.0

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self._epoch, self._start = epoch + 1, time.monotonic()
        self._last = self._start

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        now = time.monotonic()
        if now - self._last < self.every_s:
            return
        self._last = now
        steps = self.params.get("steps") if self.params else None
        rate = (batch + 1) * self.batch_size / max(now - self._start, 1e-9)
        loss = (logs or {}).get("loss")
        loss_text = f", loss {float(loss):.4f}" if loss is not None else ""
        print(
            f"epoch {self._epoch}: step {batch + 1:,}{f'/{steps:,}' if steps else ''}{loss_text}, {rate:,.0f} examples/s",
            flush=True,
        )


def progress_callbacks(verbose: int | str, batch_size: int, every_s: float = LINE_EVERY_S) -> list[tf.keras.callbacks.Callback]:
    """The lines every ``every_s`` seconds (``TrainConfig.progress_every_s``) where Keras prints a line per epoch only."""
    return [MinuteLines(batch_size, every_s)] if keras_verbose(verbose) == 2 else []
