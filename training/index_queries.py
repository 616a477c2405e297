"""The query vectors an index is tuned and checked on: a seeded sample of the
version's own known users' query vectors, split into a tuning half and a
checking half (:mod:`training.index_tuning`).

Where the version has fewer than ``MIN_USERS`` known users, their vectors are
topped up with a seeded sample of item vectors as proxy queries (in a two-tower
model both live in the same space; an item's nearest items by dot product
stand in for a user's). Which vectors were used is recorded in the manifest
(``index.tuning.queries``).

Session queries (a visitor with only recent items: ``"strategy": "session"``,
docs/CONTRACTS.md section 6) are asked of the same index. Where the version's
query tower has a history input, a seeded share of the sample
(``TrainConfig.index_session_share``) is made of them: :func:`session_histories`
cuts seeded visits from known users' stored histories (the last 1 to all of a
user's items), :func:`session_inputs` builds the columns the service feeds for
such a request (every other query input its manifest default: ``""``, the OOV
id, for strings, the training mean for numbers) and :func:`session_queries`
runs the query tower on them. The manifest's ``index.tuning.queries`` counts
them (``sessions``) beside the known users' (``users``).

The same index answers similar-items queries (``GET /v1/items/{id}/similar``:
an item's own vector, the item itself left out), so a second seeded sample of
item rows, split in halves the same way, is tuned and checked as such
(``similar_tuning`` / ``similar_checking``; recorded as ``queries.similar``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Protocol

import numpy as np

from training.metrics import RowVectors

if TYPE_CHECKING:
    from towers.spec import ModelSpec

SAMPLE_SIZE = 2_000  # tuning + checking queries, when that many users exist
MIN_USERS = 300  # fewer known users than this: item vectors top the sample up to 2 * MIN_USERS
SESSION_STREAM = 1  # the session sample's own random stream (seed, SESSION_STREAM): the other draws do not move with it


@dataclass(frozen=True)
class SessionQueries:
    """Session requests' query vectors: the history input each was fed and the query tower's output."""

    histories: np.ndarray  # object [n]: the visit's item ids, oldest first, joined by the history's separator
    vectors: np.ndarray  # float32 [n, dim]


class StoredHistories(Protocol):
    """Users' stored inputs that are made for some users at a time (:class:`training.stored_inputs.StoredInputs`)."""

    def with_history(self) -> np.ndarray: ...

    def take(self, users: np.ndarray) -> dict[str, np.ndarray]: ...


def session_histories(histories: np.ndarray, separator: str, count: int, seed: int) -> np.ndarray:
    """``count`` visits (fewer if fewer users have a history): seeded users with a non-empty stored
    history (oldest first, ``separator``-joined), each cut to its last L items, L uniform from 1 to all."""
    having = np.flatnonzero([bool(str(h).replace(separator, "")) for h in histories])  # a million users: no token lists
    return _visits(having, lambda users: histories[users], separator, count, seed)


def _visits(
    having: np.ndarray, history_of: Callable[[np.ndarray], np.ndarray], separator: str, count: int, seed: int
) -> np.ndarray:
    """:func:`session_histories` from the users with a history (``having``) and the stored histories of some users."""
    rng = np.random.default_rng([seed, SESSION_STREAM])
    picked = np.sort(rng.choice(having, min(count, len(having)), replace=False))
    stored = history_of(picked)  # the picked users' only
    tokens = {int(u): [t for t in str(h).split(separator) if t] for u, h in zip(picked, stored, strict=True)}
    lengths = [int(rng.integers(1, len(tokens[u]) + 1)) for u in picked]
    return np.array([separator.join(tokens[u][-n:]) for u, n in zip(picked, lengths, strict=True)], dtype=object)


def session_inputs(defaults: Mapping[str, str | float], feature: str, histories: np.ndarray) -> dict[str, np.ndarray]:
    """The query tower's columns for session requests, as the service builds them for a request with no known
    user: every input its manifest default (``defaults``: ``query_inputs[].default``), ``feature`` the visit's items."""
    n = len(histories)
    out = {
        name: np.full(n, value, dtype=np.float32) if isinstance(value, float) else np.full(n, value, dtype=object)
        for name, value in defaults.items()
    }
    out[feature] = np.asarray(histories, dtype=object)
    return out


def session_queries(
    embed: Callable[[dict[str, np.ndarray]], np.ndarray],
    defaults: Mapping[str, str | float],
    feature: str,
    separator: str,
    stored_histories: np.ndarray,
    count: int,
    seed: int,
) -> SessionQueries:
    """``count`` session queries cut from known users' ``stored_histories`` and embedded by ``embed``
    (the version's query tower)."""
    return _embedded(embed, defaults, feature, session_histories(stored_histories, separator, count, seed))


def _embedded(
    embed: Callable[[dict[str, np.ndarray]], np.ndarray], defaults: Mapping[str, str | float], feature: str, histories: np.ndarray
) -> SessionQueries:
    if not len(histories):
        return SessionQueries(histories, np.zeros((0, 0), np.float32))
    return SessionQueries(histories, np.asarray(embed(session_inputs(defaults, feature, histories)), dtype=np.float32))


