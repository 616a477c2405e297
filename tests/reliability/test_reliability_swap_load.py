"""Hot swap under load: a real ``recsys serve`` (2 uvicorn workers, LATEST polled
every 0.2 s) answers a steady, bounded request load on 127.0.0.1 while new
versions are published one after another through ``training.publish.publish``.

Each load thread holds one keep-alive connection (http.client: one TCP
connection, so one worker process) and learns which worker it talks to from
``/readyz`` (``instance``) on that same connection. Checked over every answer:

* no request fails (status 200, no connection error);
* ``X-Model-Version`` equals the body's ``model_version`` and names a published
  version, one not published after the answer came and not older than the one
  before the newest published when the request was sent (N-1 or N);
* per worker, never an older version after a newer one (an answer that started
  after another one ended never carries an older version);
* every published version is served, by every worker.

The short variant runs in the default suite; the long one is ``reliability``.
"""

import http.client
import json
import threading
import time
from dataclasses import dataclass, field

import httpx
import pytest

GOLDEN = json.dumps({"user_id": "u000011", "k": 5}).encode()


@dataclass
class Sample:
    conn: int
    instance: str
    sent: float
    done: float
    status: int
    header: str | None
    body_version: str | None
    error: str | None = None


@dataclass
class LoadResult:
    samples: list[Sample] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, sample: Sample) -> None:
        with self.lock:
            self.samples.append(sample)


def _readyz_on(conn: http.client.HTTPConnection) -> dict:
    conn.request("GET", "/readyz")
    reply = conn.getresponse()
    body = reply.read()
    assert reply.status == 200, body
    return json.loads(body)


def _spread_connections(
    port: int, per_instance: int, instances: int, tries: int = 200
) -> list[tuple[http.client.HTTPConnection, str]]:
    """Open keep-alive connections until each of ``instances`` workers holds ``per_instance``
    of them (extra connections are closed). Connections are opened from several threads at
    once so that the kernel hands them to different workers."""
    kept: dict[str, list[http.client.HTTPConnection]] = {}
    lock = threading.Lock()
    deadline = time.monotonic() + 60

    def full() -> bool:
        return len(kept) >= instances and all(len(v) >= per_instance for v in kept.values())

    def opener() -> None:
        for _ in range(tries // 8):
            with lock:
                if full() or time.monotonic() > deadline:
                    return
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=15)
            instance = _readyz_on(conn)["instance"]
            with lock:
                bucket = kept.setdefault(instance, [])
                if len(bucket) < per_instance:
                    bucket.append(conn)
                    continue
            conn.close()

    threads = [threading.Thread(target=opener) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert full(), {k: len(v) for k, v in kept.items()}
    return [(c, inst) for inst, conns in kept.items() for c in conns]


def _worker_versions(url: str, want: int, version: str, timeout: float) -> dict[str, str]:
    """instance -> version from /readyz on fresh connections until ``want`` workers report ``version``."""
    seen: dict[str, str] = {}
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with httpx.Client(timeout=10) as c:  # a new connection each time
            body = c.get(url + "/readyz").json()
        seen[body["instance"]] = body["model_version"]
        if len(seen) >= want and all(v == version for v in seen.values()):
            break
        time.sleep(0.02)
    return seen


def _load(
    conn_id: int,
    conn: http.client.HTTPConnection,
    instance: str,
    port: int,
    stop: threading.Event,
    deadline: float,
    max_requests: int,
    out: LoadResult,
) -> None:
    sent = 0
    while not stop.is_set() and time.monotonic() < deadline and sent < max_requests:
        sent += 1
        t0 = time.monotonic()
        try:
            conn.request("POST", "/v1/recommendations", body=GOLDEN, headers={"Content-Type": "application/json"})
            reply = conn.getresponse()
            data = reply.read()
            t1 = time.monotonic()
            body_version = json.loads(data).get("model_version") if reply.status == 200 else None
            out.add(Sample(conn_id, instance, t0, t1, reply.status, reply.getheader("x-model-version"), body_version))
            if sent % 50 == 0:  # the connection still talks to the same worker
                again = _readyz_on(conn)["instance"]
                if again != instance:
                    out.add(Sample(conn_id, instance, t0, time.monotonic(), 0, None, None, f"worker changed to {again}"))
                    return
        except Exception as exc:
            out.add(Sample(conn_id, instance, t0, time.monotonic(), 0, None, None, repr(exc)))
            conn.close()
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=15)
            try:
                instance = _readyz_on(conn)["instance"]
            except Exception:
                return
    conn.close()


