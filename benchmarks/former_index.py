"""A published version's copy with the former rule's index: the baseline the tuned index is
served against (``python -m benchmarks.serving_load --former-index``; issue 23).

    python -m benchmarks.former_index --source ROOT --dest ROOT

The copy is the version ``LATEST`` names under ``--source`` (its large files hard-linked:
versions are never modified in place), with ``index/`` rebuilt by the former rule by
catalog size (``training.index.index_params``: what every version got before the index
was tuned per version) and the manifest's ``index`` saying so: kind, params, build time
and recall@10 against exact search on 2,000 of the version's known users (their query
vectors as the service computes them, the pool re-scored). It is published under
``--dest`` with the same version name (``LATEST`` written last). A copy already there,
made from the same source version, is reused.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np

RECALL_QUERIES = 2_000
CHUNK = 100  # queries per exact-search step (100 x 1M items: 400 MB of scores)
RULE = "former rule by size (training.index.index_params)"


def _link_copy(src: Path, dest: Path) -> None:
    """``src`` copied to ``dest`` with every file hard-linked (manifest.json and index/ are rewritten
    later: they are unlinked first, so the source's files are never written)."""
    shutil.copytree(src, dest, copy_function=os.link)


def former_rule_version(source_root: Path, dest_root: Path, seed: int = 0) -> dict[str, Any]:
    """The copy (see the module docstring); returns its model root, version and index record."""
    import recsys  # noqa: F401  (TF_USE_LEGACY_KERAS before TensorFlow)
    from artifact.checksums import tree_checksums
    from artifact.latest import write_latest
    from serving.version.loader import load_version
    from training.index import build_searcher, index_params, index_recall, save_searcher

    source_root, dest_root = Path(source_root), Path(dest_root)
    name = (source_root / "LATEST").read_text().strip()
    dest = dest_root / name
    if (dest_root / "LATEST").is_file() and (dest_root / "LATEST").read_text().strip() == name:
        index = json.loads((dest / "manifest.json").read_text())["index"]
        if index.get("rule") == RULE:
            return {"model_root": str(dest_root), "version": name, "reused": True, "index": index}
    if dest_root.exists():
        shutil.rmtree(dest_root)
    dest_root.mkdir(parents=True)
    served = load_version(source_root, name, min_index_recall=0)  # the query vectors the service will search with
    items = np.asarray(served.item_embeddings)
    users = served.user_vectors
    if users is None:
        raise SystemExit("the source version's user vectors were not precomputed (over budget): cannot measure recall")
    sample = np.sort(np.random.default_rng(seed).choice(len(users), min(RECALL_QUERIES, len(users)), replace=False))
    kind, params = index_params(len(items))
    start = time.perf_counter()
    searcher = build_searcher(items, kind, params)
    build_seconds = time.perf_counter() - start
    queries = np.asarray(users)[sample]
    # in chunks: the exact side of 2,000 queries against 1M items at once would be 8 GB
    recall = float(
        np.mean(
            [
                index_recall(searcher, items, queries[i : i + CHUNK], k=10, pool=params.get("reorder", 0))
                for i in range(0, len(queries), CHUNK)
            ]
        )
    )
    del served

    _link_copy(source_root / name, dest)
    shutil.rmtree(dest / "index")
    save_searcher(searcher, dest / "index")
    manifest = json.loads((dest / "manifest.json").read_text())
    manifest["index"] = {
        "kind": kind,
        "params": params,
        "build_seconds": build_seconds,
        "recall_at_10_vs_exact": recall,
        "rule": RULE,
        "recall_queries": {"source": "users", "users": len(sample), "seed": seed},
    }
    (dest / "manifest.json").unlink()  # a hard link to the source's: never written through
    manifest["files"] = tree_checksums(dest)
    (dest / "manifest.json").write_text(json.dumps(manifest, indent=2))
    write_latest(dest_root, name)
    return {"model_root": str(dest_root), "version": name, "reused": False, "index": manifest["index"]}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--source", type=Path, required=True, help="model root whose LATEST version is copied")
    p.add_argument("--dest", type=Path, required=True, help="model root of the copy (replaced)")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    print(json.dumps(former_rule_version(args.source, args.dest, args.seed), default=float))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
