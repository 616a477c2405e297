"""The serving benchmarks' parts (``python -m benchmarks.serving_load`` and ``python -m benchmarks.serving_gap``).

- :mod:`~benchmarks.serving.constants`: request shape, targets, work folder, progress log;
- :mod:`~benchmarks.serving.servers`: the server processes (``recsys serve``, the HTTP ceiling), readiness, memory;
- :mod:`~benchmarks.serving.catalogs`: the generated catalogs served and the requests sent;
- :mod:`~benchmarks.serving.ceiling`: the HTTP ceiling app;
- :mod:`~benchmarks.serving.variants`: the serving_gap variants of it;
- :mod:`~benchmarks.serving.compute`: the in-process compute ceiling;
- :mod:`~benchmarks.serving.measure`: loads, medians, the model against its ceiling;
- :mod:`~benchmarks.serving.recent`: requests with recent items;
- :mod:`~benchmarks.serving.swap`: the hot swap under load;
- :mod:`~benchmarks.serving.plot` and :mod:`~benchmarks.serving.report`: the figure, the summary, the targets.
"""
