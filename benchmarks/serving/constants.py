"""What the serving benchmarks share: the request shape, the catalog sizes' users, the targets,
where catalogs are built, and the progress log."""

from __future__ import annotations

import functools
import tempfile
from pathlib import Path

from benchmarks import common

REPO = Path(__file__).resolve().parents[2]
DEFAULT_WORK_DIR = Path(tempfile.gettempdir()) / "recsys-serving-bench"
K = 10
NUM_USERS = 50_000
REQUEST_USERS = 1_000
TARGETS = {
    "ratio_to_http_ceiling_min": 0.60,
    "p99_ms_max": 25.0,
    "failures": 0,
    "rss_gb_per_worker_max": 1.5,
    "swap_p99_ms_max": 100.0,
    "recent_p99_ms_max": 30.0,
}

log = functools.partial(common.log, "serving_load")
