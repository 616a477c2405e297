"""The index benchmark's markdown summary."""

from __future__ import annotations

from typing import Any

from benchmarks.common import (
    fmt_table,
)
from benchmarks.index.shared import K


def _params_text(kind: str, params: dict) -> str:
    if kind != "tree_ah":
        return kind.replace("_", " ")
    spill = ", SOAR" if params.get("soar_lambda") else ""
    return f"tree_ah {params['num_leaves']:,} leaves{spill}, search {params['num_leaves_to_search']}, pool {params['reorder']}"


def summarize(results: dict[str, Any]) -> str:
    rows, formers = [], []
    for name, r in results["catalogs"].items():
        idx = r["index"]
        rows.append(
            [
                name,
                f"{r['num_items']:,}",
                idx["tuning"].get("queries", {}).get("source", "—"),
                r["held_out_queries"],
                _params_text(r["index_kind"], r["index_params"]),
                r["recall_at_10"],
                idx.get("recall_at_10_vs_exact"),
                idx.get("recall_at_100_vs_exact"),
                r["us_per_query"],
                idx["tuning"].get("brute_force_us_per_query"),
                r["build_seconds"],
                r["build_cpu_seconds"],
                f"{r['serialized_bytes'] / 2**20:.1f}",
                idx.get("meets_target"),
            ]
        )
        if "former" in r:
            f = r["former"]
            formers.append(
                [name, _params_text(f["kind"], f["params"]), f["recall_at_10_held_out"], f["us_per_query"], f["build_seconds"]]
            )
    lines = [
        f"## The tuned index (training.index.build_index) on held-out queries, k = {K}",
        "",
        "Recall@10 vs exact on held-out queries the tuning never saw; checking recall@10/@100 as the manifest records them;"
        " us/query: batches of 12, search + exact re-scoring of the pool, thread CPU time, median of passes; build: tuning included.",
        "",
        fmt_table(
            [
                "catalog",
                "items",
                "tuning queries",
                "held-out queries",
                "chosen",
                "recall@10 held-out",
                "recall@10 checking",
                "recall@100 checking",
                "us/query",
                "brute force us/query",
                "build s",
                "build CPU s",
                "serialized MiB",
                "meets target",
            ],
            rows,
        ),
        "",
    ]
    if formers:
        lines += [
            "### The former rule by size (training.index.index_params) on the same held-out queries",
            "",
            fmt_table(["catalog", "former setting", "recall@10 held-out", "us/query", "build s"], formers),
            "",
        ]
    for name, r in results["catalogs"].items():
        idx = r["index"]
        trees = idx["tuning"].get("trees", [])
        lines += [f"### Frontier tried on {name} ({idx['tuning'].get('reason')})", ""]
        if trees:
            lines += [
                fmt_table(
                    ["tree", "shape", "leaves", "SOAR", "sample", "build s"],
                    [
                        [
                            i,
                            t["shape"],
                            t["num_leaves"],
                            "yes" if t.get("soar_lambda") else "no",
                            t["training_sample_size"],
                            t["build_seconds"],
                        ]
                        for i, t in enumerate(trees)
                    ],
                ),
                "",
            ]
        pts = sorted(idx["tuning"].get("frontier", []), key=lambda p: (p["tree"], p["reorder"], p["leaves_to_search"]))
        lines += [
            fmt_table(
                [
                    "tree",
                    "leaves searched",
                    "pool",
                    "recall@10 tuning",
                    "us/query",
                    "us/query retimed",
                    "recall@10 checking",
                    "pareto",
                ],
                [
                    [
                        p["tree"],
                        p["leaves_to_search"],
                        p["reorder"],
                        p["recall_at_10"],
                        p["us_per_query"],
                        p.get("us_per_query_retimed"),
                        p.get("checking_recall_at_10"),
                        "◀" if p["pareto"] else "",
                    ]
                    for p in pts
                ],
            ),
            "",
        ]
    qps_rows = [
        [
            n,
            r["scann_qps_single"],
            r["scann_qps_batched_1thread"],
            r["scann_qps_batched_parallel"],
            r["exact_qps_single"],
            r["exact_qps_batched"],
            r["exact_qps_batched_parallel"],
        ]
        for n, r in results["catalogs"].items()
        if "scann_qps_single" in r
    ]
    if qps_rows:
        lines += [
            "### Queries/s of the chosen index vs exact numpy search",
            "",
            fmt_table(
                [
                    "catalog",
                    "ScaNN q/s single",
                    "ScaNN q/s batched (1 thread)",
                    "ScaNN q/s batched (parallel)",
                    "exact q/s single",
                    "exact q/s batched (1 thread)",
                    "exact q/s batched (BLAS, all cores)",
                ],
                qps_rows,
            ),
            "",
        ]
    return "\n".join(lines)
