"""The served version: :class:`ModelHolder` keeps one reference to an immutable
:class:`~serving.model.LoadedModel`. A swap is one assignment, so a request that
took the reference finishes on that version. It also keeps what ``/readyz``
reports: the last refused version (:class:`ReloadFailure`), what ``LATEST``
named at the last poll, and whether the service is stopping."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from serving.model import LoadedModel


@dataclass(frozen=True)
class ReloadFailure:
    version: str | None
    reason: str
    detail: str
    at: float

    def as_dict(self) -> dict[str, Any]:
        return {"version": self.version, "reason": self.reason, "detail": self.detail, "at": self.at}


class ModelHolder:
    """The served version (or None) plus what /readyz reports."""

    def __init__(self) -> None:
        self._model: LoadedModel | None = None
        self.last_failure: ReloadFailure | None = None
        self.latest_name: str | None = None  # what LATEST named at the last poll
        self.shutting_down = False

    @property
    def model(self) -> LoadedModel | None:
        return self._model

    def swap(self, model: LoadedModel) -> None:
        self._model = model  # a single reference assignment: atomic for readers

    @property
    def ready(self) -> bool:
        return self._model is not None and not self.shutting_down
