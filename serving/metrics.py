"""Prometheus metrics, one registry per app (so several apps can live in one process).

With several uvicorn workers each process has its own registry: a scrape sees the
worker that answered it.
"""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)


class ServiceMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.request_seconds = Histogram(
            "recsys_request_duration_seconds",
            "HTTP request latency by route template",
            ["method", "route", "status"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.recommendations = Counter("recsys_recommendations_total", "Rankings answered, by strategy", ["strategy"], registry=r)
        self.model_version = Gauge("recsys_model_version", "Version number of the served model (0 = none)", registry=r)
        self.model_info = Info("recsys_model", "The served model version", registry=r)
        self.model_loaded_at = Gauge("recsys_model_loaded_timestamp_seconds", "When the served version was loaded", registry=r)
        self.reloads = Counter(
            "recsys_model_reloads_total", "Version loads by outcome and failure reason", ["outcome", "reason"], registry=r
        )
        self.load_seconds = Histogram(
            "recsys_model_load_seconds",
            "Time to verify, load and warm a version",
            registry=r,
            buckets=(0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300),
        )
        self.batch_size = Histogram(
            "recsys_microbatch_size", "Queries per micro-batch model call", buckets=_BATCH_BUCKETS, registry=r
        )
        self.in_flight = Gauge("recsys_requests_in_flight", "Requests being handled", registry=r)
        self.rejected = Counter("recsys_requests_rejected_total", "Requests refused by the guards", ["reason"], registry=r)
        self._children: dict[tuple[Any, ...], Any] = {}
        self.ready = Gauge("recsys_ready", "1 when a verified model is served and the service is not stopping", registry=r)

    def _child(self, metric: Any, *labels: Any) -> Any:
        """``metric.labels(*labels)``, cached: these run for every request. The cache is bounded
        (label values come from routes, methods, codes and strategies: a few dozen in practice)."""
        key = (id(metric), *labels)
        child = self._children.get(key)
        if child is None:
            child = metric.labels(*(str(v) for v in labels))
            if len(self._children) < 4096:
                self._children[key] = child
        return child

    def answered(self, strategy: str) -> None:
        """Count one ranking of ``strategy``."""
        self._child(self.recommendations, strategy).inc()

    def request_took(self, method: str, route: str, status: int, seconds: float) -> None:
        """Record one HTTP request's latency by method, route template and status."""
        self._child(self.request_seconds, method, route, status).observe(seconds)

    def served(self, version: str, created_at: str | None) -> None:
        try:
            self.model_version.set(float(version))
        except ValueError:
            self.model_version.set(0)
        self.model_info.info({"version": version, "created_at": str(created_at or "")})
