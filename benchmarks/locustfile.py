"""Storefront traffic for locust, against any running service (``--host``).

    locust -f benchmarks/locustfile.py --host http://127.0.0.1:8000 --headless \\
        --users 20 --spawn-rate 10 --run-time 20s --max-fail-ratio 0.001 --max-p99-ms 250

The mix (``--mix``, relative weights, default ``known=60,visitor=20,similar=15,batch=5``):

- ``known``: ``POST /v1/recommendations`` for a known user (``{"user_id", "k"}``);
- ``visitor``: ``POST /v1/recommendations`` for a new visitor described by the
  model's query features (``{"features": {...}, "k"}``; just ``{"k"}``, the
  popular-items answer, when the model reads no feature besides ``user_id``);
- ``similar``: ``GET /v1/items/{item_id}/similar?k=``;
- ``batch``: ``POST /v1/recommendations/batch`` with ``--batch-size`` known users
  and visitors.

Every answer is checked (status 200, JSON with at most k items; a batch has one
result per request); anything else counts as a failure.

Ids come from the public API at start: ``GET /v1/model`` (query features and
their defaults), ``GET /v1/users?limit=`` (known user ids, where the service
offers it) and the item ids found in popular and personal answers; or from the
command line (``--user-ids``, ``--item-ids``, comma separated; they win).
``--visitor-features`` gives a JSON object of lists to draw visitor feature
values from (e.g. ``'{"country": ["de", "fr"], "age": [25, 40]}'``); without
it numbers are drawn around the model's defaults and strings are random tokens
(the out-of-vocabulary bucket, which costs the service the same).

Thresholds: when the test ends (``quitting`` event), the process exit code is
set to 1 if fewer than ``--min-requests`` requests were made, the failure ratio
is above ``--max-fail-ratio`` or the overall p99 (locust's bucketed percentile)
is above ``--max-p99-ms`` (0 = no latency check), else 0; the verdict is logged.
Bound every run with ``--run-time`` (and ``--iterations`` where wanted).
"""

from __future__ import annotations

import itertools
import json
import logging
import random
import threading
from collections.abc import Sequence
from typing import Any

from locust import FastHttpUser, events, task
from locust.exception import StopUser

log = logging.getLogger("storefront")

DEFAULT_MIX = "known=60,visitor=20,similar=15,batch=5"
TASKS = ("known", "visitor", "similar", "batch")


# --------------------------------------------------------------------------- pure helpers (unit-tested)
def parse_mix(text: str) -> dict[str, int]:
    """``"known=60,visitor=20"`` -> weights; unknown names or negative weights are errors."""
    out = {name: 0 for name in TASKS}
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        name, sep, value = part.partition("=")
        name = name.strip()
        if not sep or name not in TASKS:
            raise ValueError(f"bad --mix entry {part!r}; use {','.join(f'{t}=N' for t in TASKS)}")
        weight = int(value)
        if weight < 0:
            raise ValueError(f"--mix weight of {name} must be >= 0")
        out[name] = weight
    if not any(out.values()):
        raise ValueError("--mix gives every task weight 0")
    return out


def split_ids(text: str | None) -> list[str]:
    return [x.strip() for x in (text or "").split(",") if x.strip()]


def threshold_violations(
    num_requests: int,
    num_failures: int,
    p99_ms: float | None,
    *,
    max_fail_ratio: float,
    max_p99_ms: float,
    min_requests: int = 1,
) -> list[str]:
    """Why the run fails its thresholds (empty list: it passes)."""
    problems = []
    if num_requests < min_requests:
        problems.append(f"only {num_requests} requests made (need at least {min_requests})")
    ratio = num_failures / num_requests if num_requests else 0.0
    if ratio > max_fail_ratio:
        problems.append(f"failure ratio {ratio:.4f} above {max_fail_ratio:.4f} ({num_failures}/{num_requests})")
    if max_p99_ms > 0 and p99_ms is not None and p99_ms > max_p99_ms:
        problems.append(f"p99 {p99_ms:.0f} ms above {max_p99_ms:.0f} ms")
    return problems


