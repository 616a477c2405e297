"""Step 2, in the inference thread: a micro-batch of jobs ranked.

Per version in the batch: one query-tower call for every job that needs an
embedding (a known user without feature overrides uses the vector precomputed
at load, when there is one), then the version's index
(:class:`serving.item_index.LocalIndex`): one ``search_batched`` call
over-fetching enough neighbours for the exclusions and filters, whose
candidates the compiled kernel filters, re-scores exactly and orders without
the interpreter lock. A job whose candidates fall short of its answer (or
repeat an item) is ranked by a full scan of the eligible items in the same
step, so every result leaves the thread final. Popular rankings and planned
full scans run here too.

Work is bounded per job: queries of very different over-fetch are searched in
separate calls, a full scan runs in chunks, and a job whose request gave up
(``Job.abandoned``: its deadline passed) stops between chunks. A query vector
that cannot be scored (features that drive the tower to infinity) fails its
job alone with :class:`~serving.retrieval.errors.InvalidQuery` naming the
features, never an empty answer.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from serving.model import LoadedModel
from serving.ranking import RankedCandidates
from serving.retrieval.errors import InvalidQuery, JobAbandoned
from serving.retrieval.job import EMPTY_ROWS, Job, SearchPlan, eligible_mask, filter_mask, plan_search
from serving.retrieval.strategy import QUERY_TOWER_STRATEGIES, Strategy

_NO_SCORES = np.zeros(0, dtype=np.float32)
_NO_SCORES.flags.writeable = False
# the members as module constants: reading ``Strategy.X`` goes through the Enum class (about 150 ns on 3.11)
_PERSONAL, _POPULAR, _SIMILAR = Strategy.PERSONAL, Strategy.POPULAR, Strategy.SIMILAR


@dataclass(slots=True)
class Ranked:
    """A final ranking: item rows and their scores, best first."""

    rows: np.ndarray
    scores: np.ndarray


@dataclass(slots=True)
class Searched:
    """A job answered from the index: query ``pos`` of one batch's :class:`RankedCandidates` (never short)."""

    result: RankedCandidates
    pos: int


# what the inference thread gives for one job
Executed = Ranked | Searched | BaseException


def _search(model: LoadedModel, plans: list[SearchPlan]) -> RankedCandidates:
    """The ``search_batched`` call for ``plans`` (one for the usual batch; a plan that
    over-fetches far more than the others gets a call of its own, so it never widens
    their search: :meth:`serving.item_index.LocalIndex.search_groups`), then every
    plan's candidates at once (:func:`serving.ranking.rank_candidates`, without the
    interpreter lock): drop excluded, filtered-out and invalid ones, score the rest
    exactly, keep the best ``wanted`` (ties: lower row first). A plan whose candidates
    fall short of ``wanted`` or hold a duplicate is marked ``short``.

    How the pool is sized and scored: :meth:`serving.item_index.LocalIndex.search_ranked`."""
    masks = [(pos, p.mask) for pos, p in enumerate(plans) if p.mask is not None]
    wanted = np.fromiter((p.wanted for p in plans), dtype=np.int64, count=len(plans))
    queries = np.stack([p.query for p in plans])
    return model.index.search_ranked(queries, [p.fetch for p in plans], wanted, [p.job.exclude for p in plans], masks)


def _unusable_query(job: Job) -> Exception:
    """What a job whose query vector cannot be scored gives: InvalidQuery naming the numeric
    features the request gave (or all it gave); with no features given, the stored
    features of a known user are at fault, which is the service's problem."""
    given = dict(job.overrides or {})
    if not given:
        return RuntimeError(f"the query tower gave an unusable vector for the stored features of user row {job.user_row}")
    names = sorted(name for name, value in given.items() if isinstance(value, float)) or sorted(given)
    shown = ", ".join(f"{name}={given[name]!r}"[:80] for name in names)
    return InvalidQuery(
        "invalid_features",
        f"features {shown}: with these values the model's query vector is not finite "
        "(or its scores overflow float32); give values nearer the ones the model was trained on",
    )


def _popular(job: Job) -> Ranked:
    model = job.model
    order = model.popular_order
    mask = filter_mask(model, job.filters)
    if mask is None and not len(job.exclude):
        rows = order[: job.k]
    else:
        eligible = eligible_mask(model, mask, job.exclude)
        rows = order[eligible[order]][: job.k]
    return Ranked(rows, model.popularity[rows])