def run_swap_under_load(
    versions, start_server, *, new_versions: int, per_instance: int, dwell_s: float, max_requests: int, budget_s: float
) -> dict:
    first = versions.clone()
    versions.set_latest(first)
    t_start = time.monotonic()
    server = start_server(versions.root, workers=2, RECSYS_POLL_INTERVAL_S="0.2", RECSYS_LOG_LEVEL="warning")
    try:
        server.wait_ready()
        assert set(_worker_versions(server.url, 2, first, 90).values()) == {first}, server.log()
        startup_s = time.monotonic() - t_start
        connections = _spread_connections(server.port, per_instance=per_instance, instances=2)
        instances = sorted({inst for _, inst in connections})

        published = [first]
        publish_start = [0.0]  # monotonic time each version's publish began (LATEST may move from then on)
        publish_end = [0.0]  # ... and had ended (LATEST names it)
        out = LoadResult()
        stop = threading.Event()
        t_load = time.monotonic()
        deadline = t_load + budget_s
        threads = [
            threading.Thread(target=_load, args=(i, conn, inst, server.port, stop, deadline, max_requests, out))
            for i, (conn, inst) in enumerate(connections)
        ]
        for t in threads:
            t.start()
        try:
            time.sleep(dwell_s)
            for _ in range(new_versions):
                assert time.monotonic() < deadline, "time budget spent before every version was published"
                publish_start.append(time.monotonic())
                published.append(versions.publish_clone())
                publish_end.append(time.monotonic())
                workers = _worker_versions(server.url, 2, published[-1], max(1.0, deadline - time.monotonic()))
                assert set(workers) == set(instances) and set(workers.values()) == {published[-1]}, (workers, server.log())
                time.sleep(dwell_s)
        finally:
            stop.set()
            for t in threads:
                t.join(timeout=60)
        assert not any(t.is_alive() for t in threads)
        load_s = time.monotonic() - t_load
        log = server.log()
    finally:
        server.stop()
    return {
        "samples": out.samples,
        "published": published,
        "publish_start": publish_start,
        "publish_end": publish_end,
        "instances": instances,
        "log": log,
        "startup_s": startup_s,
        "load_s": load_s,
    }


def header_version(sample: Sample) -> str:
    """The version an answer names in its ``x-model-version`` header (every 200 must name one)."""
    assert sample.header is not None, ("answered without an x-model-version header", sample)
    return sample.header


def check_and_report(run: dict, label: str) -> None:
    samples: list[Sample] = run["samples"]
    published: list[str] = run["published"]
    index = {v: i for i, v in enumerate(published)}
    start, end = run["publish_start"], run["publish_end"]

    failures = [s for s in samples if s.status != 200 or s.error]
    answered = [s for s in samples if s.status == 200 and not s.error]
    seen: dict[str, int] = {}
    per_instance: dict[str, dict[str, int]] = {}
    for s in answered:
        seen[header_version(s)] = seen.get(header_version(s), 0) + 1
        per_instance.setdefault(s.instance, {}).setdefault(header_version(s), 0)
        per_instance[s.instance][header_version(s)] += 1
    print(
        f"\n{label}: requests={len(samples)} failures={len(failures)} connections={len({s.conn for s in samples})} "
        f"workers={len(run['instances'])} versions_published={len(published)} versions_seen={len(seen)} "
        f"answers_per_version={[seen.get(v, 0) for v in published]} "
        f"per_worker={ {i: [c.get(v, 0) for v in published] for i, c in per_instance.items()} } "
        f"server_start_s={run['startup_s']:.1f} load_s={run['load_s']:.1f}"
    )
    assert not failures, failures[:5]
    assert len(answered) >= 20 * len(published), "too little load to say anything"

    wrong_header = [s for s in answered if s.header != s.body_version]
    assert not wrong_header, wrong_header[:5]
    unknown = [s for s in answered if header_version(s) not in index]
    assert not unknown, unknown[:5]

    def newest_published_by(t: float) -> int:
        return max(i for i in range(len(published)) if end[i] <= t)

    too_new = [s for s in answered if start[index[header_version(s)]] > s.done]
    assert not too_new, ("answered by a version before its publish began", too_new[:5])
    stale = [s for s in answered if index[header_version(s)] < newest_published_by(s.sent) - 1]
    assert not stale, ("older than N-1 at the time", stale[:5])

    # per worker: an answer that started after another ended never carries an older version
    for instance in run["instances"]:
        mine = [s for s in answered if s.instance == instance]
        by_done = sorted(mine, key=lambda s: s.done)
        newest_done = -1
        j = 0
        for s in sorted(mine, key=lambda s: s.sent):
            while j < len(by_done) and by_done[j].done < s.sent:
                newest_done = max(newest_done, index[header_version(by_done[j])])
                j += 1
            assert index[header_version(s)] >= newest_done, (
                f"worker {instance} answered with {s.header} after it had answered with {published[newest_done]}",
                s,
            )
        assert set(per_instance.get(instance, {})) == set(published), (instance, per_instance.get(instance))
    assert set(seen) == set(published)
    assert "Traceback" not in run["log"], run["log"]


def test_swap_under_load_short(versions, start_server) -> None:
    """Default suite: 2 new versions under 4 keep-alive connections (about 15 s once the server is up)."""
    run = run_swap_under_load(
        versions,
        start_server,
        # max_requests per connection: enough to last until the last swap (a loader that yields
        # to serving takes longer; a connection that stops early never sees the last version)
        new_versions=2,
        per_instance=2,
        dwell_s=1.0,
        max_requests=25_000,
        budget_s=90,
    )
    check_and_report(run, "swap-under-load (short)")


@pytest.mark.reliability
def test_swap_under_load_many_versions(versions, start_server) -> None:
    """8 new versions, 8 keep-alive connections (4 per worker), 2 s of load on each version."""
    run = run_swap_under_load(
        versions,
        start_server,
        new_versions=8,
        per_instance=4,
        dwell_s=2.0,
        max_requests=50_000,
        budget_s=300,
    )
    check_and_report(run, "swap-under-load (reliability)")
