"""``recsys update-catalog`` benchmarks (issue 20).

    python -m benchmarks.catalog_update scale [--items 1000000] [--base-root ROOT] [--work-dir DIR] [--swap]
    python -m benchmarks.catalog_update cold [--movielens ../shared/data/ml-100k] [--withhold 0.1] [--seed 0] [--item-id-dropout P] [--cold-path on|off]
    python -m benchmarks.catalog_update unseen [--movielens ../shared/data/ml-100k] [--seed 42] [--variants default,default+cold_path=on,...]

``scale``: the base is a generated 64-d catalog version (``benchmarks.catalog``:
``--items`` items, ``--users`` users, towers set from the generated vectors, the
tuned index), built here or copied from ``--base-root``. A real ``recsys
update-catalog`` process publishes the daily update of it (1% of the items
retired, 1% changed, 1% new), timed end to end (start, verify, read, embed,
re-map, index, publish) with its peak RSS (``wait4``). With ``--swap`` a
``recsys serve`` process serves the base under wrk load at concurrency 32 from
before the update starts until 5 s after the service answers with the new
version; failures, latency and versions answered are recorded.

``cold``: MovieLens: a seeded ``--withhold`` share of the items is removed from
the data before training (their interactions too), then ``update-catalog``
adds them from the full item table. Per user, the test interactions are the
ones the pipeline's temporal split puts in test, and, for withheld items, the
user's interactions with them from the start of the user's test period on.
Reported: the share of each kind landing in the user's top 100 (exact scores of
the published query vector against the published item vectors, training items
excluded), beside what uniform placement would give (100 / eligible items).

``unseen``: MovieLens P2 (the quality benchmark's temporal split), each model
variant (``benchmarks.quality`` tokens) fitted as that benchmark fits it at
``--seed``. Reported: the share of the test users' top-10 places (training items
excluded) taken by items the training split never shows, against their share of
the test interactions, and Recall@10 / NDCG@10 with those items kept in the
ranking and masked out: what a cold path's placement of unknown items costs the
known ones.

Results go to ``benchmarks/results/catalog_update_<mode>.json`` and ``.md``.
"""
