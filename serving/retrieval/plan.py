"""Step 1, on the event loop: a request becomes a :class:`~serving.retrieval.job.Job`.

The request is checked against the served version (feature names and types,
filter fields, recent items) and what can be resolved from the precomputed
lookups is: the strategy, the user's row, the rows to exclude. It is cheap and
never touches TensorFlow or ScaNN. A known user without feature overrides or
filters whose vector was precomputed at load gets its search plan here too, so
the inference thread runs the search and little Python. A request the version
cannot answer raises :class:`~serving.retrieval.errors.InvalidQuery` naming the
bad value (no HTTP type: the API maps it to a 422).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from serving.model import LoadedModel
from serving.retrieval.errors import InvalidQuery
from serving.retrieval.job import EMPTY_ROWS, Filter, Job, RangeFilter, plan_search
from serving.retrieval.recent import resolve_recent
from serving.retrieval.strategy import Strategy

FLOAT32_MAX = float(np.finfo(np.float32).max)
# the members as module constants: reading ``Strategy.X`` goes through the Enum class (about 150 ns on 3.11), per request
_PERSONAL, _FEATURES, _POPULAR, _SESSION, _SIMILAR = (
    Strategy.PERSONAL,
    Strategy.FEATURES,
    Strategy.POPULAR,
    Strategy.SESSION,
    Strategy.SIMILAR,
)


class RecommendationQuery(Protocol):
    """The request attributes the planner reads (the API's request models have them)."""

    @property
    def user_id(self) -> str | None: ...
    @property
    def features(self) -> Mapping[str, Any] | None: ...
    @property
    def k(self) -> int: ...
    @property
    def exclude_seen(self) -> bool: ...
    @property
    def exclude_item_ids(self) -> Sequence[str] | None: ...
    @property
    def filters(self) -> Mapping[str, Any] | None: ...
    @property
    def recent_item_ids(self) -> Sequence[str] | None: ...


@dataclass(frozen=True, slots=True)
class UserQuery:
    """A :class:`RecommendationQuery` for a known user's id alone (``GET /v1/users/{id}/recommendations``)."""

    user_id: str | None
    k: int
    exclude_seen: bool = True
    features: Mapping[str, Any] | None = None
    exclude_item_ids: Sequence[str] | None = None
    filters: Mapping[str, Any] | None = None
    recent_item_ids: Sequence[str] | None = None


def resolve_features(model: LoadedModel, features: Mapping[str, Any] | None) -> dict[str, Any]:
    """Request features checked against the version's query inputs; None values mean 'not given'."""
    if not features:
        return {}
    inputs = model.query_input
    out: dict[str, Any] = {}
    for name, value in features.items():
        if value is None:
            continue
        if name == "user_id":
            raise InvalidQuery("invalid_features", "give user_id at the top level of the request, not in features")
        qi = inputs.get(name)
        if qi is None:
            known = sorted(n for n in inputs if n != "user_id")
            raise InvalidQuery("invalid_features", f"unknown feature {name!r}; this model reads {known}")
        if qi.dtype == "float32":
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not _fits_float32(value):
                raise InvalidQuery(
                    "invalid_features", f"feature {name!r} must be a finite number a float32 can hold, not {_repr_cut(value)}"
                )
            out[name] = float(value)
        elif isinstance(value, str):
            out[name] = value
        elif isinstance(value, list) and qi.kind == "multi_categorical" and all(isinstance(v, str) for v in value):
            out[name] = qi.separator.join(value)
        else:
            raise InvalidQuery("invalid_features", f"feature {name!r} must be a string, not {_repr_cut(value)}")
    return out


def _repr_cut(value: Any, limit: int = 60) -> str:
    """A bad value as a message shows it: its repr, cut to ``limit`` characters."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _fits_float32(value: float) -> bool:
    try:
        return math.isfinite(value) and abs(value) <= FLOAT32_MAX
    except OverflowError:  # an integer too large for any float
        return False


def _finite(value: Any) -> float | None:
    """``value`` as a finite float64, or None (infinite, NaN, or an integer past float64's range)."""
    try:
        number = float(value)
    except OverflowError:
        return None
    return number if math.isfinite(number) else None


def resolve_filters(model: LoadedModel, filters: Mapping[str, Any] | None) -> tuple[Filter, ...]:
    """Filters checked against the version's item metadata (``{"min","max"}`` or a list of
    values); a value given twice is kept once."""
    if not filters:
        return ()
    out: list[Filter] = []
    for column, spec in filters.items():
        fc = model.filter_columns.get(column)
        if fc is None:
            raise InvalidQuery("invalid_filter", f"cannot filter on {column!r}; filterable: {sorted(model.filter_columns)}")
        if isinstance(spec, RangeFilter) or hasattr(spec, "min"):
            lo, hi = getattr(spec, "min", None), getattr(spec, "max", None)
            if fc.kind != "numeric":
                raise InvalidQuery("invalid_filter", f"{column!r} is not numeric; give a list of values, not a range")
            bounds = [None if b is None else _finite(b) for b in (lo, hi)]
            if any(b is None and given is not None for b, given in zip(bounds, (lo, hi), strict=True)):
                raise InvalidQuery(
                    "invalid_filter", f"the bounds of {column!r} must be finite numbers, not {_repr_cut([lo, hi])}"
                )
            out.append((column, RangeFilter(*bounds)))
            continue
        values = list(spec)
        if fc.kind == "numeric":
            text = next((v for v in values if isinstance(v, str)), None)
            if text is not None:
                raise InvalidQuery("invalid_filter", f"{column!r} is numeric; its values must be numbers, not {_repr_cut(text)}")
            numbers = [_finite(v) for v in values]
            bad = next((v for v, n in zip(values, numbers, strict=True) if n is None), None)
            if bad is not None:
                raise InvalidQuery("invalid_filter", f"the values of {column!r} must be finite numbers, not {_repr_cut(bad)}")
            out.append((column, tuple(dict.fromkeys(numbers))))
        else:
            out.append((column, tuple(dict.fromkeys(v if isinstance(v, str) else _as_text(v) for v in values))))
    return tuple(out)


def _as_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def exclusion_rows(model: LoadedModel, seen_of: int | None, exclude_item_ids: Sequence[str] | None) -> np.ndarray:
    """Sorted unique item rows to leave out: the seen items of user row ``seen_of`` and the given ids (unknown ids ignored)."""
    seen = model.seen.of(seen_of) if seen_of is not None else EMPTY_ROWS
    if not exclude_item_ids:
        return seen  # the common case: no cart to leave out
    extra = model.items.ids.rows(exclude_item_ids)
    extra = extra[extra >= 0]
    return np.unique(np.concatenate([seen, extra])) if len(extra) else seen


def plan_recommendation(model: LoadedModel, query: RecommendationQuery) -> Job:
    """Strategy and lookups for a recommendation request (see DESIGN.md section 4)."""
    uid = query.user_id
    overrides = resolve_features(model, query.features)
    filters = resolve_filters(model, query.filters)
    user_row = model.users.get(uid) if uid is not None else None
    given = query.recent_item_ids
    recent = resolve_recent(model, user_row, given) if given else None
    if recent is not None and recent.usable:
        if recent.feature in overrides:
            raise InvalidQuery(
                "invalid_features", f"give the recent items once: in recent_item_ids, not as feature {recent.feature!r}"
            )
        overrides[recent.feature] = recent.value  # the query tower runs for this request (serving/retrieval/recent.py)
    if user_row is not None:
        strategy = _PERSONAL
    elif recent is not None and recent.usable:
        strategy = _SESSION
    elif overrides:
        strategy = _FEATURES
    else:
        strategy = _POPULAR
    exclude = exclusion_rows(model, user_row if query.exclude_seen else None, query.exclude_item_ids)
    if recent is not None and recent.usable and query.exclude_seen:
        exclude = np.union1d(exclude, recent.rows)  # the given items are seen too
    job = Job(
        model=model,
        strategy=strategy,
        k=query.k,
        user_row=user_row,
        overrides=overrides,
        user_id_input=uid if user_row is None else None,
        exclude=exclude,
        filters=filters,
        ignored=recent.ignored if recent is not None else None,
    )
    if strategy is _PERSONAL and not overrides and not filters and model.user_vectors is not None:
        # everything but the search is known: plan here, so the inference thread runs ScaNN and little Python
        job.plan = plan_search(job, model.user_vectors[user_row])
    return job


def plan_similar(model: LoadedModel, item_row: int, k: int) -> Job:
    """The neighbours of item ``item_row`` (the item itself left out)."""
    job = Job(model=model, strategy=_SIMILAR, k=k, item_row=item_row, exclude=np.asarray([item_row], dtype=np.int64))
    job.plan = plan_search(job, model.item_embeddings[item_row])
    return job
