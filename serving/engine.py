"""Turning requests into ranked items.

Three steps per micro-batch:

* On the event loop, :func:`build_job` checks a request against the served
  version (feature names and types, filter fields) and resolves what it can
  from the precomputed lookups: the strategy, the user's row, the rows to
  exclude. It is cheap and never touches TensorFlow or ScaNN. A request's
  recent items (``recent_item_ids``, :mod:`serving.recent`) become the query
  tower's history input: a known user's query then runs the tower
  (strategy ``personal``), a visitor nobody knows gets strategy ``session``.
* In the inference thread, :func:`compute_jobs` does the heavy part of a whole
  batch: one query-tower call for every job that needs an embedding (a known
  user without feature overrides uses the vector precomputed at load, when
  there is one), then the version's index
  (:class:`serving.item_index.LocalIndex`): one ``search_batched`` call
  over-fetching enough neighbours for the exclusions and filters, whose
  candidates the compiled kernel filters, re-scores exactly and orders without
  the interpreter lock; and the exact and popular rankings.
* Back on the event loop, :func:`finish_jobs` gathers the kept rows of the
  whole batch with one index array and builds the answer items in one call
  (light work; on the loop it needs no further hand-over of the interpreter
  lock). A job whose candidates fell short gets :data:`EXACT_NEEDED` and is
  submitted again as :func:`exact_rerun`.

Every answer has ``min(k, eligible)`` distinct items with non-increasing scores.
A query vector that cannot be scored (features that drive the tower to
infinity) is a 422 ``invalid_features`` naming the features, never an empty
answer. Work is bounded per job: queries of very different over-fetch are
searched in separate calls, exact scoring runs in chunks, and a job whose
request gave up (``Job.abandoned``: its deadline passed) stops between
chunks.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from serving.errors import ApiError
from serving.model import LoadedModel
from serving.ranking import RankedCandidates
from serving.recent import resolve_recent
from serving.schemas import FLOAT32_MAX

PERSONAL, FEATURES, POPULAR, SIMILAR, SESSION = "personal", "features", "popular", "similar", "session"
EMBEDDED = (PERSONAL, FEATURES, SESSION)  # strategies whose query vector comes from the query tower
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
    exact: bool = False  # score every eligible item (the index's candidates ran short)
    plan: _Plan | None = None  # made on the event loop when the query vector is known and there are no filters
    abandoned: bool = False  # set on the event loop when the request gave up: its remaining work is skipped
    ignored: list[str] | None = None  # given recent item ids the version does not know (None: the request gave none)


class JobAbandoned(Exception):
    """The result of a job whose request gave up (its deadline passed) while it was computed: nobody waits for it."""


# --------------------------------------------------------------------------- request side (event loop)


def _bad(code: str, message: str) -> ApiError:
    return ApiError(422, code, message)


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
            raise _bad("invalid_features", "give user_id at the top level of the request, not in features")
        qi = inputs.get(name)
        if qi is None:
            known = sorted(n for n in inputs if n != "user_id")
            raise _bad("invalid_features", f"unknown feature {name!r}; this model reads {known}")
        if qi.dtype == "float32":
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not _fits_float32(value):
                raise _bad("invalid_features", f"feature {name!r} must be a finite number a float32 can hold")
            out[name] = float(value)
        elif isinstance(value, str):
            out[name] = value
        elif isinstance(value, list) and qi.kind == "multi_categorical" and all(isinstance(v, str) for v in value):
            out[name] = qi.separator.join(value)
        else:
            raise _bad("invalid_features", f"feature {name!r} must be a string")
    return out


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


def resolve_filters(model: LoadedModel, filters: Mapping[str, Any] | None) -> tuple[tuple[str, Any], ...]:
    """Filters checked against the version's item metadata (``{"min","max"}`` or a list of
    values); a value given twice is kept once."""
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
            bounds = [None if b is None else _finite(b) for b in (lo, hi)]
            if any(b is None and given is not None for b, given in zip(bounds, (lo, hi), strict=True)):
                raise _bad("invalid_filter", f"the bounds of {column!r} must be finite numbers")
            out.append((column, RangeFilter(*bounds)))
            continue
        values = list(spec)
        if fc.kind == "numeric":
            if any(isinstance(v, str) for v in values):
                raise _bad("invalid_filter", f"{column!r} is numeric; its values must be numbers")
            numbers = [_finite(v) for v in values]
            if any(v is None for v in numbers):
                raise _bad("invalid_filter", f"the values of {column!r} must be finite numbers")
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
    seen = model.seen.of(seen_of) if seen_of is not None else _EMPTY
    if not exclude_item_ids:
        return seen  # the common case: no cart to leave out
    extra = model.items.ids.rows(exclude_item_ids)
    extra = extra[extra >= 0]
    return np.unique(np.concatenate([seen, extra])) if len(extra) else seen


def build_job(model: LoadedModel, request: Any) -> Job:
    """Strategy and lookups for a recommendation request (see DESIGN.md section 4)."""
    uid = request.user_id
    overrides = resolve_features(model, request.features)
    filters = resolve_filters(model, request.filters)
    user_row = model.users.get(uid) if uid is not None else None
    given = getattr(request, "recent_item_ids", None)
    recent = resolve_recent(model, user_row, given) if given else None
    if recent is not None and recent.usable:
        if recent.feature in overrides:
            raise _bad("invalid_features", f"give the recent items once: in recent_item_ids, not as feature {recent.feature!r}")
        overrides[recent.feature] = recent.value  # the query tower runs for this request (serving/recent.py)
    if user_row is not None:
        strategy = PERSONAL
    elif recent is not None and recent.usable:
        strategy = SESSION
    elif overrides:
        strategy = FEATURES
    else:
        strategy = POPULAR
    exclude = exclusion_rows(model, user_row if request.exclude_seen else None, request.exclude_item_ids)
    if recent is not None and recent.usable and request.exclude_seen:
        exclude = np.union1d(exclude, recent.rows)  # the given items are seen too
    job = Job(
        model=model,
        strategy=strategy,
        k=request.k,
        user_row=user_row,
        overrides=overrides,
        user_id_input=uid if user_row is None else None,
        exclude=exclude,
        filters=filters,
        ignored=recent.ignored if recent is not None else None,
    )
    if strategy == PERSONAL and not overrides and not filters and model.user_vectors is not None:
        # everything but the search is known: plan here, so the inference thread runs ScaNN and little Python
        job.plan = _plan(job, model.user_vectors[user_row])
    return job


def similar_job(model: LoadedModel, item_row: int, k: int) -> Job:
    job = Job(model=model, strategy=SIMILAR, k=k, item_row=item_row, exclude=np.asarray([item_row], dtype=np.int64))
    job.plan = _plan(job, model.item_embeddings[item_row])
    return job


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


@dataclass(slots=True)
class Ranked:
    """A final ranking: item rows and their scores, best first."""

    rows: np.ndarray
    scores: np.ndarray


@dataclass(slots=True)
class Searched:
    """A job answered from the index: query ``pos`` of one batch's :class:`RankedCandidates`."""

    result: RankedCandidates
    pos: int


