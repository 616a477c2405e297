"""Response models of the v1 API (what the OpenAPI document shows; the routes answer with
:class:`~serving.api.responses.JSONBytesResponse` built from plain dicts).

The request models, whose bounds come from the settings, are in :mod:`serving.api.requests`.
"""

from __future__ import annotations

from typing import Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field

from serving.retrieval.strategy import Strategy

# the answers' strategy: the values of the retrieval path's Enum, inline in the document
# (a field of the Enum type would add a component of its own to it)
StrategyField = Literal[Strategy.PERSONAL, Strategy.FEATURES, Strategy.POPULAR, Strategy.SIMILAR, Strategy.SESSION]
if set(get_args(StrategyField)) != set(Strategy):
    raise RuntimeError("serving.api.schemas.StrategyField must list every Strategy")


class RecommendedItem(BaseModel):
    """One recommended item: id, score, 1-based rank, then the item's metadata columns."""

    model_config = ConfigDict(
        extra="allow",
        json_schema_extra={
            "examples": [
                {
                    "item_id": "i000042",
                    "score": 3.17,
                    "rank": 1,
                    "title": "Pageturn classic cookbook",
                    "category": "books",
                    "tags": ["cooking"],
                    "price": 19.81,
                    "brand": "Pageturn",
                    "popularity": 57,
                }
            ]
        },
    )

    item_id: str
    score: float
    rank: int


class RecommendationResponse(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "model_version": "1795425276",
                    "user_id": "u000001",
                    "strategy": "personal",
                    "items": [{"item_id": "i000042", "score": 3.17, "rank": 1, "category": "books", "popularity": 57}],
                },
                {
                    "model_version": "1795425276",
                    "user_id": None,
                    "strategy": "session",
                    "items": [{"item_id": "i000019", "score": 2.41, "rank": 1, "category": "toys", "popularity": 12}],
                    "ignored_item_ids": ["i-retired-99"],
                },
            ]
        }
    )

    model_version: str
    user_id: str | None
    strategy: StrategyField
    items: list[RecommendedItem]
    ignored_item_ids: list[str] | None = Field(
        default=None,
        description="present when the request gave recent_item_ids: those the served version does not know "
        "(left out of the query, not an error)",
    )


class BatchResponse(BaseModel):
    model_version: str
    results: list[RecommendationResponse]


class SimilarItemsResponse(BaseModel):
    model_version: str
    item_id: str
    strategy: Literal[Strategy.SIMILAR] = Strategy.SIMILAR
    items: list[RecommendedItem]


class ErrorDetail(BaseModel):
    code: str
    message: str


class ErrorResponse(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"error": {"code": "model_not_loaded", "message": "no model version is loaded yet"}}]}
    )

    error: ErrorDetail


class HealthResponse(BaseModel):
    status: Literal["alive"]


class ReadyResponse(BaseModel):
    model_config = ConfigDict(extra="allow")

    status: Literal["ready", "not_ready"]
    reason: str | None = None
    model_version: str | None = None
    latest: str | None = None
    instance: str
    last_reload_failure: dict[str, Any] | None = None


class IndexInfo(BaseModel):
    """The served version's ScaNN operating point, chosen at build time (docs/CONTRACTS.md section 3)."""

    model_config = ConfigDict(extra="allow")

    kind: str = Field(description="brute_force or tree_ah")
    params: dict[str, Any] = Field(
        default_factory=dict,
        description="what the service searches with, exactly: num_leaves, num_leaves_to_search, reorder (candidates "
        "re-scored exactly per query), ...; {} for brute force",
    )
    recall_at_10_vs_exact: float | None = Field(
        default=None, description="recall@10 against exact search, known users' checking queries"
    )
    similar_recall_at_10_vs_exact: float | None = Field(default=None, description="the same for items as similar-items queries")
    recall_at_100_vs_exact: float | None = Field(
        default=None, description="recall@100 against exact search, known users' checking queries"
    )
    us_per_query: float | None = Field(
        default=None, description="microseconds of CPU per query (search + re-scoring) on the build machine"
    )
    meets_target: bool | None = Field(
        default=None, description="whether the build reached its recall target within its time budget"
    )
    build_seconds: float | None = None
    tuning: dict[str, Any] | None = Field(
        default=None, description="target, budget, reason and queries of the tuning; frontier_tried and trees_tried: counts"
    )


class ModelResponse(BaseModel):
    model_config = ConfigDict(extra="allow")

    model_version: str
    created_at: str | None = None
    kind: str | None = Field(
        default=None, description="how the version was made: training or catalog_update (null: not recorded)"
    )
    parent_version: str | None = Field(default=None, description="the version a catalog update was made from (null otherwise)")
    embedding_dim: int
    num_items: int
    num_users: int | None = None
    index: IndexInfo | None = None
    metrics: dict[str, Any] = Field(default_factory=dict)


# --------------------------------------------------------------------------- the demo's user routes


class ExampleUsersResponse(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"model_version": "1795425276", "num_users": 943, "user_ids": ["u000001", "u000002"]}]}
    )

    model_version: str
    num_users: int
    user_ids: list[str]


class HistoryItem(BaseModel):
    """An item the user interacted with in training: id, then the item's metadata columns."""

    model_config = ConfigDict(
        extra="allow",
        json_schema_extra={"examples": [{"item_id": "i000042", "title": "Pageturn classic cookbook", "category": "books"}]},
    )

    item_id: str


class HistoryResponse(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "model_version": "1795425276",
                    "user_id": "u000001",
                    "total": 31,
                    "items": [{"item_id": "i000042", "title": "Pageturn classic cookbook", "category": "books"}],
                }
            ]
        }
    )

    model_version: str
    user_id: str
    total: int
    items: list[HistoryItem]


# --------------------------------------------------------------------------- error responses in the document

ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorResponse, "description": "missing or wrong X-API-Key (when a key is configured)"},
    413: {"model": ErrorResponse, "description": "request body too large"},
    422: {"model": ErrorResponse, "description": "invalid request"},
    503: {"model": ErrorResponse, "description": "no model loaded yet, or overloaded"},
    504: {"model": ErrorResponse, "description": "no answer within the deadline"},
}
NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"model": ErrorResponse, "description": "unknown id"}}
