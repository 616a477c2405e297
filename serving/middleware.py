"""The guard: one pure-ASGI middleware in front of every route.

In order, for every HTTP request except the probes (``/healthz``, ``/readyz``,
``/metrics``, which only get timing and the version header):

1. API key (when configured): ``X-API-Key`` compared in constant time -> 401;
2. body: read here within ``request_read_timeout_s`` (-> 408 ``request_timeout``,
   connection closed), counting the bytes actually received (chunked bodies
   without Content-Length too), and refused with 413 once it passes
   ``max_body_bytes``; the app then reads the buffered copy. A request still
   sending its body is not yet in flight: slow senders never fill the cap;
3. concurrency cap: more than ``max_concurrency`` requests in flight -> 503
   ``overloaded`` at once (:class:`Pressure` counts them; ``/readyz`` reads it);
4. deadline: the request gets ``request_timeout_s`` -> 504 ``timeout``;
5. anything the app raises becomes a 500 ``internal_error`` without details (logged here).

Connection-level limits (idle connections, slow headers, the connection cap)
sit below the app, in :mod:`serving.connections`.

Every response gets ``X-Model-Version``: the routes that answer from a version
name it (:func:`serving.api.responses.answer`), every other response gets the
version being served; its latency is recorded by route template.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from serving.api.errors import error_bytes
from serving.metrics import ServiceMetrics
from serving.settings import ServiceSettings
from serving.version.holder import ModelHolder

log = logging.getLogger("serving")

PROBES = frozenset({"/healthz", "/readyz", "/metrics"})


class _TooLarge(Exception):
    pass


class _Disconnected(Exception):
    pass


class Pressure:
    """Requests in flight (body received, answer not yet sent) against the cap: shared by the guard and ``/readyz``."""

    def __init__(self, max_concurrency: int) -> None:
        self.max_concurrency = max_concurrency
        self.in_flight = 0

    @property
    def saturated(self) -> bool:
        return self.in_flight >= self.max_concurrency


class GuardMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        *,
        settings: ServiceSettings,
        metrics: ServiceMetrics,
        holder: ModelHolder,
        pressure: Pressure | None = None,
    ) -> None:
        self.app = app
        self.metrics = metrics
        self.holder = holder
        self.pressure = pressure or Pressure(settings.max_concurrency)
        self.max_body = settings.max_body_bytes
        self.timeout = settings.request_timeout_s
        self.read_timeout = settings.request_read_timeout_s
        self.api_key = settings.api_key.get_secret_value().encode() if settings.api_key is not None else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        started = False
        status = 500

        async def send_with_version(message: Message) -> None:
            nonlocal started, status
            if message["type"] == "http.response.start":
                started = True
                status = int(message["status"])
                model = self.holder.model
                if model is not None:
                    headers = list(message.get("headers") or [])
                    if not any(k.lower() == b"x-model-version" for k, _ in headers):
                        headers.append((b"x-model-version", str(model.version).encode("latin-1")))
                        message["headers"] = headers
            await send(message)

        async def reply(code: int, error: str, text: str, headers: list[tuple[bytes, bytes]] | None = None) -> None:
            body = error_bytes(error, text)
            await send_with_version(
                {
                    "type": "http.response.start",
                    "status": code,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
                    + (headers or []),
                }
            )
            await send_with_version({"type": "http.response.body", "body": body})

        counted = False
        try:
            if scope["path"] in PROBES:
                await self.app(scope, receive, send_with_version)
                return
            if self.api_key is not None and not self._key_ok(scope):
                self.metrics.rejected.labels(reason="unauthorized").inc()
                await reply(401, "unauthorized", "missing or wrong X-API-Key", [(b"www-authenticate", b"ApiKey")])
                return
            try:
                async with asyncio.timeout(self.read_timeout):
                    replay = await self._buffer(scope, receive)
            except _TooLarge:
                self.metrics.rejected.labels(reason="payload_too_large").inc()
                await reply(413, "payload_too_large", f"request body exceeds {self.max_body} bytes", [(b"connection", b"close")])
                return
            except _Disconnected:
                return
            except ValueError:
                await reply(400, "bad_request", "invalid Content-Length header")
                return
            except TimeoutError:
                self.metrics.rejected.labels(reason="request_timeout").inc()
                message = f"request body not received within {self.read_timeout:g} s"
                await reply(408, "request_timeout", message, [(b"connection", b"close")])
                return
            pressure = self.pressure
            if pressure.in_flight >= pressure.max_concurrency:
                self.metrics.rejected.labels(reason="overloaded").inc()
                await reply(503, "overloaded", "too many requests in flight; retry shortly", [(b"retry-after", b"1")])
                return
            pressure.in_flight += 1
            counted = True
            self.metrics.in_flight.inc()
            try:
                async with asyncio.timeout(self.timeout) as deadline:
                    await self.app(scope, replay, send_with_version)
            except TimeoutError:
                if not deadline.expired():
                    raise
                self.metrics.rejected.labels(reason="timeout").inc()
                if started:
                    raise
                await reply(504, "timeout", f"no answer within {self.timeout:g} s")
        except Exception:
            log.exception("internal error on %s %s", scope.get("method"), scope.get("path"))
            if not started:
                await reply(500, "internal_error", "internal server error")
        finally:
            if counted:
                self.pressure.in_flight -= 1
                self.metrics.in_flight.dec()
            route = scope.get("route")
            template = getattr(route, "path", None) or ("probe" if scope["path"] in PROBES else "unmatched")
            self.metrics.request_took(scope.get("method", ""), template, status, time.perf_counter() - start)

    def _key_ok(self, scope: Scope) -> bool:
        given = b""
        for name, value in scope.get("headers") or ():
            if name.lower() == b"x-api-key":
                given = value
                break
        assert self.api_key is not None
        return hmac.compare_digest(given, self.api_key)

    async def _buffer(self, scope: Scope, receive: Receive) -> Receive:
        """Read the whole body (bounded), then hand the app a receive that replays it."""
        for name, value in scope.get("headers") or ():
            if name.lower() == b"content-length":
                declared = int(value.decode("latin-1").strip())  # ValueError -> 400
                if declared < 0:
                    raise ValueError("negative content-length")
                if declared > self.max_body:
                    raise _TooLarge()
        chunks: list[bytes] = []
        total = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise _Disconnected()
            if message["type"] != "http.request":
                continue
            body = message.get("body", b"")
            total += len(body)
            if total > self.max_body:
                raise _TooLarge()
            if body:
                chunks.append(body)
            if not message.get("more_body", False):
                break
        data = b"".join(chunks)
        sent = False

        async def replay() -> Message:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": data, "more_body": False}
            return await receive()

        return replay
