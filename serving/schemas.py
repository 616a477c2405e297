"""Request and response models of the v1 API.

The bounds come from the settings (``max_k``, ``max_batch``,
``max_list_items``, ``max_items_per_call``), so the models are made per app by
:func:`make_schemas` and the OpenAPI document shows the real limits.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Strict,
    StrictBool,
    StringConstraints,
    Tag,
    WithJsonSchema,
    model_validator,
)
from pydantic_core import PydanticCustomError

from serving.settings import ServiceSettings

MAX_ID_LENGTH = 256
MAX_FEATURE_TEXT = 2048
MAX_FEATURES = 64
MAX_FILTER_FIELDS = 32


def printable(value: str) -> str:
    if not value.isprintable():
        raise ValueError("must contain printable characters only")
    return value


Identifier = Annotated[str, StringConstraints(min_length=1, max_length=MAX_ID_LENGTH), AfterValidator(printable)]
FeatureText = Annotated[str, StringConstraints(max_length=MAX_FEATURE_TEXT), AfterValidator(printable)]
FieldName = Annotated[str, StringConstraints(min_length=1, max_length=128), AfterValidator(printable)]
Strategy = Literal["personal", "features", "popular", "similar", "session"]

# --------------------------------------------------------------------------- numbers
# Every number a request carries must be finite and fit the type it is used as:
# query features are fed to the tower as float32, filter values are compared with
# float64 item metadata. Anything else (1e400, a 309-digit integer, a feature of
# 1e300 that float32 turns into inf) is a 422 naming the field, never a 500 or an
# answer silently emptied by NaN scores.

FLOAT32_MAX = 3.4028234663852886e38  # numpy.finfo(numpy.float32).max


def fits_float64(value: int) -> int:
    """An integer a float64 can hold (``float(value)`` would overflow past about 1.8e308)."""
    try:
        float(value)
    except OverflowError:
        raise PydanticCustomError(
            "number_too_large", "must be a finite number a float64 can hold (at most about 1.8e308 in magnitude)"
        ) from None
    return value


def fits_float32(value: float) -> float:
    if not math.isfinite(value) or abs(value) > FLOAT32_MAX:
        raise PydanticCustomError(
            "number_too_large", "must be a finite number a float32 can hold (at most about 3.4e38 in magnitude)"
        )
    return value


FiniteFloat = Annotated[float, Field(allow_inf_nan=False)]
Float32 = Annotated[
    float,
    Field(allow_inf_nan=False, json_schema_extra={"minimum": -FLOAT32_MAX, "maximum": FLOAT32_MAX}),
    AfterValidator(fits_float32),
]


def _value_kind(value: Any) -> str:
    """Which branch of a filter value validates ``value`` (one branch, so an error names one problem)."""
    if isinstance(value, str):
        return "text"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    return "number"


FilterValue = Annotated[
    Annotated[Annotated[str, StringConstraints(max_length=MAX_ID_LENGTH), AfterValidator(printable)], Tag("text")]
    | Annotated[int, AfterValidator(fits_float64), Tag("integer")]
    | Annotated[FiniteFloat, Tag("number")]
    | Annotated[bool, Tag("boolean")],
    Discriminator(_value_kind),
    # JSON Schema's "number" covers integers: one anyOf instead of oneOf branches that overlap
    WithJsonSchema({"anyOf": [{"type": "string", "maxLength": MAX_ID_LENGTH}, {"type": "number"}, {"type": "boolean"}]}),
]


def _feature_kind(value: Any) -> str:
    if value is None:
        return "none"
    if isinstance(value, str):
        return "text"
    if isinstance(value, list):
        return "list"
    return "number"


class RangeSpec(BaseModel):
    """A numeric range; either bound may be left out (inclusive)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"min": 1, "max": 20}]})

    min: FiniteFloat | None = None
    max: FiniteFloat | None = None

    @model_validator(mode="after")
    def _bounds(self) -> RangeSpec:
        if self.min is None and self.max is None:
            raise ValueError("give min, max or both")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError("min must not exceed max")
        return self


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
    strategy: Strategy
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
    strategy: Literal["similar"] = "similar"
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
    last_reload_failure: dict | None = None


