"""Compare published versions' figures, and refuse a new version that is worse
than the served one by more than a margin (the quality gate)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from training.publish import list_versions, read_latest

COMPARED = ("top_100_accuracy", "recall_at_10", "recall_at_100", "ndcg_at_10", "coverage_at_10")


def primary_metric(evaluation: dict) -> str:
    """The figure the gate guards: Recall@10 on a temporal split, top-100 accuracy on a random one."""
    return "top_100_accuracy" if evaluation.get("split") == "random" else "recall_at_10"


def read_manifest(model_root: Path, version: str) -> dict:
    if not version.isdigit():
        raise ValueError(f"not a version name: {version!r}")
    path = Path(model_root) / version / "manifest.json"
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ValueError(f"cannot read the manifest of version {version}: {exc}") from exc


def comparison_rows(old: dict, new: dict) -> list[tuple[str, float | None, float | None, float | None]]:
    """(metric, old, new, new - old) for the model's test metrics and the baseline."""
    rows = []
    old_ev, new_ev = old["metrics"]["evaluation"], new["metrics"]["evaluation"]
    for name in COMPARED:
        a, b = old_ev["model"].get(name), new_ev["model"].get(name)
        rows.append((name, a, b, None if a is None or b is None else b - a))
    for name in ("recall_at_10", "top_100_accuracy"):
        a, b = old_ev["popularity"].get(name), new_ev["popularity"].get(name)
        rows.append((f"popularity {name}", a, b, None if a is None or b is None else b - a))
    a_idx, b_idx = old["index"].get("recall_at_10_vs_exact"), new["index"].get("recall_at_10_vs_exact")
    rows.append(("index recall@10 vs exact", a_idx, b_idx, None if a_idx is None or b_idx is None else b_idx - a_idx))
    return rows


@dataclass
class GateResult:
    passed: bool
    message: str


def index_gate(index: dict, allow_low_recall: bool = False) -> GateResult:
    """Pass when the version's index reached its recall@10 target within its time budget
    (``index.meets_target``, chosen at build time by ``training.index_tuning``), or when
    ``allow_low_recall`` says to publish anyway; the message names the reason."""
    tuning = index.get("tuning") or {}
    params = index.get("params") or {}
    setting = ", ".join(
        f"{k} {v}" for k, v in params.items() if k in ("num_leaves", "num_leaves_to_search", "reorder", "soar_lambda")
    )
    figures = (
        f"index {index.get('kind')}{f' ({setting})' if setting else ''}: recall@10 vs exact {index.get('recall_at_10_vs_exact')} "
        f"at {index.get('us_per_query')} us per query (target {tuning.get('target_recall_at_10')} within {tuning.get('max_us_per_query')} us)"
    )
    if index.get("meets_target", True):
        return GateResult(True, figures)
    reason = f"{tuning.get('reason', 'the index misses its recall target')}; {figures}"
    if allow_low_recall:
        return GateResult(True, f"published although {reason} (--allow-low-recall)")
    return GateResult(False, reason)


def quality_gate(model_root: Path, new_metrics: dict, max_drop: float) -> GateResult:
    """Pass unless the served version's primary metric exceeds the new one's by more than ``max_drop``."""
    served = read_latest(Path(model_root))
    if served is None or served not in list_versions(Path(model_root)):
        return GateResult(True, "no served version to compare with")
    try:
        old = read_manifest(model_root, served)["metrics"]["evaluation"]
    except (ValueError, KeyError) as exc:
        return GateResult(True, f"served version {served} has no readable metrics ({exc}); gate skipped")
    new = new_metrics["evaluation"]
    metric = primary_metric(new)
    if primary_metric(old) != metric or metric not in old.get("model", {}):
        return GateResult(True, f"served version {served} was evaluated differently; gate skipped")
    drop = old["model"][metric] - new["model"][metric]
    text = f"{metric}: served {served} {old['model'][metric]:.4f}, new {new['model'][metric]:.4f} (drop {drop:+.4f}, allowed {max_drop:.4f})"
    return GateResult(drop <= max_drop, text)
