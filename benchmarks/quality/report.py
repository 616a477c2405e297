"""The quality benchmark's summary: ranks, the paired bootstrap, and the markdown tables."""

from __future__ import annotations

from typing import Any

import numpy as np

from benchmarks.common import fmt_table
from benchmarks.labels import LABELS
from benchmarks.quality.shared import BOOTSTRAP_RESAMPLES, HEADLINE, TARGETS


def bootstrap_table(models: dict[str, Any], resamples: int = BOOTSTRAP_RESAMPLES) -> dict[str, Any]:
    """Paired bootstrap over users: every project model against every other
    model, on Recall@10 and NDCG@10 (the seed-42 runs)."""
    from training.metrics import paired_bootstrap

    out: dict[str, Any] = {}
    for mine in [n for n in models if n.startswith("project") and "_per_user" in models[n]]:
        for other in [n for n in models if n != mine and "_per_user" in models[n]]:
            out[f"{mine} vs {other}"] = {
                m: paired_bootstrap(
                    np.asarray(models[mine]["_per_user"][m]), np.asarray(models[other]["_per_user"][m]), resamples
                )
                for m in ("recall_at_10", "ndcg_at_10")
            }
    return out


# --------------------------------------------------------------------------- report
def ranks(models: dict[str, dict[str, Any]], proto: str) -> dict[str, dict[str, int]]:
    """1 = best, per headline metric, among models that ran."""
    metrics = HEADLINE[proto]
    out: dict[str, dict[str, int]] = {}
    ran = {n: r for n, r in models.items() if "test" in r}
    for metric in metrics:
        order = sorted(ran, key=lambda n: -ran[n]["test"][metric])
        for i, n in enumerate(order, 1):
            out.setdefault(n, {})[metric] = i
    return out


def summarize(results: dict[str, Any]) -> str:
    lines = ["## Quality on MovieLens 100K (test split; seed-42 runs, the spread over init seeds in the notes)", ""]
    p2 = ("recall_at_10", "recall_at_100", "ndcg_at_10", "coverage_at_10")
    for proto, metrics in (("P1", ("top_10_accuracy", "top_50_accuracy", "top_100_accuracy")), ("P2", p2), ("P3", p2)):
        if proto not in results["protocols"]:
            continue
        models = results["protocols"][proto]["models"]
        rk = results["protocols"][proto]["ranks"]
        rows = []
        for name in [*LABELS, *(n for n in models if n not in LABELS)]:
            label, r = LABELS.get(name, name), models.get(name)
            if r is None:
                continue
            if "test" not in r:
                rows.append([label, *["skipped"] * len(metrics), "—", r.get("skipped", "")])
                continue
            spread = ""
            if "test_min" in r and len(r.get("per_seed", {})) > 1:
                keys = ("top_100_accuracy",) if proto == "P1" else ("recall_at_10", "ndcg_at_10")
                spread = f"over {len(r['per_seed'])} init seeds: " + ", ".join(
                    f"{k} {r['test_min'][k]:.4f}–{r['test_max'][k]:.4f}" for k in keys
                )
            hp = r.get("hyperparameters", {})
            hp_s = ", ".join(f"{k}={v}" for k, v in hp.items() if k not in ("config", "feature_spec"))
            rows.append(
                [label, *[r["test"][m] for m in metrics], round(r["train_seconds"], 2), "; ".join(x for x in (hp_s, spread) if x)]
            )
        lines += [f"### {proto}", "", fmt_table(["model", *metrics, "train s", "notes"], rows), ""]
        targets = [(m, t) for (p, m), t in TARGETS.items() if p == proto]
        proj = models.get("project", {}).get("test", {})
        for m, t in targets:
            if proj:
                pr = models["project"]
                spread = (
                    f" (median over {len(pr['per_seed'])} init seeds {pr['test_median'][m]:.4f}, range {pr['test_min'][m]:.4f}–{pr['test_max'][m]:.4f})"
                    if len(pr.get("per_seed", {})) > 1
                    else ""
                )
                lines.append(
                    f"- project {m} = {proj[m]:.4f}{spread} vs target {t} → {'MET' if proj[m] >= t else 'SHORT'}; "
                    f"rank {rk['project'][m]} of {len(rk)}"
                )
        boot = results["protocols"][proto].get("bootstrap", {})
        for pair, by_metric in boot.items():
            if " vs project" in pair:
                continue
            cells = [
                f"{m} {b['difference']:+.4f} [{b['ci95_low']:+.4f}, {b['ci95_high']:+.4f}] p={b['p_not_better']:.3f}"
                for m, b in by_metric.items()
            ]
            lines.append(f"- paired bootstrap ({BOOTSTRAP_RESAMPLES} resamples over users) {pair}: " + "; ".join(cells))
        lines.append("")
    return "\n".join(lines)
