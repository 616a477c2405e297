"""Connection limits below the ASGI app: what a slow, idle or half-sent connection may hold.

uvicorn's HTTP protocol (httptools) waits for a request's headers and body
with no time limit, and a connection that sent one byte is never idle to its
keep-alive timer. :class:`GuardedHttpProtocol` adds, per connection:

* an **idle limit**: a connection with no request in progress (fresh, or
  between keep-alive requests) is closed after ``idle_timeout_s``;
* a **read limit**: a request whose headers are not complete within
  ``read_timeout_s`` of its first incomplete chunk gets a 408 JSON error and
  the connection is closed (the body's limit is the guard's, which answers 408
  from inside the app: :mod:`serving.middleware`); a request whose headers
  pass ``max_header_bytes`` gets 431;
* a **connection cap**: past ``max_connections`` open connections, the
  connection that has waited longest without a request being worked on (idle,
  half-sent headers, or a body still arriving) is closed to make room; only
  when every connection is busy with a received request is the new one
  answered 503 and closed. So no number of slow or idle connections keeps a
  new client out, and the process never runs out of file descriptors.

The usual request (headers and body in one read) arms no timer of its own:
the read deadline is armed only when a chunk leaves a request incomplete.
"""

from __future__ import annotations

import asyncio
import logging
import resource
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from serving.api.errors import error_bytes

log = logging.getLogger("serving")

# file descriptors kept free for everything but client connections (model files, TensorFlow, the watcher)
FD_RESERVE = 256
# connections looked at per eviction before a new one is refused (busy ones are moved to the back)
_EVICTION_SCAN = 64


@dataclass(frozen=True)
class ConnectionLimits:
    max_connections: int
    idle_timeout_s: float
    read_timeout_s: float
    max_header_bytes: int


