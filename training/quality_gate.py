"""Compare published versions' figures, and refuse a new version that is worse
than the served one by more than a margin (the quality gate).

Manifests are read through :class:`artifact.manifest.Manifest`: a malformed one,
or one of another format, raises :class:`artifact.manifest.ManifestError`
(``recsys compare`` exits 2 with its message; the gate is skipped, saying why,
so a version of the current format can replace one it cannot read)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from artifact.latest import LatestError, check_version_name, list_versions, read_latest
from artifact.manifest import Manifest, ManifestError
from artifact.manifest import read_manifest as read_version_manifest

COMPARED = ("top_100_accuracy", "recall_at_10", "recall_at_100", "ndcg_at_10", "coverage_at_10")


def primary_metric(evaluation: dict) -> str:
    """The figure the gate guards: Recall@10 on a temporal split, top-100 accuracy on a random one."""
    return "top_100_accuracy" if evaluation.get("split") == "random" else "recall_at_10"


def read_manifest(model_root: Path, version: str) -> Manifest:
    """The validated manifest of ``version`` under ``model_root``.

    Raises :class:`ManifestError` (``invalid_version_name`` for a name that is not a version's)."""
    try:
        check_version_name(version)
    except LatestError as exc:
        raise ManifestError(exc.reason, exc.detail) from exc
    return read_version_manifest(Path(model_root) / version)[0]


def _evaluation(manifest: Manifest) -> dict[str, Any]:
    """The manifest's ``metrics.evaluation`` (``{}`` when it records none, e.g. a generated catalog)."""
    evaluation = manifest.metrics.get("evaluation")
    return evaluation if isinstance(evaluation, dict) else {}


def _recall_vs_exact(manifest: Manifest) -> float | None:
    return None if manifest.index is None else manifest.index.recall_at_10_vs_exact


def comparison_rows(old: Manifest, new: Manifest) -> list[tuple[str, float | None, float | None, float | None]]:
    """(metric, old, new, new - old) for the model's test metrics and the baseline (None: not recorded)."""
    rows = []
    old_ev, new_ev = _evaluation(old), _evaluation(new)
    for name in COMPARED:
        a, b = (old_ev.get("model") or {}).get(name), (new_ev.get("model") or {}).get(name)
        rows.append((name, a, b, None if a is None or b is None else b - a))
    for name in ("recall_at_10", "top_100_accuracy"):
        a, b = (old_ev.get("popularity") or {}).get(name), (new_ev.get("popularity") or {}).get(name)
        rows.append((f"popularity {name}", a, b, None if a is None or b is None else b - a))
    a_idx, b_idx = _recall_vs_exact(old), _recall_vs_exact(new)
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


def drop_of(old: Manifest, new: Manifest) -> tuple[str, float] | None:
    """The primary metric (as ``new`` was evaluated) and how much lower it is in ``new`` than in ``old``;
    None when either does not record it."""
    old_ev, new_ev = _evaluation(old), _evaluation(new)
    metric = primary_metric(new_ev)
    a, b = (old_ev.get("model") or {}).get(metric), (new_ev.get("model") or {}).get(metric)
    return None if a is None or b is None else (metric, a - b)


def quality_gate(model_root: Path, new_metrics: dict, max_drop: float) -> GateResult:
    """Pass unless the served version's primary metric exceeds the new one's by more than ``max_drop``."""
    try:
        served = read_latest(Path(model_root))
    except LatestError as exc:
        return GateResult(True, f"LATEST cannot be read ({exc.detail}); gate skipped")
    if served is None or served not in list_versions(Path(model_root)):
        return GateResult(True, "no served version to compare with")
    try:
        old = _evaluation(read_manifest(model_root, served))
    except ManifestError as exc:
        return GateResult(True, f"served version {served} has no readable manifest ({exc.detail}); gate skipped")
    if not old:
        return GateResult(True, f"served version {served} records no evaluation; gate skipped")
    new = new_metrics["evaluation"]
    metric = primary_metric(new)
    if primary_metric(old) != metric or metric not in old.get("model", {}):
        return GateResult(True, f"served version {served} was evaluated differently; gate skipped")
    drop = old["model"][metric] - new["model"][metric]
    text = f"{metric}: served {served} {old['model'][metric]:.4f}, new {new['model'][metric]:.4f} (drop {drop:+.4f}, allowed {max_drop:.4f})"
    return GateResult(drop <= max_drop, text)
