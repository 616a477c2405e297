"""Run a script in a fresh Python interpreter (for settings and memory that only count
before TensorFlow is imported, or in a process of their own) and read what it printed."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any


def json_printed_by(script: str, env: dict[str, str] | None = None, timeout: float = 300) -> Any:
    """The JSON of the last line ``script`` printed (run with this interpreter; ``env``:
    its whole environment, default this process's)."""
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=timeout, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])
