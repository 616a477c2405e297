"""What the web framework costs per request, in-process: no socket, no HTTP parsing.

``python -m benchmarks.asgi_overhead`` calls ASGI apps directly in one event loop
(1,000-request chunks after a warm-up; best and median chunk) and reports µs per
request for:

- route shapes on FastAPI, one trivial ``GET``: declared on the app's router or
  through ``app.include_router``, with 0, 1 or 2 dependencies (each reading
  ``request.app.state``), and with one dependency while ``app.dependency_overrides``
  holds an entry;
- the serving ceiling (:func:`benchmarks.serving.ceiling.ceiling_app`: the
  service's app, guard middleware included, with a fixed answer) on
  ``POST /v1/recommendations``.

These are the figures behind the shape of ``serving/app.py`` (routes declared on
the app's router, one dependency on the retrieval routes) and of the ceiling
(no dependency overrides). Timings, not assertions: compare runs made side by side.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import statistics
import time
from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message

from benchmarks.common import load_average, write_results


async def _first(request: Request) -> int:
    return int(request.app.state.first)


async def _second(request: Request) -> int:
    return int(request.app.state.second)


def shape_app(included: bool, dependencies: int, overridden: bool = False) -> FastAPI:
    """One ``GET /x`` answering ``1`` with ``dependencies`` (0-2) dependencies."""
    app = FastAPI()
    app.state.first, app.state.second = 1, 2
    router = APIRouter() if included else app.router
    if dependencies == 0:

        @router.get("/x")
        async def x0() -> Response:
            return Response(b"1")

    elif dependencies == 1:

        @router.get("/x")
        async def x1(a: Annotated[int, Depends(_first)]) -> Response:
            return Response(b"1")

    else:

        @router.get("/x")
        async def x2(a: Annotated[int, Depends(_first)], b: Annotated[int, Depends(_second)]) -> Response:
            return Response(b"1")

    if included:
        app.include_router(router)
    if overridden:
        app.dependency_overrides[_second] = _first  # an entry for a dependency the route does not use
    return app


def _scope(method: str, path: str, body: bytes) -> dict[str, Any]:
    headers = [(b"host", b"bench"), (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": headers,
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 2),
    }


async def _per_request_us(app: ASGIApp, method: str, path: str, body: bytes, chunks: int) -> dict[str, float]:
    scope = _scope(method, path, body)
    statuses: set[int] = set()

    async def receive() -> Message:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: Message) -> None:
        if message["type"] == "http.response.start":
            statuses.add(message["status"])

    for _ in range(1000):
        await app(dict(scope), receive, send)
    gc.collect()
    times = []
    for _ in range(chunks):
        start = time.perf_counter()
        for _ in range(1000):
            await app(dict(scope), receive, send)
        times.append((time.perf_counter() - start) * 1e3)  # ms per 1,000 = µs per request
    if statuses != {200}:
        raise RuntimeError(f"{path}: answered {sorted(statuses)}, not 200")
    return {"best_us": round(min(times), 1), "median_us": round(statistics.median(times), 1)}


async def _with_lifespan(app: FastAPI, run: Callable[[], Awaitable[dict[str, float]]]) -> dict[str, float]:
    async with app.router.lifespan_context(app):
        return await run()


async def measure(chunks: int, rounds: int) -> dict[str, Any]:
    from benchmarks.serving.ceiling import ceiling_app

    shapes = {
        "app router, no dependency": (False, 0, False),
        "app router, 1 dependency": (False, 1, False),
        "app router, 2 dependencies": (False, 2, False),
        "included router, no dependency": (True, 0, False),
        "included router, 1 dependency": (True, 1, False),
        "included router, 2 dependencies": (True, 2, False),
        "app router, 1 dependency, an override set": (False, 1, True),
    }
    runs: dict[str, list[dict[str, float]]] = {name: [] for name in [*shapes, "serving ceiling (POST /v1/recommendations)"]}
    body = json.dumps({"user_id": "u0000001", "k": 10}).encode()
    ceiling = ceiling_app()
    for _ in range(rounds):  # interleaved: the shapes share the machine's state
        for name, (included, deps, overridden) in shapes.items():
            runs[name].append(await _per_request_us(shape_app(included, deps, overridden), "GET", "/x", b"", chunks))
        runs["serving ceiling (POST /v1/recommendations)"].append(
            await _with_lifespan(ceiling, lambda: _per_request_us(ceiling, "POST", "/v1/recommendations", body, chunks))
        )
    return {
        name: {"best_us": min(r["best_us"] for r in rs), "median_us": statistics.median(r["median_us"] for r in rs)}
        for name, rs in runs.items()
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--chunks", type=int, default=10, help="1,000-request chunks per shape and round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", default="asgi_overhead")
    args = parser.parse_args()
    import recsys  # noqa: F401  (TF_USE_LEGACY_KERAS before anything imports TensorFlow)

    before = load_average()
    results = asyncio.run(measure(args.chunks, args.rounds))
    rows = "\n".join(f"| {name} | {r['best_us']} | {r['median_us']} |" for name, r in results.items())
    summary = (
        f"# benchmark: asgi_overhead\n\nµs per request in-process ({args.rounds} interleaved rounds of {args.chunks} x 1,000 "
        f"requests); load average {before} before, {load_average()} after.\n\n| app | best µs | median µs |\n| --- | --- | --- |\n{rows}\n"
    )
    print(summary)
    write_results(args.out, {"results": results, "rounds": args.rounds, "chunks": args.chunks}, summary)


if __name__ == "__main__":
    main()
