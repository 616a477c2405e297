"""Slow, idle and half-sent connections against a real uvicorn process (issue 17, findings 1 and 6).

Each case holds more hostile connections than the limit it attacks (the
in-flight cap, the connection cap) while ordinary requests, each on a fresh
connection with a one-second client timeout, keep being answered.
"""

import contextlib
import json
import resource
import socket
import subprocess
import sys
import time
from collections.abc import Iterator

import httpx
import pytest

from serving.connections import FD_RESERVE, connection_cap

GOLDEN = {"user_id": "u000011", "k": 5}


def _open(port: int, payload: bytes) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    if payload:
        sock.sendall(payload)
    return sock


def _state(sock: socket.socket, wait_s: float = 0.05) -> tuple[str, bytes]:
    """("open", b"") while the server keeps the connection, else ("closed", what it sent before closing)."""
    sock.settimeout(wait_s)
    data = b""
    try:
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                return "closed", data
            data += chunk
    except TimeoutError:
        return ("open", data) if not data else ("closed" if b"connection: close" in data.lower() else "open", data)
    except (ConnectionResetError, BrokenPipeError):
        return "closed", data


@contextlib.contextmanager
def _sockets(port: int, payload: bytes, count: int) -> Iterator[list[socket.socket]]:
    socks = [_open(port, payload) for _ in range(count)]
    try:
        yield socks
    finally:
        for s in socks:
            s.close()


def _answers_within_a_second(url: str, requests: int = 10) -> None:
    """Ordinary clients, each on a new connection: every one answered (200) within a second."""
    for _ in range(requests):
        with httpx.Client(timeout=1.0) as client:
            reply = client.post(url + "/v1/recommendations", json=GOLDEN)
        assert reply.status_code == 200, reply.text
        assert len(reply.json()["items"]) == 5


def _stalled_body_head(port: int) -> bytes:
    return (
        b"POST /v1/recommendations HTTP/1.1\r\nHost: 127.0.0.1:%d\r\ncontent-type: application/json\r\n"
        b"content-length: 65536\r\n\r\n{" % port
    )


@pytest.fixture(scope="module")
def guarded(tmp_path_factory, make_versions, start_server):
    """A server with short limits: 3 s to read a request, 3 s idle, at most 100 connections."""
    versions = make_versions(tmp_path_factory.mktemp("connections_root"))
    versions.set_latest(versions.clone())
    server = start_server(
        versions.root,
        RECSYS_REQUEST_READ_TIMEOUT_S="3",
        RECSYS_IDLE_TIMEOUT_S="3",
        RECSYS_MAX_CONNECTIONS="100",
        RECSYS_MAX_CONCURRENCY="64",
    )
    server.wait_ready()
    return server


def test_stalled_bodies_do_not_fill_the_in_flight_cap_and_get_408(guarded) -> None:
    """Finding 1: 90 connections (more than the in-flight cap of 64) send a POST's headers and one
    byte of a 64 KiB body. Other clients are still answered, /readyz stays ready, and every
    stalled request gets a 408 JSON error once the read limit passes."""
    server = guarded
    with _sockets(server.port, _stalled_body_head(server.port), 90) as stalled:
        time.sleep(0.3)
        _answers_within_a_second(server.url)
        ready = httpx.get(server.url + "/readyz", timeout=1.0)
        assert ready.status_code == 200, ready.text
        time.sleep(3.5)  # past the read limit
        outcomes = [_state(s, wait_s=2.0) for s in stalled]
    assert all(state == "closed" for state, _ in outcomes), [o for o in outcomes if o[0] != "closed"][:3]
    for _, data in outcomes:
        head, _, body = data.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 408"), data[:200]
        assert json.loads(body)["error"]["code"] == "request_timeout"


def test_stalled_bodies_beyond_the_service_default_cap(make_versions, tmp_path_factory, start_server) -> None:
    """Finding 1 as reported: 256 stalled bodies against the default settings (in-flight cap 256)."""
    versions = make_versions(tmp_path_factory.mktemp("stalled_default_root"))
    versions.set_latest(versions.clone())
    server = start_server(versions.root)
    server.wait_ready()
    try:
        with _sockets(server.port, _stalled_body_head(server.port), 260) as stalled:
            time.sleep(0.5)
            _answers_within_a_second(server.url)
            assert httpx.get(server.url + "/readyz", timeout=1.0).status_code == 200
            assert all(_state(s, wait_s=0.01)[0] == "open" for s in stalled[:20]), "the read limit is 10 s by default"
    finally:
        server.stop()


