"""PNG figures referenced from BENCHMARKS.md (matplotlib, Agg backend)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

QUALITY_PANELS = (
    ("P1", "top_100_accuracy", "P1 top-100 accuracy", 0.40),
    ("P2", "recall_at_10", "P2 Recall@10", 0.11),
    ("P2", "ndcg_at_10", "P2 NDCG@10", 0.18),
)


def quality_bars(models: Mapping[str, Mapping[str, Any]], labels: Mapping[str, str], path: Path) -> None:
    """One panel per headline metric; a bar per model (its seed-42 run, the
    whiskers spanning min..max where a model ran with several seeds) and the
    target as a dashed line.

    ``models[protocol][model] = {"test": {...}, "test_min": {...}, "test_max": {...}}``.
    """
    fig, axes = plt.subplots(1, len(QUALITY_PANELS), figsize=(5.2 * len(QUALITY_PANELS), 4.6))
    for ax, (proto, metric, title, target) in zip(axes, QUALITY_PANELS, strict=True):
        entries = models.get(proto, {})
        names = [n for n in labels if "test" in entries.get(n, {})]
        values = [entries[n]["test"][metric] for n in names]
        lo = [values[i] - entries[n].get("test_min", entries[n]["test"])[metric] for i, n in enumerate(names)]
        hi = [entries[n].get("test_max", entries[n]["test"])[metric] - values[i] for i, n in enumerate(names)]
        colors = ["tab:red" if n == "project" else "tab:gray" if n == "popularity" else "tab:blue" for n in names]
        bars = ax.bar(range(len(names)), values, color=colors, yerr=[lo, hi], capsize=3)
        for bar, v, h in zip(bars, values, hi, strict=True):
            ax.text(bar.get_x() + bar.get_width() / 2, v + h, f"{v:.3f}", ha="center", va="bottom", fontsize=8)
        ax.axhline(target, ls="--", color="black", lw=1)
        ax.text(-0.45, target, f"target {target}", ha="left", va="bottom", fontsize=8, backgroundcolor="white")
        ax.set_xticks(range(len(names)))
        ax.set_xticklabels([labels[n] for n in names], rotation=30, ha="right", fontsize=8)
        ax.set_title(f"{title} (MovieLens 100K)")
        ax.set_ylim(0, max([target, *values]) * 1.2)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def recall_speed(
    catalogs: Mapping[str, Sequence[Mapping[str, Any]]],
    chosen: Mapping[str, Mapping[str, Any]],
    exact_qps: Mapping[str, float],
    path: Path,
) -> None:
    """Recall@10 vs batched queries/s of ScaNN per catalog: a line per reorder
    size through the num_leaves_to_search values, the chosen defaults circled,
    exact numpy search as a horizontal reference."""
    fig, axes = plt.subplots(1, len(catalogs), figsize=(6.2 * len(catalogs), 4.8), squeeze=False)
    for ax, (name, points) in zip(axes[0], catalogs.items(), strict=True):
        by_reorder: dict[int, list[Mapping[str, Any]]] = {}
        for p in points:
            by_reorder.setdefault(int(p["reorder"]), []).append(p)
        for reorder, pts in sorted(by_reorder.items()):
            pts = sorted(pts, key=lambda p: p["leaves_to_search"])
            ax.plot(
                [p["recall_at_10"] for p in pts], [p["qps_batched"] for p in pts], marker="o", ms=3, label=f"reorder {reorder}"
            )
            for p in pts:
                ax.annotate(str(p["leaves_to_search"]), (p["recall_at_10"], p["qps_batched"]), fontsize=6, alpha=0.6)
        c = chosen.get(name)
        if c:
            ax.scatter(
                [c["recall_at_10"]],
                [c["qps_batched"]],
                s=160,
                facecolors="none",
                edgecolors="red",
                lw=2,
                label="chosen defaults",
                zorder=5,
            )
        if name in exact_qps:
            ax.axhline(exact_qps[name], ls=":", color="black", label="exact numpy (batched, 1 thread)")
        ax.set_yscale("log")
        ax.set(title=f"ScaNN on {name}: recall@10 vs speed", xlabel="recall@10 vs exact", ylabel="queries/s (batched, 1 thread)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    """Redraw every PNG from the JSON results already in benchmarks/results/."""
    import argparse
    import json

    from benchmarks.common import RESULTS_DIR

    ap = argparse.ArgumentParser(prog="python -m benchmarks.plots", description=main.__doc__)
    ap.add_argument("--out", type=Path, default=RESULTS_DIR)
    args = ap.parse_args(argv)
    done = []
    quality = args.out / "quality.json"
    if quality.exists():
        from benchmarks.labels import LABELS  # display names only: plots import no benchmark

        doc = json.loads(quality.read_text())["results"]
        quality_bars({p: v["models"] for p, v in doc["protocols"].items()}, LABELS, args.out / "quality.png")
        done.append("quality.png")
    index = args.out / "index.json"
    if index.exists():
        cats = json.loads(index.read_text())["results"]["catalogs"]
        swept = {n: c for n, c in cats.items() if "sweep" in c}
        if swept:
            recall_speed(
                {n: c["sweep"] for n, c in swept.items()},
                {n: c["sweep_verdict"]["chosen"] for n, c in swept.items()},
                {n: c["exact_qps_batched"] for n, c in swept.items()},
                args.out / "index_recall_speed.png",
            )
            done.append("index_recall_speed.png")
    print("redrew: " + (", ".join(done) or "nothing (no results yet)"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
