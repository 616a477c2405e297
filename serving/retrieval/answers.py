"""Step 3, on the event loop: the answer items of a micro-batch.

Light work (numpy over small arrays and the answer dicts, no TensorFlow, no
ScaNN): every ranking of a version is a run of rows in one pool (the search's
kept candidates, then the full scans and popular rankings), gathered with one
index array and turned into answer items in one call
(:meth:`serving.items.ItemMetadata.answer_items`). On the loop it needs no
further hand-over of the interpreter lock.
"""

from __future__ import annotations

from typing import Any, cast

import numpy as np

from serving.model import LoadedModel
from serving.retrieval.execute import Executed, Ranked, Searched, by_version
from serving.retrieval.job import EMPTY_ROWS, Job

AnswerItems = list[dict[str, Any]]


def _version_answers(model: LoadedModel, executed: list[Ranked | Searched]) -> list[AnswerItems]:
    """Answer items for one version's rankings, gathered from one pool in one call."""
    # one search_batched result per version and batch (its groups merged), so at most one pool of candidates
    searched = next((c.result for c in executed if isinstance(c, Searched)), None)
    pools_rows: list[np.ndarray] = [searched.rows] if searched is not None else []
    pools_scores: list[np.ndarray] = [searched.scores] if searched is not None else []
    offset = len(searched.rows) if searched is not None else 0
    starts: list[int] = []
    counts: list[int] = []
    for c in executed:
        if isinstance(c, Searched):
            first, last = int(c.result.offsets[c.pos]), int(c.result.offsets[c.pos + 1])
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
    rows = np.concatenate(pools_rows)[take] if pools_rows else EMPTY_ROWS
    scores = np.concatenate(pools_scores)[take] if pools_scores else np.zeros(0)
    return model.items.answer_items(rows, scores, counts)


def build_answers(jobs: list[Job], executed: list[Executed]) -> list[AnswerItems | BaseException]:
    """The answer items of every job of a batch; exceptions from :func:`~serving.retrieval.execute.execute_batch`
    pass through, and a version whose answers fail fails only its own jobs."""
    out: list[AnswerItems | BaseException] = [c if isinstance(c, BaseException) else [] for c in executed]
    for positions in by_version(jobs):
        live = [i for i in positions if not isinstance(executed[i], BaseException)]
        if not live:
            continue
        answers: list[AnswerItems | BaseException]
        try:
            ranked = cast(list[Ranked | Searched], [executed[i] for i in live])
            answers = cast(list[AnswerItems | BaseException], _version_answers(jobs[live[0]].model, ranked))
        except Exception as exc:
            answers = [exc] * len(live)
        for i, answer in zip(live, answers, strict=True):
            out[i] = answer
    return out