def query_columns(model: LoadedModel, jobs: list[Job]) -> dict[str, np.ndarray]:
    """The query tower's input columns for ``jobs``: request overrides, else the known user's stored
    features, else the unknown user's id, else the input's default."""
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


def _full_scan(model: LoadedModel, plan: SearchPlan) -> Ranked | JobAbandoned:
    """Every eligible item scored, in chunks; stopped when the job's request gives up."""
    job = plan.job
    if job.abandoned:
        return JobAbandoned()
    eligible = eligible_mask(model, plan.mask, job.exclude)
    ranked = model.index.scan(plan.query, eligible, plan.wanted, lambda: not job.abandoned)
    return JobAbandoned() if ranked is None else Ranked(*ranked)


def _query_vectors(model: LoadedModel, jobs: list[Job], out: list[Executed | None]) -> dict[int, np.ndarray]:
    """The query vector of every job not planned yet (popular rankings and unusable vectors go to ``out``)."""
    cached = model.user_vectors
    vectors: dict[int, np.ndarray] = {}
    for i, job in enumerate(jobs):
        if job.plan is not None:
            continue
        if job.strategy is _SIMILAR:
            vectors[i] = model.item_embeddings[job.item_row]
        elif job.strategy is _POPULAR:
            out[i] = _popular(job)
        elif cached is not None and job.strategy is _PERSONAL and not job.overrides:
            vectors[i] = cached[job.user_row]
    embed_at = [i for i, j in enumerate(jobs) if j.plan is None and i not in vectors and j.strategy in QUERY_TOWER_STRATEGIES]
    if embed_at:
        emb = model.embed(query_columns(model, [jobs[i] for i in embed_at]))
        usable = model.index.usable_queries(emb)
        for pos, i in enumerate(embed_at):
            if usable[pos]:
                vectors[i] = emb[pos]
            else:
                out[i] = _unusable_query(jobs[i])
    return vectors


def _execute_version(model: LoadedModel, jobs: list[Job]) -> list[Executed]:
    """One version's jobs: query vectors, one search for the searched ones, full scans for the rest
    and for every searched job whose candidates ran short."""
    out: list[Executed | None] = [None] * len(jobs)
    plans = {i: job.plan for i, job in enumerate(jobs) if job.plan is not None}
    plans.update({i: plan_search(jobs[i], q) for i, q in _query_vectors(model, jobs, out).items()})
    searched = []
    for i, plan in plans.items():
        if plan.wanted == 0:
            out[i] = Ranked(EMPTY_ROWS, _NO_SCORES)
        elif plan.full_scan:
            out[i] = _full_scan(model, plan)
        else:
            searched.append(i)
    if searched:
        result = _search(model, [plans[i] for i in searched])
        for pos, i in enumerate(searched):
            # too few candidates (or a duplicate): the full scan, in this same step
            out[i] = _full_scan(model, plans[i]) if result.short[pos] else Searched(result, pos)
    missing = sum(1 for r in out if r is None)
    if missing:
        raise RuntimeError(f"{missing} job(s) of the batch were not ranked")
    return [r for r in out if r is not None]


def by_version(jobs: list[Job]) -> list[list[int]]:
    """Positions of ``jobs`` grouped by the version that computes them (in order of first appearance)."""
    groups: dict[int, list[int]] = {}
    for i, job in enumerate(jobs):
        groups.setdefault(id(job.model), []).append(i)
    return list(groups.values())


def execute_batch(jobs: list[Job]) -> list[Executed]:
    """The heavy half of a micro-batch, for the inference thread: per version one
    query-tower call, one ``search_batched`` call (more only for jobs that over-fetch
    far more than the rest), and the full scans and popular rankings. Every result
    is final. A failing version fails only its own jobs; a job can also fail alone
    (an exception in its place: :class:`InvalidQuery` for a query vector that cannot
    be scored, :class:`JobAbandoned`)."""
    out: list[Executed | None] = [None] * len(jobs)
    for positions in by_version(jobs):
        group = [jobs[i] for i in positions]
        answers: list[Executed]
        try:
            answers = _execute_version(group[0].model, group)
        except Exception as exc:
            answers = [exc] * len(group)
        for i, answer in zip(positions, answers, strict=True):
            out[i] = answer
    return [r for r in out if r is not None]
