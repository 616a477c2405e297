"""``python -m benchmarks.catalog_update scale|cold``: the command line and the summary for a person."""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

import recsys  # noqa: F401  (TF_USE_LEGACY_KERAS)
from benchmarks.catalog_update.cold import cold
from benchmarks.catalog_update.scale import scale
from benchmarks.catalog_update.unseen import summary_md as unseen_md
from benchmarks.catalog_update.unseen import unseen
from benchmarks.common import DEFAULT_MOVIELENS, load_average


def summary_md(mode: str, r: dict[str, Any]) -> str:
    """The figures of one result for a person."""
    if mode == "unseen":
        return unseen_md(r)
    if mode == "cold":
        u = r["update"]
        return (
            f"MovieLens ({r['source']}): {r['withheld_items']} of {r['items']} items withheld from training (seed {r['seed']}, "
            f"item-id dropout {r.get('item_id_dropout', 0.0)}, cold path {'on' if r.get('cold_path') else 'off'}), "
            f"added by update-catalog ({u['seconds']} s, load {u['load_average_before']}).\n\n"
            "| test interactions | count | share in the user's top 100 | vs uniform placement |\n| --- | --- | --- | --- |\n"
            f"| with withheld (cold) items | {r['cold_test_interactions']} | {r['cold_share_in_top100']:.4f} | {r['cold_vs_uniform']:.1f}x |\n"
            f"| with trained items | {r['trained_test_interactions']} | {r['trained_share_in_top100']:.4f} | {r['trained_vs_uniform']:.1f}x |\n"
            f"| uniform placement | | {r['uniform_share_in_top100']:.4f} | 1x |\n"
            + (
                f"\nNot in the product, for comparison: cold vectors replaced by the mean of their 5 nearest known items "
                f"by metadata-only vector: cold {r['variant_metadata_neighbours_k5']['cold_share_in_top100']:.4f} "
                f"({r['variant_metadata_neighbours_k5']['cold_share_in_top100'] / r['uniform_share_in_top100']:.1f}x), trained "
                f"{r['variant_metadata_neighbours_k5']['trained_share_in_top100']:.4f}.\n"
                if "variant_metadata_neighbours_k5" in r
                else ""
            )
        )
    rows = []
    for name in ("daily",):
        u = r[name]
        s = u["summary"]
        rows.append(
            f"| {name} | {s['items']:,} | {s['new']:,} | {s['retired']:,} | {s['changed']:,} | {u['seconds']} | {u['peak_rss_gib']} | "
            f"{u['steps_seconds']} | {u['index']['kind']} {u['index']['recall_at_10_vs_exact']} | {u['load_average_before']} |"
        )
    text = (
        "| run | items | new | retired | changed | seconds end to end | peak RSS GiB | steps (s) | index, recall@10 | load before |\n"
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |\n" + "\n".join(rows) + "\n"
    )
    if "swap" in r:
        w = r["swap"]
        text += (
            f"\nSwap under load (c = 32, wrk) while the daily update published: {w['load']['completed']:,} requests, "
            f"{w['load']['failures']} failed, p50 {w['load']['p50_ms']:.1f} ms, p99 {w['load']['p99_ms']:.1f} ms, max {w['load']['max_ms']:.0f} ms; "
            f"versions answered {w['load']['versions']}; new version answered: {w['new_version_answered']}; "
            f"server peak RSS {w['server_rss_peak_gib']} GiB; load before {w['load_average_before']}.\n"
        )
    return text


def main(argv: list[str] | None = None) -> int:
    from benchmarks.common import machine_description, write_results

    p = argparse.ArgumentParser(description="recsys update-catalog benchmarks (issue 20)")
    p.add_argument("--out", default=None, help="results name (default catalog_update_<mode>)")
    sub = p.add_subparsers(dest="mode", required=True)
    s = sub.add_parser("scale")
    s.add_argument("--items", type=int, default=1_000_000)
    s.add_argument("--users", type=int, default=50_000)
    s.add_argument(
        "--base-root", default=None, help="copy LATEST of this model root as the base (else build a benchmarks.catalog version)"
    )
    s.add_argument(
        "--swap", action="store_true", help="serve the first update under load at c = 32 while the daily one publishes"
    )
    s.add_argument("--work-dir", default="/tmp/catalog_update_bench")
    c = sub.add_parser("cold")
    c.add_argument("--movielens", default=str(DEFAULT_MOVIELENS))
    c.add_argument("--withhold", type=float, default=0.1)
    c.add_argument("--seed", type=int, default=0)
    c.add_argument("--epochs", type=int, default=30)
    c.add_argument(
        "--item-id-dropout", type=float, default=None, help="the trained version's item_id_dropout (default: TrainConfig's)"
    )
    c.add_argument(
        "--cold-path", choices=("on", "off"), default=None, help="the candidate tower's cold path (default: the default spec's)"
    )
    c.add_argument("--work-dir", default="/tmp/catalog_update_cold")
    n = sub.add_parser("unseen", help="P2: how many top-10 places the items training never saw take, per model variant")
    n.add_argument("--movielens", default=str(DEFAULT_MOVIELENS))
    n.add_argument("--seed", type=int, default=42)
    n.add_argument(
        "--variants",
        default="default,default+cold_path=on,default+cold_path=on+item_id_dropout=0.1",
        help="comma-separated benchmarks.quality variant names",
    )
    args = p.parse_args(argv)
    started = time.perf_counter()
    machine = {**machine_description(), "load_average_at_start": load_average()}
    result = {"scale": scale, "cold": cold, "unseen": unseen}[args.mode](args)
    name = args.out or f"catalog_update_{args.mode}"
    write_results(name, result, summary_md(args.mode, result), machine=machine, started=started)
    print(json.dumps({k: v for k, v in result.items() if k not in ("grow", "daily", "swap", "update")}, default=float))
    return 0


if __name__ == "__main__":
    sys.exit(main())