def index_session_queries(
    embed: Callable[[dict[str, np.ndarray]], np.ndarray],
    spec: ModelSpec,
    stored_inputs: Mapping[str, np.ndarray] | StoredHistories,
    defaults: Mapping[str, str | float],
    share: float,
    tuning_queries: int,
    seed: int,
) -> SessionQueries | None:
    """The session queries an index is tuned on (``round(share * tuning_queries)`` of them): visits cut from
    the known users' stored histories (``stored_inputs``: users.parquet's columns, or made for the picked users only),
    fed with every other input
    at its manifest default, as the service answers ``"strategy": "session"``. None without a history input."""
    if not spec.history_features or share <= 0:
        return None
    feature = spec.history_features[0]  # the one the service feeds recent items into
    count = round(share * tuning_queries)
    if isinstance(stored_inputs, Mapping):
        return session_queries(embed, defaults, feature.name, feature.separator, stored_inputs[feature.name], count, seed)
    stored = stored_inputs
    visits = _visits(stored.with_history(), lambda users: stored.take(users)[feature.name], feature.separator, count, seed)
    return _embedded(embed, defaults, feature.name, visits)


@dataclass
class QuerySample:
    tuning: np.ndarray  # float32 [t, dim]
    checking: np.ndarray  # float32 [c, dim]
    source: str  # "users" | "users+items" | "items"
    users: int  # known users' (personal) query vectors in the sample
    items: int  # item vectors in the sample (proxy queries)
    seed: int
    user_rows: np.ndarray  # rows of the user vectors given that are in the sample (for held-out checks)
    similar_tuning: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))  # item rows queried as similar-items
    similar_checking: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    sessions: int = 0  # session queries (recent items only) in the sample

    def describe(self) -> dict:
        """The manifest's ``index.tuning.queries``."""
        out = asdict(self)
        for name in ("tuning", "checking", "user_rows", "similar_tuning", "similar_checking"):
            out.pop(name)
        similar = {
            "items": len(np.union1d(self.similar_tuning, self.similar_checking)),
            "tuning": len(self.similar_tuning),
            "checking": len(self.similar_checking),
        }
        return {**out, "tuning": len(self.tuning), "checking": len(self.checking), "similar": similar}


def sample_queries(
    user_vectors: RowVectors | None,
    item_vectors: np.ndarray,
    *,
    size: int = SAMPLE_SIZE,
    seed: int = 0,
    min_users: int = MIN_USERS,
    sessions: np.ndarray | None = None,
    session_share: float = 0.0,
) -> QuerySample:
    """``size`` query vectors (fewer if fewer exist), shuffled with ``seed`` and split in two halves;
    and ``size`` item rows (fewer if fewer exist) as similar-items queries, split the same way
    (drawn after the user sample, so that sample does not depend on them).

    ``sessions``: session queries' vectors (:func:`session_queries`); ``round(session_share * size)``
    of them (fewer if fewer are given) take the place of as many user vectors, drawn from their own
    random stream (``seed``, :data:`SESSION_STREAM`)."""
    rng = np.random.default_rng(seed)
    users: RowVectors = np.zeros((0, item_vectors.shape[1]), np.float32) if user_vectors is None else user_vectors
    if isinstance(users, np.ndarray | list):
        users = np.asarray(users, np.float32)
        finite = np.flatnonzero(np.isfinite(users).all(axis=1))
    else:  # vectors made for the rows picked (a model's: finite, or its training would have failed)
        finite = np.arange(len(users))
    no_sessions = sessions is None or not len(sessions)
    given = np.zeros((0, item_vectors.shape[1]), np.float32) if no_sessions else np.asarray(sessions, np.float32)
    usable = np.flatnonzero(np.isfinite(given).all(axis=1))
    n_sessions = min(len(usable), round(session_share * size))
    session_rows = np.sort(np.random.default_rng([seed, SESSION_STREAM]).choice(usable, n_sessions, replace=False))
    user_rows = np.sort(rng.choice(finite, min(size - n_sessions, len(finite)), replace=False))
    parts = [np.asarray(users[user_rows], np.float32).reshape(-1, item_vectors.shape[1]), given[session_rows]]
    n_items = 0
    if len(user_rows) < min_users:
        n_items = min(2 * min_users, size, len(item_vectors)) - len(user_rows) - n_sessions
        n_items = max(n_items, 0)
        parts.append(np.asarray(item_vectors, np.float32)[np.sort(rng.choice(len(item_vectors), n_items, replace=False))])
    total = len(user_rows) + n_sessions + n_items
    queries = np.ascontiguousarray(np.concatenate(parts)[rng.permutation(total)], dtype=np.float32)
    half = (len(queries) + 1) // 2
    kinds = [name for name, n in (("users", len(user_rows)), ("sessions", n_sessions), ("items", n_items)) if n]
    source = "+".join(kinds) or "items"
    similar = rng.choice(len(item_vectors), min(size, len(item_vectors)), replace=False).astype(np.int64)
    shalf = (len(similar) + 1) // 2
    return QuerySample(
        tuning=queries[:half],
        checking=queries[half:] if len(queries) > 1 else queries,
        source=source,
        users=len(user_rows),
        items=int(n_items),
        seed=seed,
        user_rows=user_rows,
        similar_tuning=similar[:shalf],
        similar_checking=similar[shalf:] if len(similar) > 1 else similar,
        sessions=n_sessions,
    )
