"""Turning requests into ranked items.

Two halves:

* On the event loop, :func:`build_job` checks a request against the served
  version (feature names and types, filter fields) and resolves what it can
  from the precomputed lookups: the strategy, the user's row, the rows to
  exclude. It is cheap and never touches TensorFlow or ScaNN.
* In the inference thread, :func:`run_jobs` answers a whole micro-batch: one
  query-tower call for every job that needs an embedding (a known user without
  feature overrides uses the vector precomputed at load, when there is one), one
  ``search_batched`` call over-fetching enough neighbours for the exclusions
  and filters, exact re-scoring of the candidates, and exact scoring over the
  eligible items when the filtered candidates fall short.

Every answer has ``min(k, eligible)`` distinct items with non-increasing scores.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from serving.errors import ApiError
from serving.model import LoadedModel

PERSONAL, FEATURES, POPULAR, SIMILAR = "personal", "features", "popular", "similar"
_EMPTY = np.zeros(0, dtype=np.int64)
_EMPTY.flags.writeable = False


@dataclass(frozen=True, slots=True)
class RangeFilter:
    min: float | None
    max: float | None


@dataclass(slots=True)
class Job:
    """One ranking to compute, bound to the version that will compute it."""

    model: LoadedModel
    strategy: str
    k: int
    user_row: int | None = None  # known user: row of users.parquet
    overrides: Mapping[str, Any] | None = None  # query input -> value from the request
    user_id_input: str | None = None  # unknown user's id, fed as is (-> OOV bucket)
    item_row: int | None = None  # similar: the item whose neighbours are wanted
    exclude: np.ndarray = field(default_factory=lambda: _EMPTY)  # sorted unique rows never to return
    filters: tuple[tuple[str, Any], ...] = ()  # (column, RangeFilter | tuple of values)


# --------------------------------------------------------------------------- request side (event loop)


def _bad(code: str, message: str) -> ApiError:
    return ApiError(422, code, message)


def resolve_features(model: LoadedModel, features: Mapping[str, Any] | None) -> dict[str, Any]:
    """Request features checked against the version's query inputs; None values mean 'not given'."""
    if not features:
        return {}
    inputs = {qi.name: qi for qi in model.query_inputs}
    out: dict[str, Any] = {}
    for name, value in features.items():
        if value is None:
            continue
        if name == "user_id":
            raise _bad("invalid_features", "give user_id at the top level of the request, not in features")
        qi = inputs.get(name)
        if qi is None:
            known = sorted(n for n in inputs if n != "user_id")
            raise _bad("invalid_features", f"unknown feature {name!r}; this model reads {known}")
        if qi.dtype == "float32":
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(float(value)):
                raise _bad("invalid_features", f"feature {name!r} must be a finite number")
            out[name] = float(value)
        elif isinstance(value, str):
            out[name] = value
        elif isinstance(value, list) and qi.kind == "multi_categorical" and all(isinstance(v, str) for v in value):
            out[name] = qi.separator.join(value)
        else:
            raise _bad("invalid_features", f"feature {name!r} must be a string")
    return out


def resolve_filters(model: LoadedModel, filters: Mapping[str, Any] | None) -> tuple[tuple[str, Any], ...]:
    """Filters checked against the version's item metadata (``{"min","max"}`` or a list of values)."""
    if not filters:
        return ()
    out = []
    for column, spec in filters.items():
        fc = model.filter_columns.get(column)
        if fc is None:
            raise _bad("invalid_filter", f"cannot filter on {column!r}; filterable: {sorted(model.filter_columns)}")
        if isinstance(spec, RangeFilter) or hasattr(spec, "min"):
            lo, hi = getattr(spec, "min", None), getattr(spec, "max", None)
            if fc.kind != "numeric":
                raise _bad("invalid_filter", f"{column!r} is not numeric; give a list of values, not a range")
            out.append((column, RangeFilter(None if lo is None else float(lo), None if hi is None else float(hi))))
            continue
        values = list(spec)
        if fc.kind == "numeric":
            if any(isinstance(v, str) for v in values):
                raise _bad("invalid_filter", f"{column!r} is numeric; its values must be numbers")
            out.append((column, tuple(float(v) for v in values)))
        else:
            out.append((column, tuple(v if isinstance(v, str) else _as_text(v) for v in values)))
    return tuple(out)


