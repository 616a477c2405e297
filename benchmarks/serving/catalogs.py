"""The generated catalogs the serving benchmarks serve, and the requests they send."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from benchmarks.serving.constants import NUM_USERS, REPO, REQUEST_USERS, K, log
from benchmarks.serving.servers import server_env


def ensure_catalog(work_dir: Path, size: int, logs: Path, history_length: int = 0) -> dict[str, Any]:
    from artifact.manifest import SCHEMA_VERSION
    from benchmarks.catalog import GENERATOR_VERSION

    root = work_dir / (f"items-{size}-history{history_length}" if history_length else f"items-{size}")
    latest = root / "LATEST"
    if latest.is_file():
        name = latest.read_text().strip()
        manifest = json.loads((root / name / "manifest.json").read_text())
        cat = manifest.get("metrics", {}).get("catalog", {})
        current = "tuning" in manifest.get("index", {})  # built by the tuned index path (issue 23), not the old size rule
        same_history = cat.get("history_length", 0) == history_length
        same_format = manifest.get("schema_version") == SCHEMA_VERSION  # the service refuses other formats
        if (
            same_format
            and manifest.get("num_items") == size
            and cat.get("generator") == GENERATOR_VERSION
            and current
            and same_history
        ):
            log(f"reusing {root} (version {name})")
            return {
                "model_root": str(root),
                "version": name,
                "reused": True,
                "build_timings": cat.get("build_timings"),
                "index": manifest.get("index"),
            }
        if "generated-catalog" not in str(manifest.get("dataset", {}).get("source")):
            raise RuntimeError(f"{root} holds a version that is not a generated catalog: not touching it")
        log(f"{root} holds a catalog of an older generator or index settings: rebuilding it")
        shutil.rmtree(root)
    log(f"building a {size:,}-item catalog in {root}")
    cmd = [
        sys.executable,
        "-m",
        "benchmarks.catalog",
        "--model-root",
        str(root),
        "--items",
        str(size),
        "--users",
        str(NUM_USERS),
        "--history-length",
        str(history_length),
    ]
    with open(logs / f"catalog-{size}.log", "ab") as fh:
        done = subprocess.run(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=fh, timeout=3600, check=True)
    info = json.loads(done.stdout.decode().strip().splitlines()[-1])
    return {
        "model_root": str(root),
        "version": info["version"],
        "reused": False,
        "build_timings": info["timings"],
        "index": info["index"],
    }


def former_index_catalog(work_dir: Path, size: int, root: Path, logs: Path) -> dict[str, Any]:
    """The catalog's copy with the former rule's index (``benchmarks.former_index``), under ``work_dir``:
    its model root, version and index record."""
    dest = work_dir / f"items-{size}-former-index"
    log(f"the former rule's index for the {size:,}-item catalog in {dest}")
    cmd = [sys.executable, "-m", "benchmarks.former_index", "--source", str(root), "--dest", str(dest)]
    with open(logs / f"former-index-{size}.log", "ab") as fh:
        done = subprocess.run(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=fh, timeout=3600, check=True, env=server_env())
    return json.loads(done.stdout.decode().strip().splitlines()[-1])


def request_specs(num_users: int = REQUEST_USERS) -> list[Any]:
    from benchmarks.catalog import user_id
    from benchmarks.loadgen import RequestSpec

    return [
        RequestSpec.post_json("/v1/recommendations", {"user_id": user_id(i * 37 % NUM_USERS), "k": K}) for i in range(num_users)
    ]


def recent_request_specs(num_items: int, recent: int, num_users: int = REQUEST_USERS) -> list[Any]:
    """The known users of :func:`request_specs`, each request carrying ``recent`` recent item ids
    (seeded draws from the catalog): the service runs the query tower for every one."""
    import numpy as np

    from benchmarks.catalog import item_id, user_id
    from benchmarks.loadgen import RequestSpec

    rng = np.random.default_rng(19)
    return [
        RequestSpec.post_json(
            "/v1/recommendations",
            {
                "user_id": user_id(i * 37 % NUM_USERS),
                "k": K,
                "recent_item_ids": [item_id(int(r)) for r in rng.integers(0, num_items, recent)],
            },
        )
        for i in range(num_users)
    ]
