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
import resource
from typing import Any

from fastapi import FastAPI

from serving.connections import ConnectionLimits, GuardedProtocolFactory, connection_cap, raise_fd_limit
from serving.settings import ServiceSettings

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


def uvicorn_options(settings: ServiceSettings, fd_limit: int | None = None) -> dict[str, Any]:
    """The keyword arguments uvicorn runs the service with (the load benchmark's HTTP ceiling uses them too).

    The HTTP protocol is :class:`serving.connections.GuardedHttpProtocol` (idle and read
    limits, header size, connection cap below ``fd_limit``, the open-file limit, which is
    read when not given); uvicorn's own limits are set as a second line behind it."""
    limit = fd_limit if fd_limit is not None else resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    limits = ConnectionLimits(
        max_connections=connection_cap(settings.max_connections, limit),
        idle_timeout_s=settings.idle_timeout_s,
        read_timeout_s=settings.request_read_timeout_s,
        max_header_bytes=settings.max_header_bytes,
    )
    return {
        "host": settings.host,
        "port": settings.port,
        "log_level": settings.log_level,
        "access_log": settings.access_log,
        "proxy_headers": False,
        "server_header": False,
        "timeout_graceful_shutdown": max(settings.request_timeout_s * 2, settings.shutdown_grace_s + 5),
        "http": GuardedProtocolFactory(limits),
        "timeout_keep_alive": settings.idle_timeout_s,
        "h11_max_incomplete_event_size": settings.max_header_bytes,
        # a backstop only: the guarded protocol keeps connections under the cap and the guard
        # answers 503 past max_concurrency requests in flight
        "limit_concurrency": limits.max_connections + settings.max_concurrency,
    }


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
