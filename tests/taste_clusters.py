"""Interactions with a known taste structure, shared by tests of training and serving.

Items fall into ``CLUSTERS`` clusters of ``PER_CLUSTER``; user ``u`` lives in cluster
``u % CLUSTERS`` and takes 90% of its ``PER_USER`` interactions there (the rest anywhere),
one every 1,000 s. A model that learns anything ranks a user's own cluster first."""

import numpy as np
import pandas as pd

CLUSTERS, PER_CLUSTER, USERS, PER_USER = 4, 50, 240, 30


def cluster_of(item_id: str) -> int:
    return int(item_id[1:]) // PER_CLUSTER


def taste_clusters(seed: int, categories: bool = False):  # -> CanonicalData (imported late: TF_USE_LEGACY_KERAS first)
    """The data set for ``seed``; with ``categories`` the items carry their cluster as ``category``."""
    from training.data.tables import CanonicalData

    rng = np.random.default_rng(seed)
    items = [f"i{r:04d}" for r in range(CLUSTERS * PER_CLUSTER)]
    users: list[str] = []
    picked: list[str] = []
    times: list[int] = []
    for u in range(USERS):
        own = rng.random(PER_USER) < 0.9
        home = (u % CLUSTERS) * PER_CLUSTER + rng.integers(0, PER_CLUSTER, PER_USER)
        rows = np.where(own, home, rng.integers(0, len(items), PER_USER))
        users += [f"u{u:04d}"] * PER_USER
        picked += [items[r] for r in rows]
        times += list(1_000_000 + u + 1000 * np.arange(PER_USER))
    item_table = pd.DataFrame({"item_id": items})
    if categories:
        item_table["category"] = [f"c{r // PER_CLUSTER}" for r in range(len(items))]
    return CanonicalData(
        interactions=pd.DataFrame({"user_id": users, "item_id": picked, "timestamp": np.asarray(times, dtype=np.int64)}),
        items=item_table,
        users=pd.DataFrame({"user_id": sorted(set(users))}),
        source="taste-clusters",
    )
