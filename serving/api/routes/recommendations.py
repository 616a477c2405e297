"""``POST /v1/recommendations``, ``POST /v1/recommendations/batch``, ``GET /v1/users/{user_id}/recommendations``.

Each route plans its job on the event loop (:meth:`Retriever.plan`: checks against the
served version, :class:`~serving.retrieval.errors.InvalidQuery` -> 422) and awaits its
ranking (:meth:`Retriever.rank`, in the next micro-batch). The bounds in the document
(``k``, list lengths, the batch size) are the app's settings, so the router is made per app.

No ``from __future__ import annotations`` here: FastAPI reads the annotations of the routes,
which name the app's bounds (local variables of :func:`router`).
"""

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, Query
from starlette.responses import Response

from serving.api.deps import RetrievalDep
from serving.api.errors import ApiError
from serving.api.requests import BatchQuery, PathId, body_model, request_models
from serving.api.responses import answer
from serving.api.schemas import ERRORS, NOT_FOUND, BatchResponse, RecommendationResponse
from serving.model import LoadedModel
from serving.retrieval.errors import InvalidQuery
from serving.retrieval.job import Job
from serving.retrieval.plan import RecommendationQuery, UserQuery
from serving.retrieval.retriever import Ranking, Retriever
from serving.settings import ServiceSettings


def ranking_body(model: LoadedModel, user_id: str | None, ranking: Ranking) -> dict[str, Any]:
    """One recommendation answer (``RecommendationResponse``)."""
    out: dict[str, Any] = {
        "model_version": model.version,
        "user_id": user_id,
        "strategy": ranking.strategy,
        "items": ranking.items,
    }
    if ranking.ignored_item_ids is not None:  # the request gave recent_item_ids
        out["ignored_item_ids"] = ranking.ignored_item_ids
    return out


async def _batch_rankings(model: LoadedModel, retriever: Retriever, body: BatchQuery) -> list[Ranking]:
    """Every request of a batch planned first (a bad one fails the call before any work), then
    ranked together; an error names the request it came from."""
    jobs = []
    for i, sub in enumerate(body.requests):
        try:
            jobs.append(retriever.plan(model, sub))
        except InvalidQuery as exc:
            raise InvalidQuery(exc.code, f"requests[{i}]: {exc.message}") from exc
    return list(await asyncio.gather(*(_ranked(retriever, i, job) for i, job in enumerate(jobs))))


async def _ranked(retriever: Retriever, i: int, job: Job) -> Ranking:
    try:
        return await retriever.rank(job)
    except InvalidQuery as exc:  # e.g. features the query tower cannot score
        raise InvalidQuery(exc.code, f"requests[{i}]: {exc.message}") from exc


def router(settings: ServiceSettings) -> APIRouter:
    """The recommendation routes with ``settings``' bounds."""
    models = request_models(settings)
    max_k = settings.largest_k
    routes = APIRouter(tags=["recommendations"])

    @routes.post(
        "/v1/recommendations",
        response_model=RecommendationResponse,
        responses=ERRORS,
        summary="Top-k items for a user, a feature description, this visit's items (session), or nobody (popular items)",
    )
    @body_model(models.recommendation)
    async def recommend(body: RecommendationQuery, served: RetrievalDep) -> Response:
        model, retriever = served.model, served.retriever
        ranking = await retriever.rank(retriever.plan(model, body))
        return answer(model, ranking_body(model, body.user_id, ranking))

    @routes.post(
        "/v1/recommendations/batch",
        response_model=BatchResponse,
        responses=ERRORS,
        summary=f"Up to {settings.max_batch} recommendation requests in one call",
    )
    @body_model(models.batch)
    async def recommend_batch(body: BatchQuery, served: RetrievalDep) -> Response:
        model = served.model
        rankings = await _batch_rankings(model, served.retriever, body)
        results = [ranking_body(model, sub.user_id, r) for sub, r in zip(body.requests, rankings, strict=True)]
        return answer(model, {"model_version": model.version, "results": results})

    @routes.get(
        "/v1/users/{user_id}/recommendations",
        response_model=RecommendationResponse,
        responses={**ERRORS, **NOT_FOUND},
        summary="Top-k items for a known user",
    )
    async def recommend_for_user(
        user_id: PathId,
        served: RetrievalDep,
        k: Annotated[int, Query(ge=1, le=max_k)] = settings.default_k,
        exclude_seen: bool = True,
    ) -> Response:
        model, retriever = served.model, served.retriever
        if user_id not in model.users:
            raise ApiError(404, "unknown_user", "this user is not known to the served model version")
        ranking = await retriever.rank(retriever.plan(model, UserQuery(user_id=user_id, k=k, exclude_seen=exclude_seen)))
        return answer(model, ranking_body(model, user_id, ranking))

    return routes
