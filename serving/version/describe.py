"""``GET /v1/model``: the served version as its body describes it (:func:`describe`)."""

from __future__ import annotations

from typing import Any

from serving.model import LoadedModel

# what /v1/model leaves out of the manifest's index.tuning: every point and every tree tried
# (long; the manifest and the report page have them), replaced by their counts
TUNING_DETAIL = ("frontier", "trees")


def index_summary(index: Any) -> dict[str, Any] | None:
    """The manifest's ``index`` as ``/v1/model`` shows it: kind, parameters, recall and cost,
    the tuning's target, reason and queries; of the frontier and the trees tried, their counts."""
    if not isinstance(index, dict):
        return None
    out = {k: v for k, v in index.items() if k != "tuning"}
    tuning = index.get("tuning")
    if isinstance(tuning, dict):
        shown = {k: v for k, v in tuning.items() if k not in TUNING_DETAIL}
        for name in TUNING_DETAIL:
            if isinstance(tuning.get(name), list):
                shown[f"{name}_tried"] = len(tuning[name])
        out["tuning"] = shown
    return out


def describe(model: LoadedModel) -> dict[str, Any]:
    """The body of ``GET /v1/model`` (``serving.api.schemas.ModelResponse``): the version, its shapes,
    inputs, filterable columns, lineage, index and figures (per-epoch training history left out)."""
    m = model.manifest
    metrics = dict(m.get("metrics") or {})
    training = metrics.get("training")
    if isinstance(training, dict):  # per-epoch history is long and not a summary
        metrics["training"] = {k: v for k, v in training.items() if k != "history"}
    if "index" in metrics:  # metrics.json's copy of the index: summarised as the manifest's (below)
        metrics["index"] = index_summary(metrics["index"])
    return {
        "model_version": model.version,
        "created_at": m.get("created_at"),
        "loaded_at": model.loaded_at,
        "load_seconds": round(model.load_seconds, 3),
        "embedding_dim": model.embedding_dim,
        "num_items": model.num_items,
        "user_vectors_precomputed": model.user_vectors is not None,
        "num_users": m.get("num_users"),
        "similarity": m.get("similarity", "dot"),
        "query_inputs": [{"name": q.name, "dtype": q.dtype, "kind": q.kind, "default": q.default} for q in model.query_inputs],
        "candidate_inputs": list(m.get("candidate_inputs") or []),
        "filterable": {name: col.kind for name, col in model.filter_columns.items()},
        "dataset": m.get("dataset"),
        "kind": m.get("kind"),
        "parent_version": m.get("parent_version"),
        "index": index_summary(m.get("index")),
        "metrics": metrics,
        "libraries": m.get("libraries"),
    }
