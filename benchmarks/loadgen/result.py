"""What the load generator sends (:class:`RequestSpec`) and what it counts (:class:`LoadResult`)."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class RequestSpec:
    """One request the connections send (they cycle through a list of these)."""

    method: str = "GET"
    path: str = "/"
    body: bytes | None = None
    content_type: str = "application/json"

    @staticmethod
    def post_json(path: str, payload: Any) -> RequestSpec:
        return RequestSpec("POST", path, json.dumps(payload, separators=(",", ":")).encode())


@dataclass
class LoadResult:
    """One bounded run. ``completed`` counts answers of any status; ``failures`` non-2xx
    answers, timeouts and connection errors; latencies are over answered requests."""

    engine: str
    url: str
    concurrency: int
    processes: int  # wrk threads
    elapsed_s: float
    sent: int
    completed: int
    ok: int  # 2xx
    failures: int
    failure_kinds: dict[str, int]
    status_counts: dict[str, int]
    versions: dict[str, int]  # X-Model-Version -> answers
    latency_ms: dict[str, float]  # p50, p95, p99, max, mean
    rps: float  # answered / elapsed
    client_cpu_s: float | None = None
    stop_reason: str = ""
    wall_s: float = 0.0  # wall seconds of the run, wrk's start and exit included
    notes: list[str] = field(default_factory=list)

    @property
    def failure_ratio(self) -> float:
        return self.failures / self.sent if self.sent else 0.0

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["failure_ratio"] = self.failure_ratio
        return out