class _ExactNeeded:
    def __repr__(self) -> str:
        return "EXACT_NEEDED"


# the answer of finish_jobs for a job whose searched candidates ran short: run exact_rerun(job)
EXACT_NEEDED = _ExactNeeded()


def exact_rerun(job: Job) -> Job:
    """``job`` again, scoring every eligible item (planned afresh in the inference thread)."""
    return dataclasses.replace(job, exact=True, plan=None)


def _search(model: LoadedModel, plans: list[_Plan]) -> RankedCandidates:
    """The ``search_batched`` call for ``plans`` (one for the usual batch; a plan that
    over-fetches far more than the others gets a call of its own, so it never widens
    their search: :meth:`serving.item_index.LocalIndex.search_groups`), then every
    plan's candidates at once (:func:`serving.ranking.rank_candidates`, without the
    interpreter lock): drop excluded, filtered-out and invalid ones, score the rest
    exactly, keep the best ``n`` (ties: lower row first). A plan whose candidates fall
    short of ``n`` or hold a duplicate is marked ``short``: that job needs exact scoring.

    How the pool is sized and scored: :meth:`serving.item_index.LocalIndex.search_ranked`."""
    masks = [(pos, p.mask) for pos, p in enumerate(plans) if p.mask is not None]
    wanted = np.fromiter((p.n for p in plans), dtype=np.int64, count=len(plans))
    queries = np.stack([p.query for p in plans])
    return model.index.search_ranked(queries, [p.fetch for p in plans], wanted, [p.job.exclude for p in plans], masks)


