"""The serving benchmark's summary (markdown) and its check against the targets."""

from __future__ import annotations

from typing import Any

from benchmarks.common import fmt_table
from benchmarks.serving.constants import TARGETS, K
from benchmarks.serving.recent import recent_md


def _fmt(v: Any, digits: int = 1) -> str:
    if v is None:
        return "—"
    if isinstance(v, float):
        return f"{v:,.{digits}f}"
    return str(v)


def summary_md(results: dict[str, Any]) -> str:

    measured = any(per.get("workers") for per in results["sizes"].values())
    how = (
        f"{results['duration_s']} s per point, medians of {results['repeats']} interleaved repeats (model and HTTP ceiling alternate)"
        if measured
        else "swap runs only (--swap-only), concurrency 32"
    )
    if any(per.get("recent") for per in results["sizes"].values()):
        how = (
            f"--recent-items only: {results['duration_s']} s per point, medians of {results['repeats']} interleaved repeats "
            "(with recent items, without, today's version without)"
        )
    lines = [
        f"Closed-loop load ({results['engine']}), POST /v1/recommendations for known users, k={K}; {how}. "
        f"Load average during the run: {results['load_average_seen']}.",
        "",
    ]
    for size_key, per_size in results["sizes"].items():
        cat = per_size["catalog"]
        lines.append(f"## {int(size_key):,} items")
        lines.append(
            f"catalog build: {cat.get('build_timings')}; index {cat.get('index', {}).get('kind')} recall@10 {cat.get('index', {}).get('recall_at_10_vs_exact')}"
        )
        comp = per_size.get("compute_ceiling")
        if comp:
            rows = [[b, v["tower_plus_scann_qps"], v["tower_only_qps"], v["engine_qps"]] for b, v in comp["per_batch"].items()]
            lines += [
                "",
                "compute ceiling (in-process, queries/s):",
                "",
                fmt_table(["batch", "tower+ScaNN", "tower only", "inference step (rank_jobs)"], rows),
                "",
            ]
        for w in per_size["workers"]:
            mem = w["memory_after_load"]
            lines.append(
                f"### {w['workers']} worker(s): ready in {w['ready_seconds']:.1f} s, RSS after load {mem['total_rss'] / 2**30:.2f} GiB "
                f"(workers {[round(r / 2**30, 2) for r in mem['workers_rss']]} GiB), at end {w['memory_at_end']['total_rss'] / 2**30:.2f} GiB"
            )
            rows = []
            for c, t in w["per_concurrency"].items():
                m, h = t["model"], t["http_ceiling"]
                rows.append(
                    [
                        c,
                        m["rps"],
                        m["p50_ms"],
                        m["p95_ms"],
                        m["p99_ms"],
                        m["failures"],
                        m["mean_microbatch"],
                        h["rps"],
                        h["p99_ms"],
                        t["ratio_to_http_ceiling"],
                    ]
                )
            lines += [
                "",
                fmt_table(
                    ["conc", "req/s", "p50 ms", "p95 ms", "p99 ms", "fail", "batch", "ceiling req/s", "ceiling p99", "ratio"],
                    rows,
                ),
                "",
            ]
        former = per_size.get("former_index")
        if former:
            idx = former["catalog"]["index"]
            lines.append(
                f"### the same catalog with the former rule's index ({idx.get('kind')} {idx.get('params')}, "
                f"recall@10 {idx.get('recall_at_10_vs_exact')}), measured right after the tuned one"
            )
            for w in former["workers"]:
                rows = [
                    [
                        c,
                        t["model"]["rps"],
                        t["model"]["p50_ms"],
                        t["model"]["p99_ms"],
                        t["model"]["failures"],
                        t["http_ceiling"]["rps"],
                        t["ratio_to_http_ceiling"],
                    ]
                    for c, t in w["per_concurrency"].items()
                ]
                lines += [
                    "",
                    f"{w['workers']} worker(s):",
                    "",
                    fmt_table(["conc", "req/s", "p50 ms", "p99 ms", "fail", "ceiling req/s", "ratio"], rows),
                    "",
                ]
            rows = [
                [k, v["tuned_rps"], v["former_rps"], v["rps_change"], v["tuned_p99_ms"], v["former_p99_ms"]]
                for k, v in former["change"].items()
            ]
            lines += [
                "tuned against former:",
                "",
                fmt_table(["point", "tuned req/s", "former req/s", "change", "tuned p99", "former p99"], rows),
                "",
            ]
        for s in per_size.get("swap", []):
            ld = s["load"]
            if s.get("windows"):
                lines.append(swap_window_md(s))
                continue
            lines.append(
                f"swap ({s['workers']} worker(s), c=32, {s['duration_s']} s): {ld['rps']:.0f} req/s, p50 {ld['latency_ms']['p50']:.1f} "
                f"p99 {ld['latency_ms']['p99']:.1f} max {ld['latency_ms']['max']:.0f} ms, failures {ld['failures']}, versions {ld['versions']}, "
                f"publish {_fmt(s['publish_seconds'])} s from t={_fmt(s['publish_started_after_s'])} s, "
                f"peak RSS {s['rss_peak_total'] / 2**30:.2f} GiB (largest process {s['rss_peak_process'] / 2**30:.2f} GiB)"
            )
        if per_size.get("recent"):
            lines.append(recent_md(per_size["recent"]))
        lines.append("")
    lines.append("## targets (1M items, concurrency 32)")
    for k, v in results.get("targets_check", {}).items():
        lines.append(f"- {k}: {v}")
    return "\n".join(lines)


