"""The index tuning sample's session queries (training/index_queries.py): the share they take,
the visits they are cut from and the columns they are fed (numpy only; the trained check is
test_training_index_queries_sessions.py)."""

import numpy as np

from training.index_queries import sample_queries, session_histories, session_inputs


def _vectors(seed: int, n: int, offset: float = 0.0) -> np.ndarray:
    return (np.random.default_rng(seed).standard_normal((n, 8)) + offset).astype(np.float32)


def test_sessions_take_their_share_of_the_sample_in_both_halves() -> None:
    items, users = _vectors(0, 5_000), _vectors(1, 3_000)
    sessions = _vectors(2, 800, offset=50.0)  # far from the users: any session row in the sample is recognisable
    sessions[3] = np.nan  # an unusable vector is never drawn
    s = sample_queries(users, items, seed=4, sessions=sessions, session_share=0.25)
    assert (s.users, s.sessions, s.items, s.source) == (1_500, 500, 0, "users+sessions")
    both = np.concatenate([s.tuning, s.checking])
    assert len(np.unique(both, axis=0)) == 2_000
    is_session = both[:, 0] > 25
    assert is_session.sum() == 500
    given = {row.tobytes() for row in sessions}
    assert all(row.tobytes() in given for row in both[is_session])
    assert {row.tobytes() for row in users[s.user_rows]} == {row.tobytes() for row in both[~is_session]}
    for half in (s.tuning, s.checking):  # shuffled together: each half holds both kinds
        assert 150 < (half[:, 0] > 25).sum() < 350
    q = s.describe()
    assert (q["users"], q["sessions"], q["tuning"], q["checking"]) == (1_500, 500, 1_000, 1_000)
    again = sample_queries(users, items, seed=4, sessions=sessions, session_share=0.25)
    assert np.array_equal(again.tuning, s.tuning) and np.array_equal(again.checking, s.checking)


def test_fewer_sessions_than_the_share_and_none_at_all() -> None:
    items, users = _vectors(0, 5_000), _vectors(1, 3_000)
    few = sample_queries(users, items, seed=4, sessions=_vectors(2, 40, 50.0), session_share=0.25)
    assert (few.users, few.sessions) == (1_960, 40)
    plain = sample_queries(users, items, seed=4)
    for empty in (None, np.zeros((0, 8), np.float32)):
        same = sample_queries(users, items, seed=4, sessions=empty, session_share=0.25)
        assert same.sessions == 0 and same.source == "users"
        assert np.array_equal(same.tuning, plain.tuning) and np.array_equal(same.similar_checking, plain.similar_checking)
    assert plain.describe()["sessions"] == 0


def test_sessions_count_toward_the_small_catalog_top_up() -> None:
    items, users = _vectors(0, 1_000), _vectors(1, 100)
    s = sample_queries(users, items, seed=1, sessions=_vectors(2, 500, 50.0), session_share=0.25)
    assert (s.users, s.sessions, s.items, s.source) == (100, 500, 0, "users+sessions")
    s = sample_queries(users, items, seed=1, size=400, sessions=_vectors(2, 500, 50.0), session_share=0.25)
    assert (s.users, s.sessions, s.items) == (100, 100, 200) and s.source == "users+sessions+items"


def test_visits_are_seeded_suffixes_of_stored_histories() -> None:
    stored = np.array(["a|b|c|d", "", "e", "f|g", "", "h|i|j"], dtype=object)
    visits = session_histories(stored, "|", 10, seed=3)
    assert len(visits) == 4  # the users with a history, each once
    owners = set()
    for v in visits:
        tokens = v.split("|")
        owner = next(h for h in stored if h and h.split("|")[-len(tokens) :] == tokens)
        owners.add(owner)
        assert 1 <= len(tokens) <= len(owner.split("|"))
    assert owners == {"a|b|c|d", "e", "f|g", "h|i|j"}
    assert list(session_histories(stored, "|", 10, seed=3)) == list(visits)
    assert len(session_histories(stored, "|", 2, seed=3)) == 2
    lengths = {len(v.split("|")) for s in range(40) for v in session_histories(stored[:1], "|", 1, seed=s)}
    assert lengths == {1, 2, 3, 4}  # every suffix length of "a|b|c|d" is drawn


def test_session_inputs_are_the_defaults_and_the_visit() -> None:
    cols = session_inputs({"user_id": "", "age": 34.5, "recent_item_ids": ""}, "recent_item_ids", np.array(["a|b", "c"]))
    assert list(cols["user_id"]) == ["", ""] and cols["user_id"].dtype == object
    assert cols["age"].dtype == np.float32 and np.allclose(cols["age"], 34.5)
    assert list(cols["recent_item_ids"]) == ["a|b", "c"]