def visitor_features(query_inputs: Sequence[dict], choices: dict[str, list], rng: random.Random) -> dict[str, Any]:
    """Feature values for a new visitor: from ``choices`` when given, else near the default (numbers) or a random token."""
    out: dict[str, Any] = {}
    for qi in query_inputs:
        name = qi.get("name")
        if not name or name == "user_id":
            continue
        if choices.get(name):
            out[name] = rng.choice(choices[name])
        elif qi.get("dtype") == "float32":
            default = qi.get("default")
            base = float(default) if isinstance(default, (int, float)) else 1.0
            out[name] = round(base * rng.uniform(0.5, 1.5), 3)
        elif qi.get("kind") == "multi_categorical":
            out[name] = [f"t{rng.randrange(50)}" for _ in range(rng.randint(1, 3))]
        else:
            out[name] = f"v{rng.randrange(50)}"
    return out


def check_answer(status: int, payload: Any, k: int, batch: int | None = None) -> str | None:
    """None if the answer is well formed, else why not."""
    if status != 200:
        return f"HTTP {status}"
    if not isinstance(payload, dict):
        return "answer is not a JSON object"
    if batch is not None:
        results = payload.get("results")
        if not isinstance(results, list) or len(results) != batch:
            return f"batch answer has {len(results) if isinstance(results, list) else 'no'} results for {batch} requests"
        for r in results:
            why = check_answer(200, r, k)
            if why:
                return f"batch entry: {why}"
        return None
    items = payload.get("items")
    if not isinstance(items, list) or len(items) > k:
        return "answer has no item list" if not isinstance(items, list) else f"{len(items)} items for k={k}"
    return None


# --------------------------------------------------------------------------- command line
@events.init_command_line_parser.add_listener
def _options(parser: Any) -> None:
    parser.add_argument("--max-fail-ratio", type=float, default=0.0, help="exit 1 if failed/all requests exceeds this")
    parser.add_argument("--max-p99-ms", type=float, default=0.0, help="exit 1 if the overall p99 exceeds this (0: no check)")
    parser.add_argument("--min-requests", type=int, default=1, help="exit 1 if fewer requests were made")
    parser.add_argument("--mix", default=DEFAULT_MIX, help="task weights: known, visitor, similar, batch")
    parser.add_argument("--k", type=int, default=10, help="items per answer")
    parser.add_argument("--batch-size", type=int, default=8, help="requests per batch call")
    parser.add_argument("--user-ids", default="", help="known user ids (comma separated; default: discovered)")
    parser.add_argument("--item-ids", default="", help="item ids for similar-items (default: discovered)")
    parser.add_argument("--visitor-features", default="", help="JSON object: feature -> list of values for visitors")
    parser.add_argument("--discover-users", type=int, default=100, help="known users to ask GET /v1/users for")
    parser.add_argument("--think-ms", default="50,250", help="pause between a user's requests: min,max ms")
    parser.add_argument("--seed", type=int, default=None, help="seed for the traffic's random choices")