def _as_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def exclusion_rows(model: LoadedModel, seen_of: int | None, exclude_item_ids: Sequence[str] | None) -> np.ndarray:
    """Sorted unique item rows to leave out: the seen items of user row ``seen_of`` and the given ids (unknown ids ignored)."""
    seen = model.seen.of(seen_of) if seen_of is not None else None
    extra = model.items.ids.rows(exclude_item_ids) if exclude_item_ids else _EMPTY
    extra = extra[extra >= 0]
    if not len(extra):
        return seen if seen is not None else _EMPTY
    return np.unique(extra if seen is None else np.concatenate([seen, extra]))


def build_job(model: LoadedModel, request: Any) -> Job:
    """Strategy and lookups for a recommendation request (see DESIGN.md section 4)."""
    uid = request.user_id
    overrides = resolve_features(model, request.features)
    filters = resolve_filters(model, request.filters)
    user_row = model.users.get(uid) if uid is not None else None
    if user_row is not None:
        strategy = PERSONAL
    elif overrides:
        strategy = FEATURES
    else:
        strategy = POPULAR
    exclude = exclusion_rows(model, user_row if request.exclude_seen else None, request.exclude_item_ids)
    return Job(
        model=model,
        strategy=strategy,
        k=request.k,
        user_row=user_row,
        overrides=overrides,
        user_id_input=uid if user_row is None else None,
        exclude=exclude,
        filters=filters,
    )


def similar_job(model: LoadedModel, item_row: int, k: int) -> Job:
    return Job(model=model, strategy=SIMILAR, k=k, item_row=item_row, exclude=np.asarray([item_row], dtype=np.int64))


# --------------------------------------------------------------------------- compute side (inference thread)


def filter_mask(model: LoadedModel, filters: tuple[tuple[str, Any], ...]) -> np.ndarray | None:
    """Boolean mask of the items passing every filter; None when there are no filters."""
    mask: np.ndarray | None = None
    for column, spec in filters:
        fc = model.filter_columns[column]
        if isinstance(spec, RangeFilter):
            vals = fc.values
            m = np.isfinite(vals)
            if spec.min is not None:
                m &= vals >= spec.min
            if spec.max is not None:
                m &= vals <= spec.max
        elif fc.kind == "numeric":
            m = np.isin(fc.values, np.asarray(spec, dtype=np.float64))
        elif fc.kind == "scalar":
            codes = [fc.code_of[v] for v in spec if v in fc.code_of]
            m = np.isin(fc.codes, np.asarray(codes, dtype=np.int32)) if codes else np.zeros(model.num_items, dtype=bool)
        else:  # list-valued: any overlap
            m = np.zeros(model.num_items, dtype=bool)
            for v in spec:
                rows = fc.rows_of.get(v)
                if rows is not None:
                    m[rows] = True
        mask = m if mask is None else (mask & m)
    return mask


def _eligible_mask(model: LoadedModel, mask: np.ndarray | None, exclude: np.ndarray) -> np.ndarray:
    full = np.ones(model.num_items, dtype=bool) if mask is None else mask.copy()
    if len(exclude):
        full[exclude] = False
    return full


