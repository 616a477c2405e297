"""Shared by the catalog-update tests: one small trained storefront version per
session, copies of its model root, and item tables that add, retire and change
items relative to it."""

import shutil
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

import recsys  # noqa: F401  (first: TF_USE_LEGACY_KERAS)

_CACHE: dict[str, tuple[Path, str]] = {}
USERS_WITH_CLONES = 10  # users whose top and bottom items are cloned as new items
CLONES = 5  # per user and group


def trained_base(tmp_path_factory) -> tuple[Path, str]:
    """(model root, version): a 300-item storefront model trained once per session (never modified)."""
    if "base" not in _CACHE:
        from training.config import TrainConfig
        from training.data.synthetic import generate_storefront
        from training.pipeline import run_pipeline

        root = tmp_path_factory.mktemp("catalog_base")
        data = generate_storefront(items=300, users=200, interactions=6000, seed=1)
        result = run_pipeline(data, root, TrainConfig(epochs=2, batch_size=256), verbose=0)
        assert result.version is not None  # published
        _CACHE["base"] = (root, result.version)
    return _CACHE["base"]


def copy_root(root: Path, dest: Path) -> Path:
    shutil.copytree(root, dest)
    return dest


@dataclass
class Update:
    """An item table for the base version, and what it does to the catalog."""

    frame: pd.DataFrame  # the new catalog (tags as lists)
    new_ids: list[str]
    owner: dict[str, str] = field(default_factory=dict)  # new id -> user_id whose top/bottom item it clones
    group: dict[str, str] = field(default_factory=dict)  # new id -> "top" | "bottom"
    source: dict[str, str] = field(default_factory=dict)  # new id -> the known item whose metadata it copies
    retired: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)

    def write_csv(self, path: Path) -> Path:
        out = self.frame.copy()
        out["tags"] = out["tags"].map("|".join)
        out.to_csv(path, index=False)
        return path


def make_update(base_dir: Path, retire: int = 50, change: int = 10, seed: int = 0) -> Update:
    """100 new items (for 10 users, copies of the metadata of their 5 best- and 5
    worst-scored items under new ids), ``retire`` retired and ``change`` known
    items with another category and title."""
    import json

    from training.catalog_base import BaseVersion

    base = BaseVersion(path=base_dir, name=base_dir.name, manifest=json.loads((base_dir / "manifest.json").read_text()))
    from training.saved_tower import SavedTower

    query = SavedTower(base_dir / "query_model", base.manifest["query_inputs"])
    scores = query.embed(query.columns(base.users)) @ base.embeddings.T
    items = base.items.drop(columns=["popularity"]).reset_index(drop=True)
    items["tags"] = items["tags"].map(list)
    rng = np.random.default_rng(seed)
    users = rng.choice(len(base.users), USERS_WITH_CLONES, replace=False)
    update = Update(frame=items, new_ids=[])
    rows: list[pd.Series] = []
    sources: set[int] = set()
    for u in users:
        order = np.argsort(-scores[u])
        for group, picked in (("top", order[:CLONES]), ("bottom", order[-CLONES:])):
            for s in picked:
                row = items.iloc[int(s)].copy()
                new_id = f"new{len(rows):04d}"
                row["item_id"] = new_id
                rows.append(row)
                update.new_ids.append(new_id)
                update.owner[new_id] = str(base.users["user_id"].iloc[u])
                update.group[new_id] = group
                update.source[new_id] = str(items["item_id"].iloc[int(s)])
                sources.add(int(s))
    others = np.setdiff1d(np.arange(len(items)), np.array(sorted(sources)))
    picked = rng.choice(others, retire + change, replace=False)
    retired, changed = picked[:retire], picked[retire:]
    update.retired = items["item_id"].iloc[retired].tolist()
    update.changed = items["item_id"].iloc[changed].tolist()
    frame = items.copy()
    categories = sorted(frame["category"].unique())
    for r in changed:
        frame.loc[r, "category"] = categories[(categories.index(frame.loc[r, "category"]) + 1) % len(categories)]
        frame.loc[r, "title"] = frame.loc[r, "title"] + " deluxe edition"
    frame = pd.concat([frame.drop(index=frame.index[retired]), pd.DataFrame(rows)]).reset_index(drop=True)
    update.frame = frame
    return update
