"""Progress lines for data loading: a status per file on stderr, or silence.

Readers take a :class:`Progress` and wrap each slow step in
``with progress.step("reading u.data") as done: ...; done(f"{n} rows")``.
:data:`QUIET` prints nothing; :func:`console_progress` prints through ``rich``
(a spinner while a step runs on a terminal, one line when it ends).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

Done = Callable[[str], None]


class Progress:
    """Does nothing; the base of the console implementation and the quiet default."""

    @contextmanager
    def step(self, title: str) -> Iterator[Done]:
        """Run one step titled ``title``; call the yielded function with a result note."""
        yield lambda note: None


QUIET = Progress()


class ConsoleProgress(Progress):
    """Status lines on stderr through ``rich``."""

    def __init__(self) -> None:
        from rich.console import Console

        self._console = Console(stderr=True, highlight=False, soft_wrap=True)

    @contextmanager
    def step(self, title: str) -> Iterator[Done]:
        notes: list[str] = []
        start = time.perf_counter()
        with self._console.status(f"{title} …"):
            yield notes.append
        seconds = time.perf_counter() - start
        note = f": {notes[-1]}" if notes else ""
        self._console.print(f"[green]✓[/green] {title}{note} ({seconds:.2f} s)")


def console_progress(enabled: bool = True) -> Progress:
    """A :class:`ConsoleProgress` when ``enabled``, else :data:`QUIET`."""
    return ConsoleProgress() if enabled else QUIET