def test_more_idle_and_half_sent_connections_than_the_cap(guarded) -> None:
    """Finding 6: 150 idle and 60 half-header connections against a cap of 100. New clients
    are answered (the longest-waiting connections make room), the server never holds more
    than the cap, half-sent headers get 408, and idle connections are closed by the idle limit."""
    server = guarded
    half_header = b"POST /v1/recommendations HTTP/1.1\r\nHost: x\r\n"
    with _sockets(server.port, b"", 150) as idle, _sockets(server.port, half_header, 60) as half:
        time.sleep(0.3)
        _answers_within_a_second(server.url)
        still_open = sum(_state(s, wait_s=0.005)[0] == "open" for s in idle + half)
        assert still_open <= 100, f"{still_open} of our 210 connections still open; the cap is 100"
        time.sleep(3.5)  # past the idle and read limits
        idle_states = [_state(s, wait_s=1.0) for s in idle]
        half_states = [_state(s, wait_s=1.0) for s in half]
        _answers_within_a_second(server.url, requests=3)
    assert all(state == "closed" for state, _ in idle_states)
    assert all(state == "closed" for state, _ in half_states)
    timed_out = [data for _, data in half_states if data]
    assert timed_out, "half-sent requests that were not evicted get a 408 answer"
    for data in timed_out:
        assert data.startswith(b"HTTP/1.1 408"), data[:200]
        assert b'"request_timeout"' in data


def test_blank_lines_do_not_keep_a_connection_alive(guarded) -> None:
    """Bytes that begin no request (CRLFs, sent every second) do not reset the idle limit."""
    server = guarded
    sock = _open(server.port, b"\r\n")
    try:
        closed_after = None
        start = time.monotonic()
        for _ in range(8):
            time.sleep(1.0)
            try:
                sock.sendall(b"\r\n")
            except OSError:
                closed_after = time.monotonic() - start
                break
            if _state(sock, wait_s=0.01)[0] == "closed":
                closed_after = time.monotonic() - start
                break
        assert closed_after is not None, "a connection sending only blank lines stayed open for 8 s (idle limit 3 s)"
    finally:
        sock.close()


def test_oversized_headers_get_431(guarded) -> None:
    server = guarded
    sock = _open(server.port, b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Filler: " + b"a" * 20_000)
    try:
        state, data = _state(sock, wait_s=2.0)
    finally:
        sock.close()
    assert state == "closed"
    assert data.startswith(b"HTTP/1.1 431"), data[:200]
    assert b'"headers_too_large"' in data


def test_slow_but_complete_requests_are_still_answered(guarded) -> None:
    """A request whose head and body arrive in pieces within the read limit is answered normally."""
    server = guarded
    body = json.dumps(GOLDEN).encode()
    head = b"POST /v1/recommendations HTTP/1.1\r\nHost: x\r\ncontent-type: application/json\r\ncontent-length: %d\r\n" % len(body)
    sock = _open(server.port, head[:20])
    try:
        for piece in (head[20:], b"\r\n", body[:5], body[5:]):
            time.sleep(0.3)
            sock.sendall(piece)
        sock.settimeout(5)
        data = b""
        while b"\r\n\r\n" not in data or not data.rstrip().endswith(b"}"):
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    finally:
        sock.close()
    assert data.startswith(b"HTTP/1.1 200"), data[:300]
    assert json.loads(data.partition(b"\r\n\r\n")[2])["strategy"] == "personal"


def test_readiness_reports_a_saturated_worker(versions, make_client) -> None:
    """While the in-flight cap is full, /readyz answers 503 overloaded (a load balancer stops sending)."""
    versions.set_latest(versions.clone())
    with make_client(versions.root, max_concurrency=4) as client:
        pressure = client.app.state.pressure
        assert client.get("/readyz").status_code == 200
        pressure.in_flight = 4
        try:
            reply = client.get("/readyz")
        finally:
            pressure.in_flight = 0
        assert reply.status_code == 503
        assert reply.json()["reason"] == "overloaded"
        assert client.get("/readyz").status_code == 200


def test_the_connection_cap_stays_below_the_open_file_limit() -> None:
    assert connection_cap(4096, 20_000) == 4096
    assert connection_cap(4096, 1024) == 1024 - FD_RESERVE
    assert connection_cap(10, 5) == 1


def test_the_server_raises_its_own_open_file_limit() -> None:
    """raise_fd_limit lifts the soft limit to the hard one (checked in a child whose soft limit was lowered)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    lowered = min(soft, 512)
    code = (
        "import resource; from serving.connections import raise_fd_limit; "
        f"resource.setrlimit(resource.RLIMIT_NOFILE, ({lowered}, {hard})); "
        "print(raise_fd_limit(), resource.getrlimit(resource.RLIMIT_NOFILE)[0])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    expected = hard if hard != resource.RLIM_INFINITY else max(lowered, 1 << 20)
    assert [int(v) for v in out] == [expected, expected]
