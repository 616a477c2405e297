"""Publish a model version over a generated catalog (no training).

    python -m benchmarks.catalog --model-root DIR --items 1000000 [--users 50000] [--dim 64] [--seed 0]

The serving benchmark needs versions of 100K and 1M items; training a model on
enough interactions to fill such a catalog would take hours on the machines we
have, and the service's cost does not depend on how good the embeddings are.
So this module builds a real, contract-conformant version (docs/CONTRACTS.md
section 3) from generated data, through the same code the trainer uses:

- embeddings from one 64-d Gaussian mixture (``n/100`` cluster centres ~ N(0, I);
  items = centre + 0.5 N(0, I), norm scaled by exp(0.2 N(0, 1)), the recipe of
  ``benchmarks.index``; each known user = a centre + 0.5 N(0, I));
- the towers are ``towers.tower.build_tower`` over a storefront-like query spec
  (``user_id`` id, ``age`` numeric, ``country`` and ``segment`` categorical) and
  an ids-only candidate spec, with their encoders fitted on the generated
  tables; the weights are then *set* rather than trained: the query tower's
  user-id embedding rows hold the users' vectors and its projection passes them
  through unchanged (so a known user's query vector is exactly its generated
  vector), while country, segment and age add a small offset (so a new visitor
  described by features gets a sensible vector); the candidate tower's item-id
  embedding rows hold the item vectors (``candidate_tower(item_id) ==
  item_embeddings[row]``);
- the ScaNN index is ``training.index.build_index`` (``index_params`` picks
  tree + AH above 20K items) with its recall@10 measured on the query tower's
  output for 2,000 known users (the queries the service will run);
- ``items.parquet`` (item_id, popularity, category, price), ``users.parquet``
  (user_id and the raw query features) and ``seen.parquet`` (a few items per
  user) are generated alongside;
- the version is written by ``training.export.write_version`` inside
  ``training.publish.publish`` (staging folder, fsync, rename, LATEST).

Build times per step are recorded in the version's ``metrics.json`` (under
``catalog``) and printed as JSON on the last line of stdout.

``--history-length N`` adds the users' recent items to the query tower (a
history feature over the candidate tower's item table, mean pooled, and a
``recent_item_ids`` column of each user's seen items in users.parquet), so that
requests carrying ``recent_item_ids`` run the query tower; without it (the
default) the version is as before.

``--wait-for-go`` builds everything, prints ``READY``, and publishes only when a
line arrives on stdin: the serving benchmark uses it to publish a prepared
1M-item version while the server is under load.

Parts: :mod:`~benchmarks.catalog.data` (the generated tables and vectors),
:mod:`~benchmarks.catalog.towers` (towers whose weights hold them),
:mod:`~benchmarks.catalog.version` (the version built and published) and
:mod:`~benchmarks.catalog.__main__` (the command line). The names other
modules use are re-exported here.
"""

from benchmarks.catalog.data import GENERATOR_VERSION, GeneratedCatalog, generate_catalog, item_id, user_id
from benchmarks.catalog.version import PreparedVersion, prepare_version, publish_catalog, publish_prepared

__all__ = [
    "GENERATOR_VERSION",
    "GeneratedCatalog",
    "PreparedVersion",
    "generate_catalog",
    "item_id",
    "prepare_version",
    "publish_catalog",
    "publish_prepared",
    "user_id",
]