def swap_window_md(s: dict[str, Any]) -> str:
    w, ld = s["windows"], s["load"]

    def part(name: str) -> str:
        x = w[name]
        return (
            f"{name} ({x['seconds']:.1f} s, {x['completed']:,} answers): p50 {x['p50_ms']:.1f} p99 {x['p99_ms']:.1f} "
            f"max {x['max_ms']:.0f} ms, failures {x['failures']}"
        )

    how = "written ahead, moved in" if s.get("publish_ahead") else "published"
    return (
        f"swap ({s['workers']} worker(s), c=32, {how} at t={w['go_at']:.1f} s, publish {_fmt(s['publish_seconds'])} s, new version on /readyz "
        f"{w.get('swap_seen_after_s')} s after; the during run ends {w['margin_s']} s after that"
        f"{'' if w['swap_complete_in_window'] else ' (NOT within the run: figure invalid)'}): {part('during')}; {part('before')}; "
        f"{part('after')}; all: {ld['rps']:.0f} req/s, failures {ld['failures']}, versions {ld['versions']}; "
        f"peak RSS {s['rss_peak_total'] / 2**30:.2f} GiB"
    )


def check_targets(results: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    big = results["sizes"].get("1000000")
    if not big:
        return out
    if big.get("recent"):
        s = big["recent"]["summary"]
        out["recent_items"] = {
            "p99_ms": round(s["recent_items"]["p99_ms"], 2),
            "p99_ok": s["recent_items"]["p99_ms"] < TARGETS["recent_p99_ms_max"],
            "failures": s["recent_items"]["failures"],
            "failures_ok": s["recent_items"]["failures"] == 0,
            "no_recent_p99_ms_vs_today": [
                round(s["no_recent_items"]["p99_ms"], 2),
                round(s["today_no_recent_items"]["p99_ms"], 2),
            ],
        }
    for w in big["workers"]:
        t = w["per_concurrency"].get("32")
        if not t:
            continue
        m = t["model"]
        workers_rss = w["memory_at_end"]["workers_rss"] or [w["memory_at_end"]["max_process_rss"]]
        out[f"workers={w['workers']}"] = {
            "ratio_to_http_ceiling": round(t["ratio_to_http_ceiling"] or 0, 3),
            "ratio_ok": (t["ratio_to_http_ceiling"] or 0) >= TARGETS["ratio_to_http_ceiling_min"],
            "p99_ms": round(m["p99_ms"], 2),
            "p99_ok": m["p99_ms"] < TARGETS["p99_ms_max"],
            "failures": m["failures"],
            "failures_ok": m["failures"] == 0,
            "max_worker_rss_gib": round(max(workers_rss) / 2**30, 3),
            "rss_ok": max(workers_rss) < TARGETS["rss_gb_per_worker_max"] * 1e9,
        }
    for s in big.get("swap", []):
        entry = {"failures": s["load"]["failures"], "ok": s["load"]["failures"] == 0 and s["new_version_answered"]}
        windows = s.get("windows")
        if windows:
            entry["p99_ms_during_swap"] = round(windows["during"]["p99_ms"], 2)
            entry["ok"] = (
                entry["ok"] and windows["swap_complete_in_window"] and windows["during"]["p99_ms"] < TARGETS["swap_p99_ms_max"]
            )
        out[f"swap workers={s['workers']}"] = entry
    return out