def _unusable_query(job: Job) -> Exception:
    """What a job whose query vector cannot be scored answers: a 422 naming the numeric
    features the request gave (or all it gave); with no features given, the stored
    features of a known user are at fault, which is the service's problem."""
    given = dict(job.overrides or {})
    if not given:
        return RuntimeError(f"the query tower gave an unusable vector for the stored features of user row {job.user_row}")
    names = sorted(name for name, value in given.items() if isinstance(value, float)) or sorted(given)
    return ApiError(
        422,
        "invalid_features",
        f"features {', '.join(names)}: with these values the model's query vector is not finite "
        "(or its scores overflow float32); give values nearer the ones the model was trained on",
    )


def _popular(job: Job) -> Ranked:
    model = job.model
    order = model.popular_order
    mask = filter_mask(model, job.filters)
    if mask is None and not len(job.exclude):
        rows = order[: job.k]
    else:
        eligible = _eligible_mask(model, mask, job.exclude)
        rows = order[eligible[order]][: job.k]
    return Ranked(rows, model.popularity[rows])


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


def _compute_group(model: LoadedModel, jobs: list[Job]) -> list[Ranked | Searched]:
    out: list[Ranked | Searched | None] = [None] * len(jobs)
    plans = {i: job.plan for i, job in enumerate(jobs) if job.plan is not None}
    cached = model.user_vectors
    vectors: dict[int, np.ndarray] = {}
    for i, job in enumerate(jobs):
        if i in plans:
            continue
        if job.strategy == SIMILAR:
            vectors[i] = model.item_embeddings[job.item_row]
        elif job.strategy == POPULAR:
            out[i] = _popular(job)
        elif cached is not None and job.strategy == PERSONAL and not job.overrides:
            vectors[i] = cached[job.user_row]
    embed_at = [i for i, j in enumerate(jobs) if j.strategy in EMBEDDED and i not in vectors and i not in plans]
    if embed_at:
        emb = model.embed(_query_columns(model, [jobs[i] for i in embed_at]))
        usable = model.index.usable_queries(emb)
        for pos, i in enumerate(embed_at):
            if usable[pos]:
                vectors[i] = emb[pos]
            else:
                out[i] = _unusable_query(jobs[i])
    plans.update({i: _plan(jobs[i], q) for i, q in vectors.items()})
    searched = []
    for i, plan in plans.items():
        if plan.n == 0:
            out[i] = Ranked(_EMPTY, np.zeros(0, dtype=np.float32))
        elif plan.fetch and not plan.job.exact:
            searched.append(i)
        else:
            out[i] = _exact(model, plan)
    if searched:
        result = _search(model, [plans[i] for i in searched])
        for pos, i in enumerate(searched):
            out[i] = Searched(result, pos)
    missing = sum(1 for r in out if r is None)
    if missing:
        raise RuntimeError(f"{missing} job(s) of the batch were not ranked")
    return out  # type: ignore[return-value]


def _exact(model: LoadedModel, plan: _Plan) -> Ranked | JobAbandoned:
    """Every eligible item scored, in chunks; stopped when the job's request gives up."""
    job = plan.job
    if job.abandoned:
        return JobAbandoned()
    eligible = _eligible_mask(model, plan.mask, job.exclude)
    ranked = model.index.exact(plan.query, eligible, plan.n, lambda: not job.abandoned)
    return JobAbandoned() if ranked is None else Ranked(*ranked)


def _by_version(jobs: list[Job]) -> list[list[int]]:
    groups: dict[int, list[int]] = {}
    for i, job in enumerate(jobs):
        groups.setdefault(id(job.model), []).append(i)
    return list(groups.values())