def _rank(rows: np.ndarray, scores: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """The best ``n`` by score (ties: lower row first), in order."""
    if len(rows) > n:
        part = np.argpartition(-scores, n - 1)[:n]
        # include every row tied with the n-th best so the tie-break is by row
        cutoff = scores[part].min()
        part = np.flatnonzero(scores >= cutoff)
        rows, scores = rows[part], scores[part]
    order = np.lexsort((rows, -scores))[:n]
    return rows[order], scores[order]


def _exact(model: LoadedModel, q: np.ndarray, eligible: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    rows = np.flatnonzero(eligible)
    scores = model.item_embeddings[rows] @ q
    return _rank(rows, scores, n)


@dataclass(slots=True)
class _Plan:
    job: Job
    query: np.ndarray
    mask: np.ndarray | None
    n: int
    fetch: int  # 0 = exact scoring over the eligible items


def _plan(job: Job, query: np.ndarray) -> _Plan:
    model = job.model
    total = model.num_items
    mask = filter_mask(model, job.filters)
    excl = job.exclude
    passing = total if mask is None else int(mask.sum())
    excluded_passing = len(excl) if mask is None else int(mask[excl].sum()) if len(excl) else 0
    eligible = passing - excluded_passing
    n = min(job.k, eligible)
    if n <= 0:
        return _Plan(job, query, mask, 0, 0)
    margin = max(8, job.k // 4)
    # enough neighbours that, at the filters' pass rate, k + margin of them survive the exclusions
    fetch = math.ceil((job.k + margin) * total / passing) + len(excl)  # passing >= eligible > 0
    if fetch * 2 >= total or eligible <= fetch:
        # scoring the eligible items directly costs no more than re-scoring the
        # over-fetched candidates (and is exact)
        fetch = 0
    return _Plan(job, query, mask, n, fetch)


def _finish(plan: _Plan, idx: np.ndarray | None, dist: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """One plan on its own: the searched candidates if enough survive, else exact scoring."""
    model, job = plan.job.model, plan.job
    if plan.n == 0:
        return _EMPTY, np.zeros(0, dtype=np.float32)
    if plan.fetch and idx is not None:
        cand = np.asarray(idx, dtype=np.int64)[np.isfinite(dist)]
        cand = cand[(cand >= 0) & (cand < model.num_items)]
        keep = np.ones(len(cand), dtype=bool)
        if len(job.exclude):
            keep &= ~np.isin(cand, job.exclude)
        if plan.mask is not None:
            keep &= plan.mask[cand]
        cand = np.unique(cand[keep])
        if len(cand) >= plan.n:
            scores = model.item_embeddings[cand] @ plan.query
            return _rank(cand, scores, plan.n)
    return _exact(model, plan.query, _eligible_mask(model, plan.mask, job.exclude), plan.n)


def _finish_searched(
    model: LoadedModel, plans: list[_Plan], idx: np.ndarray, dist: np.ndarray
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Every searched plan at once: drop excluded, filtered-out and invalid
    candidates, re-score the rest exactly, keep the best ``n`` of each (ties:
    lower row first). A plan whose candidates fall short, or hold a duplicate,
    goes through :func:`_finish` on its own."""
    num_items = model.num_items
    idx = np.asarray(idx, dtype=np.int64)
    dist = np.asarray(dist)
    valid = np.isfinite(dist) & (idx >= 0) & (idx < num_items)
    rows = np.where(valid, idx, 0)
    owner = np.arange(len(plans), dtype=np.int64)[:, None]
    sizes = [len(p.job.exclude) for p in plans]
    if any(sizes):
        keys = np.repeat(owner[:, 0], sizes) * num_items + np.concatenate([p.job.exclude for p in plans])
        valid &= ~np.isin(owner * num_items + rows, keys)
    for pos, plan in enumerate(plans):
        if plan.mask is not None:
            valid[pos] &= plan.mask[rows[pos]]
    marked = np.sort(np.where(valid, rows, -1), axis=1)
    duplicated = ((marked[:, 1:] == marked[:, :-1]) & (marked[:, 1:] >= 0)).any(axis=1)
    queries = np.stack([p.query for p in plans])[:, :, None]
    scores = np.matmul(model.item_embeddings[rows], queries)[:, :, 0]
    scores[~valid] = -np.inf
    order = np.lexsort((rows, -scores), axis=-1)
    enough = valid.sum(axis=1)
    out = []
    for pos, plan in enumerate(plans):
        if duplicated[pos] or enough[pos] < plan.n:
            out.append(_finish(plan, idx[pos], dist[pos]))
            continue
        best = order[pos, : plan.n]
        out.append((rows[pos, best], scores[pos, best]))
    return out


def _popular(job: Job) -> tuple[np.ndarray, np.ndarray]:
    model = job.model
    order = model.popular_order
    mask = filter_mask(model, job.filters)
    if mask is None and not len(job.exclude):
        rows = order[: job.k]
    else:
        eligible = _eligible_mask(model, mask, job.exclude)
        rows = order[eligible[order]][: job.k]
    return rows, model.popularity[rows]


def _query_columns(model: LoadedModel, jobs: list[Job]) -> dict[str, np.ndarray]:
    columns: dict[str, np.ndarray] = {}
    for qi in model.query_inputs:
        per_user = model.user_features[qi.name]
        values = []
        for job in jobs:
            over = job.overrides or {}
            if qi.name in over:
                values.append(over[qi.name])
            elif job.user_row is not None:
                values.append(per_user[job.user_row])
            elif qi.name == "user_id" and job.user_id_input is not None:
                values.append(job.user_id_input)
            else:
                values.append(qi.default)
        columns[qi.name] = np.asarray(values, dtype=np.float32 if qi.dtype == "float32" else object)
    return columns


def _run_model_group(model: LoadedModel, jobs: list[Job]) -> list[list[dict]]:
    ranked: list[tuple[np.ndarray, np.ndarray] | None] = [None] * len(jobs)
    cached = model.user_vectors
    vectors: dict[int, np.ndarray] = {}
    if cached is not None:
        for i, job in enumerate(jobs):
            if job.strategy == PERSONAL and not job.overrides:
                vectors[i] = cached[job.user_row]
    embed_at = [i for i, j in enumerate(jobs) if j.strategy in (PERSONAL, FEATURES) and i not in vectors]
    if embed_at:
        emb = model.embed(_query_columns(model, [jobs[i] for i in embed_at]))
        for pos, i in enumerate(embed_at):
            vectors[i] = emb[pos]
    for i, job in enumerate(jobs):
        if job.strategy == SIMILAR:
            vectors[i] = model.item_embeddings[job.item_row]
        elif job.strategy == POPULAR:
            ranked[i] = _popular(job)
    plans = {i: _plan(jobs[i], q) for i, q in vectors.items()}
    searched = [i for i, p in plans.items() if p.fetch]
    if searched:
        fetch = max(plans[i].fetch for i in searched)
        queries = np.ascontiguousarray(np.stack([plans[i].query for i in searched]), dtype=np.float32)
        # with exact re-ordering (tree + AH), the pool re-scored must hold every neighbour asked for
        pool = max(int(fetch), model.reorder_k)
        idx, dist = model.searcher.search_batched(queries, final_num_neighbors=int(fetch), pre_reorder_num_neighbors=pool)
        for i, result in zip(searched, _finish_searched(model, [plans[i] for i in searched], idx, dist), strict=True):
            ranked[i] = result
    for i, plan in plans.items():
        if not plan.fetch:
            ranked[i] = _finish(plan, None, None)
    done = [r for r in ranked if r is not None]
    if len(done) != len(jobs):
        raise RuntimeError(f"{len(jobs) - len(done)} job(s) of the batch were not ranked")
    rows = np.concatenate([r for r, _ in done]) if done else _EMPTY
    scores = np.concatenate([np.asarray(s, dtype=np.float64) for _, s in done]) if done else np.zeros(0)
    return model.items.answer_items(rows, scores, [len(r) for r, _ in done])


def run_jobs(jobs: list[Job]) -> list[list[dict] | BaseException]:
    """Answer a micro-batch (in the inference thread). Jobs are grouped by the version they hold."""
    out: list[list[dict] | BaseException] = [None] * len(jobs)  # type: ignore[list-item]
    groups: dict[int, list[int]] = {}
    for i, job in enumerate(jobs):
        groups.setdefault(id(job.model), []).append(i)
    for positions in groups.values():
        group = [jobs[i] for i in positions]
        try:
            answers: list = _run_model_group(group[0].model, group)
        except Exception as exc:  # noqa: BLE001 - handed to each waiting request
            answers = [exc] * len(group)
        for i, answer in zip(positions, answers, strict=True):
            out[i] = answer
    return out
