"""``GET /v1/items/{item_id}/similar``: the items nearest an item (dot product of item embeddings).

No ``from __future__ import annotations`` here: FastAPI reads the route's annotations,
which name the app's bound on ``k`` (a local variable of :func:`router`).
"""

from typing import Annotated

from fastapi import APIRouter, Query
from starlette.responses import Response

from serving.api.deps import RetrievalDep
from serving.api.errors import ApiError
from serving.api.requests import PathId
from serving.api.responses import answer
from serving.api.schemas import ERRORS, NOT_FOUND, SimilarItemsResponse
from serving.settings import ServiceSettings


def router(settings: ServiceSettings) -> APIRouter:
    """The item routes with ``settings``' bound on ``k``."""
    max_k = settings.largest_k
    routes = APIRouter(tags=["items"])

    @routes.get(
        "/v1/items/{item_id}/similar",
        response_model=SimilarItemsResponse,
        responses={**ERRORS, **NOT_FOUND},
        summary="Items closest to an item (dot product of item embeddings)",
    )
    async def similar_items(
        item_id: PathId,
        served: RetrievalDep,
        k: Annotated[int, Query(ge=1, le=max_k)] = settings.default_k,
    ) -> Response:
        model, retriever = served.model, served.retriever
        row = model.items.ids.get(item_id)
        if row is None:
            raise ApiError(404, "unknown_item", "this item is not in the served model version")
        ranking = await retriever.rank(retriever.plan_similar(model, row, k))
        return answer(
            model, {"model_version": model.version, "item_id": item_id, "strategy": ranking.strategy, "items": ranking.items}
        )

    return routes
