"""``unseen``: where the items that P2's training split never shows land in P2's test ranking (see the package's docstring)."""

from __future__ import annotations

import argparse
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

import recsys  # noqa: F401  (TF_USE_LEGACY_KERAS)
from benchmarks import common
from benchmarks.common import load_average

log = partial(common.log, "catalog_update")


def _top10_share(score, users: np.ndarray, seen: list[np.ndarray], unseen: np.ndarray) -> float:
    """Share of the users' top-10 places (training items excluded) taken by ``unseen`` items."""
    from training.metrics import top_k_indices

    is_unseen = np.zeros(score(users[:1]).shape[1], dtype=bool)
    is_unseen[unseen] = True
    taken = 0
    for start in range(0, len(users), 256):
        scores = np.array(score(users[start : start + 256]), dtype=np.float32, copy=True)
        for j, items in enumerate(seen[start : start + 256]):
            scores[j, items] = -np.inf
        taken += int(is_unseen[top_k_indices(scores, 10)].sum())
    return taken / (10 * len(users))


def unseen(args: argparse.Namespace) -> dict[str, Any]:
    """Each variant (``benchmarks.quality`` tokens) fitted as the quality benchmark fits P2 at
    ``--seed`` (early stopping, then the refit); then P2's test ranking with the items absent from
    the training split kept in (the benchmark's figure) and masked out."""
    from benchmarks.movielens import load
    from benchmarks.quality.project import pipeline_like_fit, project_variant
    from training.config import SplitKind
    from training.metrics import embedding_score_fn, ranking_metrics
    from training.model import embed
    from training.pipeline import split_with_validation
    from training.prepared import prepare

    data, _ = load(Path(args.movielens))
    out: dict[str, Any] = {"seed": args.seed, "variants": {}}
    for variant in [v for v in args.variants.split(",") if v.strip()]:
        spec, config = project_variant(data, variant, SplitKind.TEMPORAL)
        config = config.model_copy(update={"seed": args.seed})
        prep = prepare(data, spec)
        split, fit_rows, val_rows = split_with_validation(prep, config)
        result, best_epoch, seconds = pipeline_like_fit(prep, spec, config, split, fit_rows, val_rows)
        model = result.model
        score = embedding_score_fn(
            embed(model.query_tower, prep.query_inputs(split.train)), embed(model.candidate_tower, prep.item_inputs)
        )
        train_items, test_items = prep.items_by_user(split.train), prep.items_by_user(split.test)
        users = np.array([u for u in range(prep.num_users) if len(test_items[u])], dtype=np.int64)
        known = np.zeros(prep.num_items, dtype=bool)
        known[prep.item_rows[split.train]] = True
        never = np.flatnonzero(~known)
        seen = [train_items[u] for u in users]
        tests = [test_items[u] for u in users]
        kept = ranking_metrics(score, users, tests, seen, prep.num_items)
        masked = ranking_metrics(score, users, tests, [np.union1d(s, never) for s in seen], prep.num_items)
        row = {
            "best_epoch": best_epoch,
            "fit_seconds": round(seconds, 1),
            "items_unseen_in_training": len(never),
            "test_interactions_with_unseen_items": float(np.mean(~known[prep.item_rows[split.test]])),
            "top10_places_taken_by_unseen_items": _top10_share(score, users, seen, never),
            "unseen_kept": {k: kept[k] for k in ("recall_at_10", "ndcg_at_10", "recall_at_100")},
            "unseen_masked": {k: masked[k] for k in ("recall_at_10", "ndcg_at_10", "recall_at_100")},
            "load_average": load_average(),
        }
        out["variants"][variant] = row
        log(
            f"{variant}: epochs {best_epoch}; unseen items take {row['top10_places_taken_by_unseen_items']:.3f} of top-10 places "
            f"(they hold {row['test_interactions_with_unseen_items']:.4f} of test interactions); Recall@10 "
            f"{kept['recall_at_10']:.4f}, masked {masked['recall_at_10']:.4f}"
        )
    return out


def summary_md(r: dict[str, Any]) -> str:
    rows = [
        f"| {name} | {v['best_epoch']} | {v['top10_places_taken_by_unseen_items']:.3f} | "
        f"{v['unseen_kept']['recall_at_10']:.4f} / {v['unseen_kept']['ndcg_at_10']:.4f} | "
        f"{v['unseen_masked']['recall_at_10']:.4f} / {v['unseen_masked']['ndcg_at_10']:.4f} | {v['load_average']} |"
        for name, v in r["variants"].items()
    ]
    first = next(iter(r["variants"].values()), None)
    head = (
        f"MovieLens P2, seed {r['seed']}: {first['items_unseen_in_training']} items never in the training split, "
        f"{first['test_interactions_with_unseen_items']:.4f} of the test interactions.\n\n"
        if first
        else ""
    )
    return (
        head
        + "| variant | epochs | top-10 places taken by unseen items | Recall@10 / NDCG@10 | the same, unseen items masked | load after |\n"
        "| --- | --- | --- | --- | --- | --- |\n" + "\n".join(rows) + "\n"
    )
