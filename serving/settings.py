"""Service settings: the one pydantic-settings object (DESIGN.md section 6).

Every value comes from the environment with the prefix ``RECSYS_`` (for
example ``RECSYS_MODEL_ROOT``, ``RECSYS_MAX_K``, ``RECSYS_API_KEY``) or from
keyword arguments, which win over the environment. Nothing else in ``serving``
reads ``os.environ``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


class ServiceSettings(BaseSettings):
    """Everything the HTTP service can be configured with."""

    model_config = SettingsConfigDict(env_prefix="RECSYS_", extra="ignore", frozen=True)

    model_root: Path = Field(default=Path("models"), description="folder holding <version>/ folders and LATEST")
    host: str = Field(default="127.0.0.1", description="bind address")
    port: int = Field(default=8000, ge=0, le=65535, description="bind port (0 = any free port)")
    workers: int = Field(default=1, ge=1, le=64, description="uvicorn worker processes; each loads and watches on its own")
    poll_interval_s: float = Field(default=5.0, gt=0, le=3600, description="how often LATEST is checked")
    max_k: int = Field(default=1000, ge=1, le=100_000, description="largest k a request may ask for")
    default_k: int = Field(default=10, ge=1, description="k when a request gives none")
    max_batch: int = Field(default=64, ge=1, le=10_000, description="most requests in one batch call")
    max_list_items: int = Field(default=1000, ge=1, le=1_000_000, description="most entries in an exclusion or filter list")
    max_recent_items: int = Field(
        default=50, ge=1, le=10_000, description="most recent_item_ids one recommendation request may carry (422 above)"
    )
    max_items_per_call: int = Field(
        default=2000, ge=1, description="most answer items one call may ask for: k, summed over a batch call (422 above)"
    )
    max_body_bytes: int = Field(default=64 * 1024, ge=1024, description="largest request body accepted (413 above)")
    api_key: SecretStr | None = Field(default=None, description="if set, X-API-Key must match (except health/metrics)")
    cors_origins: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="origins allowed by CORS (JSON list or comma separated); empty = no CORS"
    )
    microbatch_max_wait_ms: float = Field(
        default=0.0, ge=0, le=1000, description="extra wait for batch mates once the inference thread is free (0: none)"
    )
    min_index_recall: float = Field(
        default=0.9,
        ge=0,
        le=1,
        description="refuse to load a version whose index records a recall@10 vs exact search below this (manifest "
        "index.recall_at_10_vs_exact and similar_recall_at_10_vs_exact); the served version stays. 0: no floor",
    )
    user_vectors_max_mb: float = Field(
        default=512, ge=0, description="precompute known users' query vectors at load when they fit in this many MiB (0: never)"
    )
    inference_threads: int = Field(
        default=1, ge=1, le=16, description="threads running micro-batches at once (ScaNN and TensorFlow let go of the GIL)"
    )
    gil_switch_interval_ms: float = Field(
        default=0.25,
        gt=0,
        le=100,
        description="how long Python lets one thread run before a waiting one gets the GIL: short lets the "
        "inference thread start and hand back a batch while the event loop is busy (Python's default is 5)",
    )
    microbatch_max_size: int = Field(default=64, ge=1, le=4096, description="most queries in one model call")
    max_concurrency: int = Field(default=256, ge=1, description="requests in flight per worker; more get 503 at once")
    request_timeout_s: float = Field(default=5.0, gt=0, le=600, description="per-request deadline (504 after)")
    request_read_timeout_s: float = Field(
        default=10.0, gt=0, le=600, description="a request's headers, and then its body, must arrive within this (408 after)"
    )
    idle_timeout_s: float = Field(
        default=15.0, gt=0, le=3600, description="a connection with no request in progress is closed after this long"
    )
    max_connections: int = Field(
        default=4096,
        ge=1,
        description="open connections per worker (also kept below the open-file limit); past it the connection "
        "waiting longest without a request being worked on is closed",
    )
    max_header_bytes: int = Field(default=16 * 1024, ge=1024, le=1 << 20, description="largest request head (431 above)")
    docs_enabled: bool = Field(default=True, description="serve /docs, /redoc and /openapi.json")
    demo_enabled: bool = Field(
        default=False,
        description="development tool: serve the demo page at / and the routes it needs that expose customer data "
        "(GET /v1/users, GET /v1/users/{user_id}/history); off unless switched on",
    )
    log_level: Literal["critical", "error", "warning", "info", "debug"] = "info"
    access_log: bool = Field(
        default=False,
        description="uvicorn's line per request (costs about a tenth of the CPU under load; /metrics has latencies)",
    )
    shutdown_grace_s: float = Field(
        default=0.0, ge=0, le=300, description="on SIGTERM/SIGINT: seconds /readyz answers 503 before the server stops"
    )

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _split_origins(cls, value: Any) -> Any:
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                return json.loads(text)
            return [part.strip() for part in text.split(",") if part.strip()]
        return value

    @field_validator("log_level", mode="before")
    @classmethod
    def _lower_level(cls, value: Any) -> Any:
        return value.lower() if isinstance(value, str) else value

    @field_validator("api_key", mode="before")
    @classmethod
    def _empty_key_is_none(cls, value: Any) -> Any:
        if isinstance(value, str) and not value:
            return None
        return value

    @model_validator(mode="after")
    def _consistent(self) -> ServiceSettings:
        if self.default_k > self.max_k:
            raise ValueError(f"default_k ({self.default_k}) must not exceed max_k ({self.max_k})")
        if self.default_k > self.max_items_per_call:
            raise ValueError(f"default_k ({self.default_k}) must not exceed max_items_per_call ({self.max_items_per_call})")
        return self

    @property
    def largest_k(self) -> int:
        """The largest ``k`` one request may ask for: ``max_k``, within a call's ``max_items_per_call``."""
        return min(self.max_k, self.max_items_per_call)

    def to_env(self) -> dict[str, str]:
        """The settings as ``RECSYS_*`` variables (to hand them to worker processes)."""
        out: dict[str, str] = {}
        for name in type(self).model_fields:
            value = getattr(self, name)
            if value is None:
                continue
            if isinstance(value, SecretStr):
                text = value.get_secret_value()
            elif isinstance(value, list):
                text = json.dumps(value)
            elif isinstance(value, bool):
                text = "true" if value else "false"
            else:
                text = str(value)
            out[f"RECSYS_{name.upper()}"] = text
        return out
