"""Scratch folders a run writes under the model root's ``.runs/``: its interaction log
(``log-*``) and the export's per-user tables (``export-*``).

Each is removed when its run ends, but a killed process (SIGKILL, the OOM killer, a
node lost) leaves it behind, and at 20M interactions a log takes hundreds of MB. So
each folder is named after the process that owns it (its pid, the start time of that
process and the host), and creating one removes the folders of this host whose owner
is gone: no process with that pid, or a process with that pid that started at another
time (a restarted container's new process 1). Folders of other hosts (workers sharing
the model root's volume) are never touched.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import tempfile
from pathlib import Path

import psutil
from rich.console import Console

KINDS = ("log", "export")
console = Console(stderr=True)
_NAME = re.compile(r"^(?P<kind>[a-z]+)-(?P<pid>\d+)\.(?P<started>\d+)@(?P<host>.+)-[^-]+$")


def _started(pid: int) -> int | None:
    """When process ``pid`` started, in hundredths of a second since the epoch; None if there is none."""
    try:
        return int(psutil.Process(pid).create_time() * 100)
    except psutil.Error:
        return None


def _owner_tag() -> str:
    """This process: its pid, when it started and its host."""
    pid = os.getpid()
    return f"{pid}.{_started(pid)}@{socket.gethostname()}"


def stale_folders(runs: Path) -> list[Path]:
    """The scratch folders in ``runs`` that a process of this host left when it died."""
    if not runs.is_dir():
        return []
    host, stale = socket.gethostname(), []
    for path in runs.iterdir():
        found = _NAME.match(path.name)
        if not found or found["kind"] not in KINDS or found["host"] != host or not path.is_dir():
            continue
        if _started(int(found["pid"])) != int(found["started"]):
            stale.append(path)
    return sorted(stale)


def scratch_folder(runs: Path, kind: str) -> tempfile.TemporaryDirectory[str]:
    """A new scratch folder of ``kind`` in ``runs`` owned by this process (removed when the
    returned object is cleaned up or collected), after removing the stale ones."""
    if kind not in KINDS:
        raise ValueError(f"unknown scratch folder kind {kind!r} (one of {KINDS})")
    runs.mkdir(parents=True, exist_ok=True)
    stale = stale_folders(runs)
    for path in stale:
        shutil.rmtree(path, ignore_errors=True)
    if stale:
        console.log(f"removed {len(stale)} scratch folder(s) that killed runs left: {', '.join(p.name for p in stale)}")
    return tempfile.TemporaryDirectory(prefix=f"{kind}-{_owner_tag()}-", dir=runs)
