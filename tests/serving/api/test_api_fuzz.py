"""Schema-driven API fuzzing in process (schemathesis 4, Hypothesis strategies).

The app is ``serving.app.create_app(settings)`` on the session's tiny trained
model, reached through schemathesis' in-process ASGI client (its lifespan runs,
so the version watcher loads the model and the micro-batcher runs). Every
operation of the OpenAPI document is fuzzed with positive (schema-valid) and
negative (schema-violating) data, and every answer goes through the checks

* ``not_a_server_error``: no 5xx;
* ``status_code_conformance``: the status is documented for the operation;
* ``response_schema_conformance``: the body matches the documented schema;
* ``negative_data_rejection``: schema-violating requests get a 4xx (schemathesis'
  list, plus 413 for bodies over ``max_body_bytes``).

``positive_data_acceptance`` is not asserted: ids must be printable (not
expressible in JSON Schema) and feature/filter names depend on the served
version, so a schema-valid request may rightly get a 422.

Every generated case and every 5xx is counted and printed (``pytest -s``).
The default run makes a few hundred cases; the ``reliability`` variant some
thousands.

The schema alone does not know the served version: its filter columns and
query features are names the generator would never guess, so the numbers in
them would never reach the code that converts them. A second, targeted fuzzer
(Hypothesis strategies built from ``/v1/model``'s ``filterable`` columns and
``query_inputs``, values from the version's own items) sends recommendation
requests whose filters and features are those real columns, with lists and
ranges of extreme numbers (309-digit integers, ``1e308``, JSON literals such
as ``1e309`` that overflow a float, ``-0.0``, subnormals, ``2**63``...), and
the query parameters ``k``/``limit`` get extreme texts. Never a 5xx, always a
documented status, and every 200 answer obeys its filters.

Every run is seeded and reproducible: ``FUZZ_SEED`` unless ``RECSYS_FUZZ_SEED``
gives another; the seed is printed and named in every failure message.
The app runs with the demo on, so its routes are fuzzed too.
"""

import json
import math
import os
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import pytest

FUZZ_SEED = 20261123


def fuzz_seed() -> int:
    """The fixed seed, or ``RECSYS_FUZZ_SEED`` to explore (and reproduce) another."""
    return int(os.environ.get("RECSYS_FUZZ_SEED") or FUZZ_SEED)


CHECK_NAMES = ("not_a_server_error", "status_code_conformance", "response_schema_conformance", "negative_data_rejection")


def _checks() -> list:
    from schemathesis.checks import not_a_server_error
    from schemathesis.specs.openapi.checks import (
        negative_data_rejection,
        response_schema_conformance,
        status_code_conformance,
    )

    return [not_a_server_error, status_code_conformance, response_schema_conformance, negative_data_rejection]


@dataclass
class FuzzTally:
    cases: Counter = field(default_factory=Counter)  # mode -> cases sent
    statuses: Counter = field(default_factory=Counter)  # (mode, status) -> count
    per_operation: Counter = field(default_factory=Counter)  # (operation, mode) -> cases
    server_errors: list = field(default_factory=list)  # (operation, mode, status, curl)
    failures: dict = field(default_factory=dict)  # (operation, mode, first line) -> (count, report)
    exceptions: list = field(default_factory=list)  # (operation, mode, repr)
    header_mismatches: list = field(default_factory=list)
    unsatisfiable: list = field(default_factory=list)  # (operation, mode): no such data exists

    @property
    def total(self) -> int:
        return sum(self.cases.values())

    def summary(self, label: str, seconds: float, seed: int) -> str:
        modes = ", ".join(f"{m}={n}" for m, n in sorted(self.cases.items()))
        statuses = ", ".join(f"{m}:{s}={n}" for (m, s), n in sorted(self.statuses.items()))
        lines = [
            f"{label}: cases={self.total} ({modes}) 5xx={len(self.server_errors)} "
            f"check_failures={sum(n for n, _ in self.failures.values())} exceptions={len(self.exceptions)} "
            f"operations={len({op for op, _ in self.per_operation})} seconds={seconds:.1f} seed={seed}",
            f"  statuses: {statuses}",
        ]
        if self.unsatisfiable:
            lines.append(f"  no data of that mode exists for: {sorted(set(self.unsatisfiable))}")
        for (op, mode, title), (n, report) in sorted(self.failures.items()):
            lines.append(f"  FAILED {n}x {op} [{mode}] {title}\n{report}")
        return "\n".join(lines)