def raise_fd_limit() -> int:
    """Raise this process's soft limit on open files to its hard limit where allowed; the soft limit after."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or hard > soft:
        target = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError) as exc:  # a container may forbid it: keep the soft limit
            log.warning("cannot raise the open-file limit from %d to %d: %s", soft, target, exc)
    return soft


def connection_cap(wanted: int, fd_limit: int) -> int:
    """At most ``wanted`` connections, and never more than the file-descriptor limit leaves after the reserve."""
    return max(1, min(wanted, fd_limit - FD_RESERVE))


def _raw_response(status: int, reason: bytes, code: str, message: str) -> bytes:
    body = error_bytes(code, message)
    head = b"HTTP/1.1 %d %s\r\ncontent-type: application/json\r\ncontent-length: %d\r\nconnection: close\r\n\r\n" % (
        status,
        reason,
        len(body),
    )
    return head + body


class _Connections:
    """The open connections of one server, oldest-waiting first (one per uvicorn server, i.e. per worker)."""

    def __init__(self) -> None:
        self.open: OrderedDict[int, GuardedHttpProtocol] = OrderedDict()

    def add(self, conn: GuardedHttpProtocol) -> None:
        self.open[id(conn)] = conn

    def discard(self, conn: GuardedHttpProtocol) -> None:
        self.open.pop(id(conn), None)

    def waiting_again(self, conn: GuardedHttpProtocol) -> None:
        """A response went out: the connection now waits for a request, so it is the newest waiter."""
        if id(conn) in self.open:
            self.open.move_to_end(id(conn))

    def evict_one(self) -> bool:
        """Close the connection waiting longest without a request being worked on; False if none was found."""
        for _ in range(min(_EVICTION_SCAN, len(self.open))):
            key, conn = next(iter(self.open.items()))
            if conn.busy:
                self.open.move_to_end(key)
                continue
            self.open.pop(key)
            conn.evict()
            return True
        return False


class GuardedHttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with the idle limit, read limit, header size limit and connection cap."""

    def __init__(self, *args: Any, limits: ConnectionLimits, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.limits = limits
        registry = getattr(self.server_state, "recsys_connections", None)
        if registry is None:
            registry = _Connections()
            self.server_state.recsys_connections = registry  # type: ignore[attr-defined]  # one per server
        self.registry: _Connections = registry
        self._read_deadline: asyncio.TimerHandle | None = None
        self._reading = False  # a request has begun and is not fully received
        self._headers_done = False
        self._header_bytes = 0
        self._closed = False
        self._idle_since = 0.0  # loop time the connection last started waiting for a request

    # ------------------------------------------------------------------ state

    @property
    def busy(self) -> bool:
        """Working on a fully received request (its response not yet complete): never evicted."""
        cycle = self.cycle
        return cycle is not None and not cycle.response_complete and not cycle.more_body and not self._reading

    def evict(self) -> None:
        log.debug("closing a waiting connection from %s to make room", self.client)
        self._close(abort=True)

    def _close(self, *, abort: bool = False) -> None:
        self._closed = True
        self._cancel_read_deadline()
        self.registry.discard(self)
        if abort:
            self.transport.abort()
        else:
            self.transport.close()

    def _answer_and_close(self, status: int, reason: bytes, code: str, message: str) -> None:
        if not self.transport.is_closing():
            self.transport.write(_raw_response(status, reason, code, message))
        self._close()

    # ------------------------------------------------------------------ asyncio.Protocol

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]  # uvicorn passes a Transport; its base types the wider BaseTransport
        super().connection_made(transport)
        registry = self.registry
        if len(registry.open) >= self.limits.max_connections and not registry.evict_one():
            self._answer_and_close(503, b"Service Unavailable", "overloaded", "too many open connections; retry shortly")
            return
        registry.add(self)
        # idle until the first byte: uvicorn's keep-alive timer (cancelled by any data) closes it
        self._idle_since = self.loop.time()
        self.timeout_keep_alive_task = self.loop.call_later(self.limits.idle_timeout_s, self.timeout_keep_alive_handler)

    def connection_lost(self, exc: Exception | None) -> None:
        self._closed = True
        self._cancel_read_deadline()
        self.registry.discard(self)
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._closed:
            return
        super().data_received(data)  # (any data cancels uvicorn's keep-alive timer)
        if self._closed or self.transport.is_closing():
            return
        if not self._reading:
            if self.timeout_keep_alive_task is None and not self.busy:
                # bytes that begin no request (blank lines) do not make a connection less idle
                left = self._idle_since + self.limits.idle_timeout_s - self.loop.time()
                self.timeout_keep_alive_task = self.loop.call_later(max(left, 0.0), self.timeout_keep_alive_handler)
            return
        # this chunk left a request incomplete
        if self._read_deadline is None:
            self._read_deadline = self.loop.call_later(self.limits.read_timeout_s, self._read_timed_out)
        if not self._headers_done:
            self._header_bytes += len(data)
            if self._header_bytes > self.limits.max_header_bytes:
                limit = self.limits.max_header_bytes
                self._answer_and_close(
                    431, b"Request Header Fields Too Large", "headers_too_large", f"request headers exceed {limit} bytes"
                )

    # ------------------------------------------------------------------ parser callbacks

    def on_message_begin(self) -> None:
        self._reading = True
        self._headers_done = False
        super().on_message_begin()

    def on_headers_complete(self) -> None:
        self._headers_done = True
        self._header_bytes = 0
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._reading = False
        self._cancel_read_deadline()
        super().on_message_complete()

    def on_response_complete(self) -> None:
        self.registry.waiting_again(self)
        self._idle_since = self.loop.time()
        super().on_response_complete()

    # ------------------------------------------------------------------ the read limit

    def _cancel_read_deadline(self) -> None:
        if self._read_deadline is not None:
            self._read_deadline.cancel()
            self._read_deadline = None

    def _read_timed_out(self) -> None:
        self._read_deadline = None
        if self._closed or not self._reading:
            return
        limit = self.limits.read_timeout_s
        if not self._headers_done:
            self._answer_and_close(408, b"Request Timeout", "request_timeout", f"request headers not received within {limit:g} s")
            return
        # the body is late: the guard answers 408 from inside the app; close the connection
        # in case the request never reaches it (a probe path, or a response already started)
        self._read_deadline = self.loop.call_later(limit, self._body_backstop)

    def _body_backstop(self) -> None:
        self._read_deadline = None
        if not self._closed and self._reading:
            self._close(abort=True)


@dataclass(frozen=True)
class GuardedProtocolFactory:
    """What uvicorn's ``http`` option takes: builds a :class:`GuardedHttpProtocol` per connection.

    A frozen dataclass (not a closure) so that it pickles into worker processes and compares by value."""

    limits: ConnectionLimits

    def __call__(self, *args: Any, **kwargs: Any) -> GuardedHttpProtocol:
        return GuardedHttpProtocol(*args, limits=self.limits, **kwargs)
