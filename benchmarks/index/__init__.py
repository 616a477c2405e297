"""The ScaNN index every command builds, against exact search and the former rule.

    python -m benchmarks.index [--trained ROOT,...] [--sizes 100000,1000000] [--no-movielens] [--qps]

Catalogs:

- trained models: ``--trained`` names model roots (or version directories)
  published by ``recsys train``; their ``item_embeddings.npy`` and every known
  user's query vector (the exported query tower on ``users.parquet``, as the
  service computes them);
- the project's trained MovieLens item embeddings (``run_pipeline`` with the
  default config, P2 split), queried with the trained user embeddings;
- generated catalogs of ``--sizes`` items, 64-d clustered Gaussian embeddings
  (``n/100`` cluster centres ~ N(0, I), items = centre + 0.5 N(0, I), each
  item's norm scaled by exp(0.2 N(0, 1))); users drawn from the same mixture.

Per catalog the index is built by ``training.index.build_index``, the path
training takes: tuned at build time on a seeded sample of the users' vectors
(``training.index_tuning``). Reported: the chosen setting, recall@10 against
exact dot-product search on held-out users (outside the tuning sample), the
checking-half recall@10/@100 the manifest records, us per query the way the
service pays it (batches of 12: ``search_batched`` plus the exact re-scoring
of the pool, thread CPU time; brute force: the search alone), build time with
the tuning (wall and CPU), the frontier tried; beside it the former rule by
size (``training.index.index_params``) on the same held-out users. ``--qps``
adds the q/s table of single, batched and parallel search and of exact numpy
search. The chosen tree's frontier is plotted in
benchmarks/results/index_recall_speed.png. Timings are medians of
``--repeats``.

Parts: :mod:`~benchmarks.index.shared` (k, BLAS threads, memory, log),
:mod:`~benchmarks.index.vectors` (the catalogs' item and query vectors),
:mod:`~benchmarks.index.exact` (exact search and q/s timing),
:mod:`~benchmarks.index.measure` (one catalog's index against exact search),
:mod:`~benchmarks.index.verdict`, :mod:`~benchmarks.index.report` (summary)
and :mod:`~benchmarks.index.__main__` (the command line).
"""