# --------------------------------------------------------------------------- discovery
class Catalog:
    """What the traffic needs to know about the served model, found once per process."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.ready = False
        self.user_ids: list[str] = []
        self.item_ids: list[str] = []
        self.query_inputs: list[dict] = []
        self.choices: dict[str, list] = {}
        self.version: str | None = None

    def discover(self, client: Any, options: Any) -> None:
        with self.lock:
            if self.ready:
                return
            self.user_ids = split_ids(options.user_ids)
            self.item_ids = split_ids(options.item_ids)
            if options.visitor_features:
                self.choices = {k: list(v) for k, v in json.loads(options.visitor_features).items()}
            with client.get("/v1/model", name="discovery", catch_response=True) as r:
                if r.status_code == 200:
                    model = r.json()
                    self.query_inputs = list(model.get("query_inputs") or [])
                    self.version = model.get("model_version")
                    r.success()
                else:
                    r.failure(f"GET /v1/model: HTTP {r.status_code}")
            for limit in dict.fromkeys((options.discover_users, 20)):  # a smaller ask if the service caps it
                if self.user_ids:
                    break
                with client.get(f"/v1/users?limit={limit}", name="discovery", catch_response=True) as r:
                    if r.status_code == 200:
                        self.user_ids = list(r.json().get("user_ids") or [])
                    r.success()  # an older service without /v1/users is not a failure of the service
            if not self.user_ids:
                log.warning("no known user ids (give --user-ids): known-user traffic becomes visitor traffic")
            if not self.item_ids:
                found: list[str] = []
                bodies = [{"k": 50}] + [{"user_id": u, "k": 20} for u in self.user_ids[:10]]
                for body in bodies:
                    with client.post("/v1/recommendations", json=body, name="discovery", catch_response=True) as r:
                        if r.status_code == 200:
                            found += [it["item_id"] for it in r.json().get("items", []) if "item_id" in it]
                            r.success()
                        else:
                            r.failure(f"POST /v1/recommendations: HTTP {r.status_code}")
                self.item_ids = list(dict.fromkeys(found))
            log.info(
                "storefront traffic: model %s, %d known users, %d items, visitor features %s",
                self.version,
                len(self.user_ids),
                len(self.item_ids),
                [q.get("name") for q in self.query_inputs if q.get("name") != "user_id"],
            )
            self.ready = True


CATALOG = Catalog()
_USER_NUMBERS = itertools.count()


# --------------------------------------------------------------------------- the user
def _think(user: Any) -> float:
    lo, _, hi = str(user.environment.parsed_options.think_ms).partition(",")
    lo_ms = float(lo or 0)
    hi_ms = float(hi or lo_ms)
    return random.uniform(lo_ms, max(lo_ms, hi_ms)) / 1000.0


class Shopper(FastHttpUser):
    """One storefront session: a mix of the four request kinds."""

    wait_time = _think

    def on_start(self) -> None:
        opts = self.environment.parsed_options
        CATALOG.discover(self.client, opts)
        self.rng = random.Random(None if opts.seed is None else opts.seed * 100_003 + next(_USER_NUMBERS))
        self.k = opts.k
        weights = parse_mix(opts.mix)
        if not CATALOG.user_ids:
            weights["visitor"] += weights.pop("known")
            weights["known"] = 0
        if not CATALOG.item_ids:
            weights["similar"] = 0
        if not any(weights.values()):
            raise StopUser()
        self.kinds = [k for k in TASKS if weights.get(k)]
        self.weights = [weights[k] for k in self.kinds]

    def _known_body(self) -> dict:
        return {"user_id": self.rng.choice(CATALOG.user_ids), "k": self.k}

    def _visitor_body(self) -> dict:
        features = visitor_features(CATALOG.query_inputs, CATALOG.choices, self.rng)
        return {"features": features, "k": self.k} if features else {"k": self.k}

    def _post(self, path: str, body: dict, name: str, batch: int | None = None) -> None:
        with self.client.post(path, json=body, name=name, catch_response=True) as r:
            try:
                payload = r.json() if r.status_code == 200 else None
            except ValueError:
                payload = None
            why = check_answer(r.status_code, payload, self.k, batch)
            if why:
                r.failure(why)
            else:
                r.success()

    @task
    def storefront(self) -> None:
        kind = self.rng.choices(self.kinds, self.weights)[0]
        if kind == "known":
            self._post("/v1/recommendations", self._known_body(), "POST /v1/recommendations [known user]")
        elif kind == "visitor":
            self._post("/v1/recommendations", self._visitor_body(), "POST /v1/recommendations [visitor]")
        elif kind == "similar":
            item = self.rng.choice(CATALOG.item_ids)
            with self.client.get(
                f"/v1/items/{item}/similar?k={self.k}", name="GET /v1/items/[id]/similar", catch_response=True
            ) as r:
                try:
                    payload = r.json() if r.status_code == 200 else None
                except ValueError:
                    payload = None
                why = check_answer(r.status_code, payload, self.k)
                r.failure(why) if why else r.success()
        else:
            n = self.environment.parsed_options.batch_size
            reqs = [
                self._known_body() if CATALOG.user_ids and self.rng.random() < 0.7 else self._visitor_body() for _ in range(n)
            ]
            self._post("/v1/recommendations/batch", {"requests": reqs}, "POST /v1/recommendations/batch", batch=n)


# --------------------------------------------------------------------------- verdict
@events.quitting.add_listener
def _verdict(environment: Any, **_: Any) -> None:
    opts = environment.parsed_options
    if opts is None:
        return
    total = environment.stats.total
    p99 = total.get_response_time_percentile(0.99) if total.num_requests else None
    problems = threshold_violations(
        total.num_requests,
        total.num_failures,
        p99,
        max_fail_ratio=opts.max_fail_ratio,
        max_p99_ms=opts.max_p99_ms,
        min_requests=opts.min_requests,
    )
    if problems:
        log.error("thresholds FAILED: %s", "; ".join(problems))
        environment.process_exit_code = 1
    else:
        log.info(
            "thresholds passed: %d requests, failure ratio %.4f <= %.4f, p99 %s ms (limit %s)",
            total.num_requests,
            total.fail_ratio,
            opts.max_fail_ratio,
            p99,
            opts.max_p99_ms or "none",
        )
        environment.process_exit_code = 0
