"""report.png: training curves and recall@K of the model against popularity."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

_BARS = ("recall_at_10", "recall_at_100", "ndcg_at_10", "coverage_at_10", "top_100_accuracy")


def write_report(
    path: Path, history: dict[str, list[float]], evaluation: dict, index: dict | None = None, title: str = ""
) -> None:
    """Three panels a person can read at a glance: loss per epoch, validation
    recall per epoch, and test metrics of the model beside popularity."""
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    loss = history.get("loss", [])
    axes[0].plot(range(1, len(loss) + 1), loss, marker="o")
    axes[0].set(title="training loss", xlabel="epoch", ylabel="loss")
    val_key = next((k for k in history if k.startswith("val_")), None)
    if val_key and history[val_key]:
        vals = history[val_key]
        axes[1].plot(range(1, len(vals) + 1), vals, marker="o", color="tab:green")
        axes[1].set(title=f"validation {val_key[4:]}", xlabel="epoch")
    else:
        axes[1].text(0.5, 0.5, "no validation split", ha="center", va="center")
        axes[1].set_axis_off()
    model, pop = evaluation.get("model", {}), evaluation.get("popularity", {})
    names = [n for n in _BARS if n in model]
    xs = range(len(names))
    axes[2].bar([x - 0.2 for x in xs], [model[n] for n in names], width=0.4, label="two-tower")
    axes[2].bar([x + 0.2 for x in xs], [pop.get(n, 0.0) for n in names], width=0.4, label="popularity")
    axes[2].set_xticks(list(xs), [n.replace("_at_", "@").replace("_accuracy", " acc") for n in names], rotation=20)
    subtitle = f"test ({evaluation.get('split', '?')} split)"
    if index and index.get("recall_at_10_vs_exact") is not None:
        subtitle += f"; ScaNN recall@10 vs exact {index['recall_at_10_vs_exact']:.3f}"
    axes[2].set(title=subtitle)
    axes[2].legend()
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
