"""A ranking to compute (:class:`Job`) and how its items are found (:class:`SearchPlan`).

A job is made on the event loop (:mod:`serving.retrieval.plan`) and computed in
the inference thread (:mod:`serving.retrieval.execute`). Its search plan says
how many items the answer holds (``min(k, eligible)``) and how the index is
asked: ``fetch`` neighbours, enough that after the exclusions and filters the
answer is still full; or, when that would cost as much as scoring every
eligible item, a full scan (``fetch`` 0).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from serving.model import LoadedModel
from serving.retrieval.strategy import Strategy

EMPTY_ROWS = np.zeros(0, dtype=np.int64)
EMPTY_ROWS.flags.writeable = False


@dataclass(frozen=True, slots=True)
class RangeFilter:
    """A numeric filter's bounds (None: open on that side)."""

    min: float | None
    max: float | None


# a checked filter: (column, RangeFilter or the tuple of accepted values)
Filter = tuple[str, RangeFilter | tuple[Any, ...]]


@dataclass(slots=True)
class Job:
    """One ranking to compute, bound to the version that will compute it."""

    model: LoadedModel
    strategy: Strategy
    k: int
    user_row: int | None = None  # known user: row of users.parquet
    overrides: Mapping[str, Any] | None = None  # query input -> value from the request
    user_id_input: str | None = None  # unknown user's id, fed as is (-> OOV bucket)
    item_row: int | None = None  # similar: the item whose neighbours are wanted
    exclude: np.ndarray = field(default_factory=lambda: EMPTY_ROWS)  # sorted unique rows never to return
    filters: tuple[Filter, ...] = ()
    plan: SearchPlan | None = None  # made on the event loop when the query vector is known and there are no filters
    abandoned: bool = False  # set on the event loop when the request gave up: its remaining work is skipped
    ignored: list[str] | None = None  # given recent item ids the version does not know (None: the request gave none)


@dataclass(slots=True)
class SearchPlan:
    """How the items of one job are found, once its query vector is known."""

    job: Job
    query: np.ndarray  # float32 [dim]
    mask: np.ndarray | None  # bool [num_items]: the items passing the filters (None: no filters)
    wanted: int  # items in the answer: min(k, eligible)
    fetch: int  # neighbours asked of the index; 0: full scan (score every eligible item)

    @property
    def full_scan(self) -> bool:
        return self.fetch == 0


def filter_mask(model: LoadedModel, filters: tuple[Filter, ...]) -> np.ndarray | None:
    """Boolean mask of the items passing every filter; None when there are no filters."""
    mask: np.ndarray | None = None
    for column, spec in filters:
        fc = model.filter_columns[column]
        if isinstance(spec, RangeFilter):
            vals = fc.numeric_values()
            m = np.isfinite(vals)
            if spec.min is not None:
                m &= vals >= spec.min
            if spec.max is not None:
                m &= vals <= spec.max
        elif fc.kind == "numeric":
            m = np.isin(fc.numeric_values(), np.asarray(spec, dtype=np.float64))
        elif fc.kind == "scalar":
            item_codes, code_of = fc.scalar_codes()
            codes = [code_of[v] for v in spec if v in code_of]
            m = np.isin(item_codes, np.asarray(codes, dtype=np.int32)) if codes else np.zeros(model.num_items, dtype=bool)
        else:  # list-valued: any overlap
            m = np.zeros(model.num_items, dtype=bool)
            rows_of = fc.list_rows()
            for v in spec:
                rows = rows_of.get(v)
                if rows is not None:
                    m[rows] = True
        mask = m if mask is None else (mask & m)
    return mask


def eligible_mask(model: LoadedModel, mask: np.ndarray | None, exclude: np.ndarray) -> np.ndarray:
    """Boolean mask of the items an answer may hold: passing the filters and not excluded."""
    full = np.ones(model.num_items, dtype=bool) if mask is None else mask.copy()
    if len(exclude):
        full[exclude] = False
    return full


def plan_search(job: Job, query: np.ndarray) -> SearchPlan:
    """The answer's size and the index's over-fetch for ``job`` with query vector ``query``."""
    model = job.model
    total = model.num_items
    mask = filter_mask(model, job.filters)
    excl = job.exclude
    passing = total if mask is None else int(mask.sum())
    excluded_passing = len(excl) if mask is None else int(mask[excl].sum()) if len(excl) else 0
    eligible = passing - excluded_passing
    wanted = min(job.k, eligible)
    if wanted <= 0:
        return SearchPlan(job, query, mask, 0, 0)
    margin = max(8, job.k // 4)
    # enough neighbours that, at the filters' pass rate, k + margin of them survive the exclusions
    fetch = math.ceil((job.k + margin) * total / passing) + len(excl)  # passing >= eligible > 0
    if fetch * 2 >= total or eligible <= fetch:
        # scoring the eligible items directly costs no more than re-scoring the over-fetched candidates
        fetch = 0
    return SearchPlan(job, query, mask, wanted, fetch)
