"""Where load may go (loopback only) and how long a run may last."""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

HARD_MAX_DURATION_S = 900.0  # no run lasts longer than this, whatever is asked


class NotLoopbackError(ValueError):
    """The target is not a loopback address: the generator refuses to send anything."""


def loopback_target(url: str) -> tuple[str, int, str]:
    """(host, port, base path) of a loopback http:// URL; raises :class:`NotLoopbackError` otherwise."""
    parts = urlsplit(url)
    if parts.scheme != "http":
        raise NotLoopbackError(f"only plain http:// on loopback is supported, not {parts.scheme or 'no'} scheme: {url!r}")
    host = parts.hostname or ""
    if host == "localhost":
        host = "127.0.0.1"
    try:
        addr = ipaddress.ip_address(host)
    except ValueError as exc:
        raise NotLoopbackError(f"refusing non-loopback host {host!r} (give 127.0.0.1 or ::1)") from exc
    if not addr.is_loopback:
        raise NotLoopbackError(f"refusing non-loopback address {host} (this generator only loads 127.0.0.0/8 and ::1)")
    if parts.username or parts.password:
        raise NotLoopbackError("credentials in the URL are not supported")
    try:
        port = parts.port or 80
    except ValueError as exc:
        raise NotLoopbackError(f"bad port in {url!r}") from exc
    return str(addr), port, parts.path.rstrip("/")


def bounded_duration(duration_s: float) -> float:
    """``duration_s`` capped at :data:`HARD_MAX_DURATION_S`; a non-positive duration is an error."""
    if duration_s <= 0:
        raise ValueError(f"duration must be positive, not {duration_s!r}")
    return min(float(duration_s), HARD_MAX_DURATION_S)
