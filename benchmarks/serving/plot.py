"""The serving benchmark's figure: latency, throughput and share of the HTTP ceiling against concurrency."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from benchmarks.serving.constants import TARGETS


def plot(results: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sizes = results["sizes"]
    fig, axes = plt.subplots(1, 3, figsize=(17, 4.8))
    for size_key, per_size in sizes.items():
        for w in per_size["workers"]:
            table = w["per_concurrency"]
            conc = sorted(int(c) for c in table)
            label = f"{int(size_key):,} items, {w['workers']}w"
            axes[0].plot(conc, [table[str(c)]["model"]["p99_ms"] for c in conc], marker="o", label=f"{label} p99")
            axes[0].plot(conc, [table[str(c)]["model"]["p50_ms"] for c in conc], marker=".", linestyle=":", label=f"{label} p50")
            axes[1].plot(conc, [table[str(c)]["model"]["rps"] for c in conc], marker="o", label=label)
            axes[1].plot(
                conc,
                [table[str(c)]["http_ceiling"]["rps"] for c in conc],
                linestyle="--",
                alpha=0.6,
                label=f"HTTP ceiling ({label})",
            )
            axes[2].plot(conc, [table[str(c)]["ratio_to_http_ceiling"] or 0 for c in conc], marker="o", label=label)
    axes[0].axhline(TARGETS["p99_ms_max"], color="red", linewidth=0.8, linestyle="--", label="p99 target")
    axes[0].set(xlabel="concurrency", ylabel="latency (ms)", title="latency vs concurrency (k=10)", xscale="log", yscale="log")
    axes[1].set(xlabel="concurrency", ylabel="requests/s", title="throughput vs concurrency", xscale="log")
    axes[2].axhline(TARGETS["ratio_to_http_ceiling_min"], color="red", linewidth=0.8, linestyle="--", label="target")
    axes[2].set(
        xlabel="concurrency",
        ylabel="model req/s / HTTP-ceiling req/s",
        title="share of the HTTP ceiling",
        xscale="log",
        ylim=(0, 1),
    )
    for ax in axes:
        ax.set_xticks(results["concurrency"], [str(c) for c in results["concurrency"]])
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=6)
    fig.suptitle(
        f"recsys serve on loopback, medians of {results['repeats']} runs ({results['engine']}); {results['machine_line']}",
        fontsize=8,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
