"""Demo only (``demo_enabled``): ``GET /v1/users`` (a few known user ids) and
``GET /v1/users/{user_id}/history`` (a known user's training items, with metadata).

They expose customer data, so :func:`serving.app.create_app` includes this router only
with the demo on; with it off the paths answer 404 and are absent from the document.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from starlette.responses import Response

from serving.api.deps import ServedModel
from serving.api.errors import ApiError
from serving.api.requests import PathId
from serving.api.responses import answer
from serving.api.schemas import ERRORS, NOT_FOUND, ExampleUsersResponse, HistoryResponse
from serving.model import LoadedModel

MAX_EXAMPLE_USERS = 100
MAX_HISTORY = 1000

router = APIRouter(tags=["users"])


@router.get(
    "/v1/users",
    response_model=ExampleUsersResponse,
    responses=ERRORS,
    summary="A few user ids the served version knows (users with training history first)",
)
async def example_users(
    model: ServedModel,
    limit: Annotated[int, Query(ge=1, le=MAX_EXAMPLE_USERS, description="how many ids")] = 20,
) -> Response:
    return answer(
        model, {"model_version": model.version, "num_users": len(model.users), "user_ids": example_user_ids(model, limit)}
    )


@router.get(
    "/v1/users/{user_id}/history",
    response_model=HistoryResponse,
    responses={**ERRORS, **NOT_FOUND},
    summary="Items a known user interacted with in the training data (catalog order), with metadata",
)
async def user_history(
    user_id: PathId,
    model: ServedModel,
    limit: Annotated[int, Query(ge=1, le=MAX_HISTORY, description="most items returned")] = 20,
) -> Response:
    user_row = model.users.get(user_id)
    if user_row is None:
        raise ApiError(404, "unknown_user", "this user is not known to the served model version")
    rows = model.seen.of(user_row)
    items = model.items.records(rows[:limit])
    return answer(model, {"model_version": model.version, "user_id": user_id, "total": len(rows), "items": items})


def example_user_ids(model: LoadedModel, limit: int) -> list[str]:
    """Up to ``limit`` known user ids in users-table order, those with training history first."""
    with_history: list[str] = []
    without: list[str] = []
    for row, uid in enumerate(model.users):
        if model.seen.count(row):
            with_history.append(uid)
            if len(with_history) >= limit:
                break
        elif len(without) < limit:
            without.append(uid)
    return (with_history + without)[:limit]
