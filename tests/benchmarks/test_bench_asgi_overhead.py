"""The in-process framework-cost benchmark runs every shape it reports, and each shape is what its name says."""

import asyncio

from benchmarks import asgi_overhead


def test_shapes_are_what_their_names_say():
    from fastapi.routing import APIRoute

    direct = asgi_overhead.shape_app(included=False, dependencies=2)
    included = asgi_overhead.shape_app(included=True, dependencies=1, overridden=True)
    route = next(r for r in direct.router.routes if isinstance(r, APIRoute) and r.path == "/x")
    assert len(route.dependant.dependencies) == 2
    assert not any(isinstance(r, APIRoute) and r.path == "/x" for r in included.router.routes)  # nested, not declared
    assert included.dependency_overrides and not direct.dependency_overrides


def test_measure_reports_every_shape_and_the_ceiling():
    results = asyncio.run(asgi_overhead.measure(chunks=1, rounds=1))
    assert len(results) == 8 and "serving ceiling (POST /v1/recommendations)" in results
    for name, r in results.items():
        assert 0 < r["best_us"] <= r["median_us"], name