def fuzz(schema, client, version: str, *, examples: int, seed: int) -> FuzzTally:
    """Run every operation x {positive, negative} through Hypothesis; count, never stop early."""
    from hypothesis import HealthCheck, Phase, given, settings
    from hypothesis import seed as hyp_seed
    from hypothesis.errors import Unsatisfiable
    from schemathesis import GenerationMode
    from schemathesis.core.failures import FailureGroup

    checks = _checks()
    tally = FuzzTally()
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 8, [op.label for op in operations]

    def make_test(operation, mode, case_seed: int):
        label = operation.label

        @hyp_seed(case_seed)
        @settings(
            max_examples=examples,
            deadline=None,
            database=None,
            phases=[Phase.explicit, Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
        @given(case=operation.as_strategy(generation_mode=mode))
        def one(case) -> None:
            tally.cases[mode.value] += 1
            tally.per_operation[(label, mode.value)] += 1
            try:
                response = case.call(session=client)
            except Exception as exc:
                tally.exceptions.append((label, mode.value, repr(exc)[:500]))
                return
            tally.statuses[(mode.value, response.status_code)] += 1
            if response.status_code >= 500:
                tally.server_errors.append((label, mode.value, response.status_code, case.as_curl_command()))
            if label.split(" ", 1)[1].startswith("/v1/") and 200 <= response.status_code < 300:
                header = (response.headers.get("x-model-version") or [None])[0]
                if header != version:
                    tally.header_mismatches.append((label, header))
            try:
                case.validate_response(response, checks=checks)
            except FailureGroup as group:
                for failure in group.exceptions:
                    key = (label, mode.value, failure.title)
                    count, report = tally.failures.get(key, (0, str(group)[:1500]))
                    tally.failures[key] = (count + 1, report)

        return one

    for n, operation in enumerate(operations):
        for m, mode in enumerate((GenerationMode.POSITIVE, GenerationMode.NEGATIVE)):
            try:
                make_test(operation, mode, seed + 1009 * n + 7 * m)()
            except Unsatisfiable:
                tally.unsatisfiable.append((operation.label, mode.value))
    return tally


@pytest.fixture(scope="module")
def fuzz_target(trained: tuple[Path, str]):
    """(schema, client, version): the app on the trained root, its lifespan started, model loaded."""
    import schemathesis
    from schemathesis.config._checks import NEGATIVE_DATA_REJECTION_EXPECTED_STATUSES
    from schemathesis.python import asgi

    from serving.app import create_app
    from serving.settings import ServiceSettings

    root, version = trained
    # a generous deadline: on a loaded machine a big batch must not turn into a 504 (this is about inputs);
    # the demo on, so that its routes are fuzzed too
    app = create_app(ServiceSettings(model_root=root, poll_interval_s=30, request_timeout_s=60, demo_enabled=True))
    # 413 (body over max_body_bytes, documented) is a rejection too
    rejected = [*NEGATIVE_DATA_REJECTION_EXPECTED_STATUSES, "413"]
    config = schemathesis.Config.from_dict({"checks": {"negative_data_rejection": {"expected-statuses": rejected}}})
    client = asgi.get_client(app)  # type: ignore[arg-type]  # schemathesis types the ASGI app with its own narrower callable
    with client:  # starts the lifespan (shared with the schema's requests below)
        deadline = time.monotonic() + 120
        while client.get("/readyz").status_code != 200:
            assert time.monotonic() < deadline, client.get("/readyz").json()
            time.sleep(0.1)
        assert client.get("/readyz").json()["model_version"] == version
        # The schema only once the model is loaded: loading it in the lifespan's thread builds Python ASTs
        # while schemathesis imports its OpenAPI modules lazily here, which pytest rewrites, that is parses,
        # too. CPython 3.11's AST constructor keeps its recursion depth in state shared by the threads and
        # then fails with "SystemError: AST constructor recursion depth mismatch" (python/cpython#106905).
        schema = schemathesis.openapi.from_asgi("/openapi.json", app, config=config)
        yield schema, client, version
    asgi.shutdown_lifespans()


def _run_and_assert(fuzz_target, *, examples: int, seed: int, min_cases: int, label: str) -> None:
    schema, client, version = fuzz_target
    start = time.perf_counter()
    tally = fuzz(schema, client, version, examples=examples, seed=seed)
    print("\n" + tally.summary(label, time.perf_counter() - start, seed))
    again = f"seed {seed} (rerun with RECSYS_FUZZ_SEED={seed})"
    assert tally.cases["positive"] > 0 and tally.cases["negative"] > 0, again
    assert tally.total >= min_cases, (tally.total, again)
    assert not tally.exceptions, (again, tally.exceptions[:5])
    assert not tally.server_errors, (again, tally.server_errors[:5])
    assert not tally.header_mismatches, (again, tally.header_mismatches[:5])
    assert not tally.failures, tally.summary(label, 0, seed)


def test_api_fuzz_in_process(fuzz_target) -> None:
    """A few hundred positive and negative cases (a fixed seed: reproducible), zero 5xx,
    every status documented, every answer schema-conformant, negative data rejected."""
    _run_and_assert(fuzz_target, examples=30, seed=fuzz_seed(), min_cases=300, label="api-fuzz (default)")


@pytest.mark.reliability
def test_api_fuzz_in_process_thousands(fuzz_target) -> None:
    _run_and_assert(fuzz_target, examples=250, seed=fuzz_seed(), min_cases=2500, label="api-fuzz (reliability)")


def test_body_that_is_not_utf8_gets_a_documented_status(fuzz_target) -> None:
    """Found by the fuzzer: a JSON body that is not UTF-8 is answered 400 ("There was an
    error parsing the body"), a status the OpenAPI document does not list for the route."""
    _, client, _ = fuzz_target
    documented = client.get("/openapi.json").json()["paths"]["/v1/recommendations"]["post"]["responses"]
    reply = client.post("/v1/recommendations", data=b'{"k": "\xff\xfe"}', headers={"Content-Type": "application/json"})
    assert reply.status_code < 500
    assert str(reply.status_code) in documented, (reply.status_code, reply.text, sorted(documented))


# --------------------------------------------------------------------------- the served version's columns


class Raw:
    """A JSON number literal written as is (``1e309``: Python's json would never write it)."""

    def __init__(self, text: str) -> None:
        self.text = text

    def __repr__(self) -> str:
        return f"Raw({self.text})"


def to_json(value: object) -> bytes:
    """``json.dumps`` with every :class:`Raw` put in as its literal text."""
    raws: list[str] = []

    def default(obj: object) -> str:
        if isinstance(obj, Raw):
            raws.append(obj.text)
            return f"\x00raw{len(raws) - 1}\x00"
        raise TypeError(type(obj))

    text = json.dumps(value, default=default, allow_nan=False)
    for i, raw in enumerate(raws):
        text = text.replace(json.dumps(f"\x00raw{i}\x00"), raw)
    return text.encode()


# numbers that overflow, underflow or lose precision somewhere between JSON, Python, float64 and float32
EXTREME_NUMBERS = [
    0,
    -0.0,
    1,
    -1,
    0.5,
    5e-324,
    -5e-324,
    2.2250738585072014e-308,
    1e38,
    3.5e38,
    -3.5e38,
    1e308,
    -1e308,
    1.7976931348623157e308,
    -1.7976931348623157e308,
    2**53 + 1,
    2**63,
    -(2**63) - 1,
    2**64,
    10**308,
    10**309,
    -(10**309),
    10**400,
    Raw("1e309"),
    Raw("-1e309"),
    Raw("1e-400"),
    Raw("-0"),
    Raw("0e0"),
    Raw("1E+2"),
    Raw("9" * 5000),
    Raw("0." + "0" * 400 + "1"),
]


def numbers():
    from hypothesis import strategies as st

    return st.one_of(
        st.sampled_from(EXTREME_NUMBERS),
        st.integers(),
        st.floats(allow_nan=False, allow_infinity=False),
        st.integers(min_value=0, max_value=1000),
    )


@pytest.fixture(scope="module")
def served_columns(fuzz_target, trained: tuple[Path, str]) -> dict:
    """The served version's filterable columns and query inputs (from /v1/model) and real values."""
    import pandas as pd

    _, client, version = fuzz_target
    model = client.get("/v1/model").json()
    root, _ = trained
    items = pd.read_parquet(root / version / "items.parquet")
    users = pd.read_parquet(root / version / "users.parquet")
    filterable = model["filterable"]
    assert {"numeric", "list", "scalar"} <= set(filterable.values()), filterable
    values: dict[str, list] = {}
    for column, kind in filterable.items():
        col = items[column]
        flat = [v for vs in col for v in vs] if kind == "list" else col.tolist()
        values[column] = sorted({v for v in flat if v == v}, key=str)[:50]  # NaN left out
    features = {q["name"]: q for q in model["query_inputs"] if q["name"] != "user_id"}
    feature_values = {n: sorted({v for v in users[n].tolist() if v == v}, key=str)[:20] for n in features}
    return {
        "filterable": filterable,
        "values": values,
        "features": features,
        "feature_values": feature_values,
        "user_ids": users["user_id"].tolist()[:20],
        "item_ids": items["item_id"].tolist()[:20],
        "openapi": client.get("/openapi.json").json()["paths"],
    }


def request_bodies(cols: dict):
    """Recommendation requests over the served version's real filter columns and features:
    half of them valid but for extreme numbers in one real column or numeric feature (so
    the numbers reach the code that converts them, not a 422 for something else), half
    free-form (any mix of real and made-up columns, values and types)."""
    from hypothesis import strategies as st

    printable = st.text(st.characters(categories=("L", "N", "P", "Zs")), min_size=1, max_size=12)
    text = st.one_of(printable, st.text(max_size=12))
    kinds = cols["filterable"]
    numeric_columns = sorted(c for c, kind in kinds.items() if kind == "numeric")
    text_columns = sorted(c for c, kind in kinds.items() if kind != "numeric")
    numeric_features = sorted(n for n, q in cols["features"].items() if q["dtype"] == "float32")
    assert numeric_columns and text_columns and numeric_features, cols

    def real(column: str):
        return st.sampled_from(cols["values"][column]) if cols["values"].get(column) else printable

    def real_feature(name: str):
        return st.sampled_from(cols["feature_values"][name]) if cols["feature_values"].get(name) else printable

    ranges = st.fixed_dictionaries({}, optional={"min": numbers(), "max": numbers()}).filter(bool)

    # ---- valid requests, but for extreme numbers in one real place
    base = st.fixed_dictionaries(
        {"k": st.integers(1, 20)},
        optional={
            "user_id": st.sampled_from(cols["user_ids"]),
            "exclude_seen": st.booleans(),
            "exclude_item_ids": st.lists(st.sampled_from(cols["item_ids"]), max_size=3),
        },
    )
    extreme = st.one_of(
        st.tuples(st.just("filters"), st.sampled_from(numeric_columns), st.lists(numbers(), min_size=1, max_size=3)),
        st.tuples(st.just("filters"), st.sampled_from(numeric_columns), ranges),
        st.tuples(
            st.just("filters"),
            st.sampled_from(text_columns),
            st.sampled_from(text_columns).flatmap(lambda c: st.lists(st.one_of(numbers(), real(c)), min_size=1, max_size=3)),
        ),
        st.tuples(st.just("features"), st.sampled_from(numeric_features), numbers()),
    )

    def with_extreme(pair: tuple) -> dict:
        body, (field, name, value) = pair
        return {**body, field: {name: value}, "_extreme": f"{field}.{name}"}

    targeted = st.tuples(base, extreme).map(with_extreme)

    # ---- free-form
    def filter_value(column: str):
        mixed = st.one_of(real(column), numbers(), text, st.booleans())
        if kinds.get(column) == "numeric":
            in_list = st.lists(st.one_of(numbers(), real(column)), min_size=1, max_size=4)
        else:
            in_list = st.lists(st.one_of(real(column), real(column), mixed), min_size=1, max_size=4)
        bound = st.one_of(numbers(), mixed)
        return st.one_of(
            in_list, in_list, st.fixed_dictionaries({}, optional={"min": bound, "max": bound}), st.lists(mixed, max_size=3)
        )

    columns = st.sampled_from([*kinds, *kinds, "no_such_column"])
    filters = st.lists(columns.flatmap(lambda c: st.tuples(st.just(c), filter_value(c))), max_size=3).map(dict)

    def feature_value(name: str):
        q = cols["features"].get(name)
        if q is not None and q["dtype"] == "float32":
            return st.one_of(numbers(), real_feature(name), st.none())
        return st.one_of(real_feature(name), text, st.lists(text, max_size=3), numbers(), st.none())

    names = st.sampled_from([*cols["features"], *cols["features"], "no_such_feature"])
    features = st.lists(names.flatmap(lambda n: st.tuples(st.just(n), feature_value(n))), max_size=3).map(dict)
    k = st.one_of(
        st.integers(1, 30), st.integers(1, 30), st.sampled_from([0, -1, 1000, 1001, 2**63, 10**309, Raw("1e309"), 1.0, True])
    )
    free = st.fixed_dictionaries(
        {"k": k},
        optional={
            "user_id": st.one_of(st.sampled_from(cols["user_ids"]), text),
            "filters": filters,
            "features": features,
            "exclude_item_ids": st.lists(st.one_of(st.sampled_from(cols["item_ids"]), text), max_size=4),
            "exclude_seen": st.one_of(st.booleans(), st.booleans(), numbers()),
        },
    )
    return st.one_of(targeted, free)


def _plain_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def obeys_filters(item: dict, filters: dict, kinds: dict) -> bool:
    """Whether an answered item passes ``filters`` (only filters whose values the check can
    read without the service's conversions: strings for text columns, numbers for numeric)."""
    for column, spec in filters.items():
        value = item.get(column)
        if kinds.get(column) == "numeric":
            if isinstance(spec, dict):
                lo, hi = spec.get("min"), spec.get("max")
                if not all(b is None or _plain_number(b) for b in (lo, hi)):
                    continue
                if value is None or not math.isfinite(value):
                    return False
                if (lo is not None and value < lo) or (hi is not None and value > hi):
                    return False
            elif all(_plain_number(v) for v in spec) and value not in spec:
                return False
        elif isinstance(spec, list) and all(isinstance(v, str) for v in spec):
            if isinstance(value, list) and not set(value) & set(spec):
                return False
            if not isinstance(value, list) and value not in spec:
                return False
    return True


def _documented(openapi: dict, path: str, method: str) -> set[str]:
    return set(openapi[path][method]["responses"])


def test_api_fuzz_served_columns_and_extreme_numbers(fuzz_target, served_columns) -> None:
    """Requests over the served version's real filter columns and features, with
    extreme numbers: never a 5xx, a documented status, and a 200 obeys its filters
    (seeded: ``FUZZ_SEED``, or ``RECSYS_FUZZ_SEED``)."""
    from hypothesis import HealthCheck, Phase, given, note, settings
    from hypothesis import seed as hyp_seed
    from hypothesis import strategies as st

    _, client, version = fuzz_target
    cols = served_columns
    seed = fuzz_seed()
    statuses: Counter = Counter()
    targeted: Counter = Counter()  # (field.column, status) of the requests valid but for extreme numbers
    documented = {
        "/v1/recommendations": _documented(cols["openapi"], "/v1/recommendations", "post"),
        "/v1/recommendations/batch": _documented(cols["openapi"], "/v1/recommendations/batch", "post"),
    }

    @hyp_seed(seed)
    @settings(
        max_examples=300,
        deadline=None,
        database=None,
        phases=[Phase.generate, Phase.shrink],
        suppress_health_check=list(HealthCheck),
    )
    @given(generated=request_bodies(cols), batch=st.integers(0, 3))
    def one(generated: dict, batch: int) -> None:
        body = {k: v for k, v in generated.items() if k != "_extreme"}
        target = generated.get("_extreme")
        path, payload = "/v1/recommendations", body
        if batch == 0:
            path, payload = "/v1/recommendations/batch", {"requests": [body, {"k": 2}]}
        data = to_json(payload)
        note(f"POST {path} {data[:2000]!r}")
        r = client.post(path, data=data, headers={"Content-Type": "application/json"})
        statuses[r.status_code] += 1
        if target is not None:
            targeted[(target, r.status_code)] += 1
        where = f"seed {seed}: POST {path} {data[:500]!r} -> {r.status_code} {r.text[:300]}"
        assert r.status_code < 500, where
        assert str(r.status_code) in documented[path], where
        if r.status_code != 200:
            assert r.json()["error"]["code"], where
            return
        results = r.json()["results"] if path.endswith("batch") else [r.json()]
        answer = results[0]
        assert answer["model_version"] == version, where
        items = answer["items"]
        assert len(items) <= body["k"] and [i["rank"] for i in items] == list(range(1, len(items) + 1)), where
        scores = [i["score"] for i in items]
        assert all(math.isfinite(s) for s in scores) and scores == sorted(scores, reverse=True), where
        assert not {i["item_id"] for i in items} & set(body.get("exclude_item_ids", [])), where
        assert all(obeys_filters(i, body.get("filters") or {}, cols["filterable"]) for i in items), where

    one()
    print(f"\napi-fuzz (served columns, extreme numbers): seed={seed} statuses={dict(sorted(statuses.items()))}")
    print(f"  valid but for extreme numbers in: {dict(sorted(targeted.items()))}")
    assert statuses[200] >= 30 and statuses[422] >= 30, (seed, statuses)  # both deep answers and refusals
    # every served numeric filter column and numeric feature got extreme numbers in an otherwise valid request
    reached = {target for target, _ in targeted}
    wanted = {f"filters.{c}" for c, kind in cols["filterable"].items() if kind == "numeric"}
    wanted |= {f"features.{n}" for n, q in cols["features"].items() if q["dtype"] == "float32"}
    assert wanted <= reached, (seed, sorted(wanted - reached))


EXTREME_TEXTS = [
    "0",
    "-0",
    "-1",
    "1.0",
    "1e3",
    "1e309",
    "-1e309",
    "1" + "0" * 309,
    "9" * 5000,
    "NaN",
    "inf",
    "-inf",
    "0x10",
    " 5",
    "5 ",
    "",
    "1_000",
    "٣",
    "5\x00",
    "%00",
    "true",
]


def test_query_parameters_with_extreme_numbers(fuzz_target, served_columns) -> None:
    """``k`` and ``limit`` as extreme texts on every GET route that reads them: never a 5xx, a documented status."""
    _, client, _ = fuzz_target
    cols = served_columns
    uid, item = cols["user_ids"][0], cols["item_ids"][0]
    routes = [
        ("/v1/users/{user_id}/recommendations", f"/v1/users/{uid}/recommendations", "k"),
        ("/v1/items/{item_id}/similar", f"/v1/items/{item}/similar", "k"),
        ("/v1/users", "/v1/users", "limit"),
        ("/v1/users/{user_id}/history", f"/v1/users/{uid}/history", "limit"),
    ]
    seen: Counter = Counter()
    for template, url, name in routes:
        documented = _documented(cols["openapi"], template, "get")
        for text in EXTREME_TEXTS:
            r = client.get(url, params={name: text})
            where = f"GET {url}?{name}={text[:40]!r} -> {r.status_code} {r.text[:300]}"
            assert r.status_code < 500, where
            assert str(r.status_code) in documented, where
            seen[r.status_code] += 1
        assert client.get(url, params={name: "3"}).status_code == 200, url
    assert set(seen) <= {200, 422} and seen[422] >= len(routes) * (len(EXTREME_TEXTS) - 4), seen
