"""Request models of the v1 API, and the checked types they are made of.

The bounds come from the settings (``max_k``, ``max_batch``,
``max_list_items``, ``max_items_per_call``), so the models are made per app by
:func:`request_models` and the OpenAPI document shows the real limits. Routes
are typed with the protocols the models satisfy (:class:`RecommendationQuery`,
:class:`BatchQuery`); the router that registers them tells FastAPI the app's
models (:func:`serving.api.routes.recommendations.router`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Annotated, Any, NamedTuple, Protocol, TypeVar

from fastapi import Path
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

from serving.retrieval.plan import FLOAT32_MAX, RecommendationQuery
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
PathId = Annotated[str, Path(min_length=1, max_length=MAX_ID_LENGTH), AfterValidator(printable)]

# --------------------------------------------------------------------------- numbers
# Every number a request carries must be finite and fit the type it is used as:
# query features are fed to the tower as float32, filter values are compared with
# float64 item metadata. Anything else (1e400, a 309-digit integer, a feature of
# 1e300 that float32 turns into inf) is a 422 naming the field, never a 500 or an
# answer silently emptied by NaN scores.


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


class BatchQuery(Protocol):
    """What the batch route reads of its request."""

    @property
    def requests(self) -> Sequence[RecommendationQuery]: ...


class RequestModels(NamedTuple):
    """One app's request models (their bounds from its settings)."""

    recommendation: type[BaseModel]  # RecommendationRequest: satisfies RecommendationQuery
    batch: type[BaseModel]  # BatchRequest: satisfies BatchQuery


Endpoint = TypeVar("Endpoint", bound=Callable[..., Any])


def body_model(model: type[BaseModel]) -> Callable[[Endpoint], Endpoint]:
    """Decorator (below the route's): FastAPI takes the request body's model from the ``body``
    annotation; an endpoint is annotated with the protocol its model satisfies (what the type
    checker sees), and this puts the app's model, made by :func:`request_models`, in its place."""

    def apply(endpoint: Endpoint) -> Endpoint:
        endpoint.__annotations__["body"] = model
        return endpoint

    return apply


def request_models(settings: ServiceSettings) -> RequestModels:
    """The request models with ``settings``' bounds (``max_k``, ``max_list_items``, ...)."""
    max_list, budget = settings.max_list_items, settings.max_items_per_call
    max_recent = settings.max_recent_items
    max_k = settings.largest_k  # one request is a call too
    FeatureValue = Annotated[  # noqa: N806  # a type alias (local: its bounds are the settings), named as one
        Annotated[FeatureText, Tag("text")]
        | Annotated[Float32, Tag("number")]
        | Annotated[list[FeatureText], Field(max_length=max_list), Tag("list")]
        | Annotated[None, Tag("none")],
        Discriminator(_feature_kind),
    ]
    FilterSpec = Annotated[  # noqa: N806  # a type alias (local: its bounds are the settings), named as one
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

    return RequestModels(recommendation=RecommendationRequest, batch=BatchRequest)
