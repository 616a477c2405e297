"""Process entry points: ``run(overrides)`` (used by ``recsys serve``) and the
``app_from_env`` factory uvicorn workers import.

With one worker the app object is handed to uvicorn directly. With several,
uvicorn needs an import string: each worker process imports
``serving.main:app_from_env`` (``factory=True``), which builds its settings from
the ``RECSYS_*`` environment; ``run`` writes the resolved settings there first,
so command-line overrides reach every worker. Each worker loads and watches the
model on its own.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from fastapi import FastAPI

from serving.connections import raise_fd_limit
from serving.settings import ServiceSettings
from serving.tuning import uvicorn_options

log = logging.getLogger("serving")


def _configure_logging(level: str) -> None:
    logging.basicConfig(level=level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("serving").setLevel(level.upper())


def build_settings(overrides: dict[str, Any] | None = None) -> ServiceSettings:
    """Settings from the environment, with ``overrides`` (e.g. command-line flags) winning."""
    return ServiceSettings(**{k: v for k, v in (overrides or {}).items() if v is not None})


def app_from_env() -> FastAPI:
    """Factory for uvicorn workers (``serving.main:app_from_env``, ``factory=True``)."""
    from serving.app import create_app

    settings = ServiceSettings()
    _configure_logging(settings.log_level)
    return create_app(settings)


def run(overrides: dict[str, Any] | None = None) -> None:
    """Start uvicorn with the settings (``overrides`` beat the environment)."""
    import uvicorn

    settings = build_settings(overrides)
    _configure_logging(settings.log_level)
    common = uvicorn_options(settings, raise_fd_limit())  # workers inherit the raised limit
    log.info(
        "serving %s on %s:%d with %d worker(s), at most %d connections each",
        settings.model_root,
        settings.host,
        settings.port,
        settings.workers,
        common["http"].limits.max_connections,
    )
    if settings.workers == 1:
        from serving.app import create_app

        uvicorn.run(create_app(settings), **common)
        return
    # Workers are separate processes: hand them the resolved settings through the environment.
    os.environ.update(settings.to_env())
    uvicorn.run("serving.main:app_from_env", factory=True, workers=settings.workers, **common)
