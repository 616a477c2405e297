""":class:`LoadError`: a version that must not be served, with a short machine-readable reason."""

from __future__ import annotations


class LoadError(Exception):
    """A version that must not be served; ``reason`` is a short label for metrics and ``/readyz``."""

    def __init__(self, reason: str, detail: str, version: str | None = None) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail
        self.version = version