def compute_jobs(jobs: list[Job]) -> list[Ranked | Searched | BaseException]:
    """The heavy half of a micro-batch, for the inference thread: per version one
    query-tower call, one ``search_batched`` call (more only for jobs that over-fetch
    far more than the rest), and the exact and popular rankings. A failing version
    fails only its own jobs; a job can also fail alone (an exception in its place:
    the 422 of a query vector that cannot be scored, :class:`JobAbandoned`)."""
    out: list[Ranked | Searched | BaseException] = [None] * len(jobs)  # type: ignore[list-item]
    for positions in _by_version(jobs):
        group = [jobs[i] for i in positions]
        try:
            answers: list = _compute_group(group[0].model, group)
        except Exception as exc:
            answers = [exc] * len(group)
        for i, answer in zip(positions, answers, strict=True):
            out[i] = answer
    return out


def _finish_group(model: LoadedModel, computed: list[Ranked | Searched]) -> list[list[dict] | _ExactNeeded]:
    """Answers for one version's jobs: every ranking is a run of rows in one pool (the
    search's kept candidates, then the exact and popular rankings), gathered with
    one index array and turned into answer items in one call."""
    # one search_batched call per version and batch, so at most one ranked result
    ranked = next((c.result for c in computed if isinstance(c, Searched)), None)
    pools_rows: list[np.ndarray] = [ranked.rows] if ranked is not None else []
    pools_scores: list[np.ndarray] = [ranked.scores] if ranked is not None else []
    offset = len(ranked.rows) if ranked is not None else 0
    starts: list[int] = []
    counts: list[int] = []
    for c in computed:
        if isinstance(c, Searched):
            first, last = int(ranked.offsets[c.pos]), int(ranked.offsets[c.pos + 1])  # type: ignore[union-attr]
            starts.append(first)
            counts.append(last - first)
        else:
            starts.append(offset)
            counts.append(len(c.rows))
            pools_rows.append(c.rows)
            pools_scores.append(c.scores)
            offset += len(c.rows)
    n = np.asarray(counts, dtype=np.int64)
    # positions start[i] .. start[i] + n[i] - 1 of every ranking, back to back
    take = np.repeat(np.asarray(starts, dtype=np.int64) - (np.cumsum(n) - n), n) + np.arange(int(n.sum()))
    rows = np.concatenate(pools_rows)[take] if pools_rows else _EMPTY
    scores = np.concatenate(pools_scores)[take] if pools_scores else np.zeros(0)
    answers = model.items.answer_items(rows, scores, counts)
    return [
        EXACT_NEEDED if isinstance(c, Searched) and ranked.short[c.pos] else answer  # type: ignore[union-attr]
        for c, answer in zip(computed, answers, strict=True)
    ]


def finish_jobs(jobs: list[Job], computed: list[Any]) -> list[list[dict] | _ExactNeeded | BaseException]:
    """The light half, for the event loop (numpy over small arrays and the answer
    dicts, no TensorFlow, no ScaNN): filter and re-score the searched
    candidates, build the answer items. A job whose candidates ran short gets
    :data:`EXACT_NEEDED`; exceptions from :func:`compute_jobs` pass through."""
    out: list[Any] = list(computed)
    for positions in _by_version(jobs):
        live = [i for i in positions if not isinstance(computed[i], BaseException)]
        if not live:
            continue
        try:
            answers: list = _finish_group(jobs[live[0]].model, [computed[i] for i in live])
        except Exception as exc:
            answers = [exc] * len(live)
        for i, answer in zip(live, answers, strict=True):
            out[i] = answer
    return out


def run_jobs(jobs: list[Job]) -> list[list[dict] | BaseException]:
    """Both halves in one call, the exact re-runs included (tests, benchmarks)."""
    out = finish_jobs(jobs, compute_jobs(jobs))
    again = [i for i, r in enumerate(out) if r is EXACT_NEEDED]
    if again:
        redo = [exact_rerun(jobs[i]) for i in again]
        for i, answer in zip(again, finish_jobs(redo, compute_jobs(redo)), strict=True):
            out[i] = answer
    return out  # type: ignore[return-value]
