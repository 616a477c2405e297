"""What the retrieval path raises; free of HTTP types (the API maps them to responses)."""

from __future__ import annotations


class InvalidQuery(Exception):
    """The request cannot be answered by the served version (the API answers 422).

    ``code`` is machine-readable (``invalid_features``, ``invalid_filter``,
    ``history_not_supported``); ``message`` names the bad value."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class ServiceStopping(Exception):
    """The micro-batcher takes no more work: the service is shutting down (the API answers 503)."""


class JobAbandoned(Exception):
    """The result of a job whose request gave up (its deadline passed) while it was computed: nobody waits for it."""