class IndexInfo(BaseModel):
    """The served version's ScaNN operating point, chosen at build time (docs/CONTRACTS.md section 3)."""

    model_config = ConfigDict(extra="allow")

    kind: str = Field(description="brute_force or tree_ah")
    params: dict = Field(
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
    tuning: dict | None = Field(
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
    metrics: dict = Field(default_factory=dict)


@dataclass(frozen=True)
class Schemas:
    RecommendationRequest: type[BaseModel]
    BatchRequest: type[BaseModel]


def make_schemas(settings: ServiceSettings) -> Schemas:
    max_list, budget = settings.max_list_items, settings.max_items_per_call
    max_recent = settings.max_recent_items
    max_k = min(settings.max_k, budget)  # one request is a call too
    FeatureValue = Annotated[  # noqa: N806
        Annotated[FeatureText, Tag("text")]
        | Annotated[Float32, Tag("number")]
        | Annotated[list[FeatureText], Field(max_length=max_list), Tag("list")]
        | Annotated[None, Tag("none")],
        Discriminator(_feature_kind),
    ]
    FilterSpec = Annotated[  # noqa: N806
        Annotated[list[FilterValue], Field(min_length=1, max_length=max_list), Tag("values")]
        | Annotated[RangeSpec, Tag("range")],
        Discriminator(lambda v: "range" if isinstance(v, (dict, RangeSpec)) else "values"),
    ]

    class RecommendationRequest(BaseModel):
        """What to recommend for whom. Give ``user_id`` for a known user, ``features``
        for someone the model has not seen, or neither for the popular items."""

        model_config = ConfigDict(
            extra="forbid",
            json_schema_extra={
                "examples": [
                    {"user_id": "u000001", "k": 10},
                    {
                        "user_id": "u000001",
                        "k": 5,
                        "exclude_seen": True,
                        "exclude_item_ids": ["i000003"],
                        "filters": {"category": ["books", "toys"], "price": {"min": 1, "max": 20}},
                    },
                    {"features": {"age": 31, "country": "FR", "segment": "premium"}, "k": 10},
                    {"k": 10},
                    # a known user's visit: appended to the stored history (strategy personal)
                    {"user_id": "u000001", "k": 10, "recent_item_ids": ["i000042", "i000007"]},
                    # no user id (or an unknown one): the visit alone is the query (strategy session)
                    {"k": 10, "recent_item_ids": ["i000042", "i000007", "i000013"]},
                    # ids the version does not know are left out and listed in ignored_item_ids
                    {"user_id": "stranger-7", "k": 10, "recent_item_ids": ["i000042", "i-retired-99"]},
                ]
            },
        )

        user_id: Identifier | None = Field(default=None, description="a user id (known users get personal results)")
        features: dict[FieldName, FeatureValue] | None = Field(
            default=None,
            max_length=MAX_FEATURES,
            description="query features: override a known user's, or describe an unknown one "
            "(missing ones take the model's defaults)",
        )
        # strict: what the schema says is an integer or a boolean must be one ("5", 0 or "true" are 422)
        k: Annotated[int, Strict()] = Field(default=settings.default_k, ge=1, le=max_k, description="number of items wanted")
        exclude_seen: StrictBool = Field(default=True, description="leave out items the user interacted with in training")
        exclude_item_ids: list[Identifier] = Field(default_factory=list, max_length=max_list)
        recent_item_ids: list[Identifier] = Field(
            default_factory=list,
            max_length=max_recent,
            description="items of this visit, oldest first (at most max_recent_items): a known user's are appended "
            "to the stored history, otherwise they alone make the query (strategy session); ids the version does "
            "not know are ignored and listed in the answer's ignored_item_ids; with exclude_seen they are left out "
            "of the answer. A version whose query tower reads no history answers 422 history_not_supported",
        )
        filters: dict[FieldName, FilterSpec] | None = Field(
            default=None,
            max_length=MAX_FILTER_FIELDS,
            description='item metadata filters: {"category": ["books"]} (value in list; any overlap for list columns), '
            '{"price": {"min": 1, "max": 20}}',
        )

    class BatchRequest(BaseModel):
        model_config = ConfigDict(
            extra="forbid",
            json_schema_extra={"examples": [{"requests": [{"user_id": "u000001", "k": 5}, {"k": 3}]}]},
        )

        requests: list[RecommendationRequest] = Field(
            min_length=1,
            max_length=settings.max_batch,
            description=f"the requests; their k add up to at most {budget} (max_items_per_call)",
        )

        @model_validator(mode="after")
        def _within_budget(self) -> BatchRequest:
            total = sum(r.k for r in self.requests)
            if total > budget:
                raise PydanticCustomError(
                    "too_many_items",
                    "the requests ask for {total} items in all (k summed); one call may ask for at most "
                    "{limit} (max_items_per_call)",
                    {"total": total, "limit": budget},
                )
            return self

    return Schemas(RecommendationRequest=RecommendationRequest, BatchRequest=BatchRequest)
