"""Live tests: `realnet serve` on a real port, real clients, then exact replay of the recording.

Each test starts the server as a subprocess (`python -m realnet serve --port 0 --record ...`),
drives it with clients, stops it with a signal, requires the exit status, and requires
`replay_exact` to match every recorded syscall: the live run and the pure machine agree.
Every socket has a timeout and every wait is bounded; the server is killed in a finally.
"""

from __future__ import annotations

import contextlib
import http.client
import re
import shutil
import signal
import socket
import struct
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from simnet.drivers.replay import replay_exact
from simnet.sim.resim import resimulate
from simnet.server import syscalls as sc
from simnet.server.apps.http import pattern
from simnet.trace import read_trace
from live_server import SOCKET_TIMEOUT, RealnetServer

MODES = {"lt": (), "et": ("--edge-triggered",)}


def _records(path: Path) -> list[bytes]:
    return path.read_bytes().splitlines()


def assert_replays(path: Path, *, exited: bool = True) -> None:
    """replay_exact matches every syscall in the trace (and the Exit record, if `exited`); and
    for a run that ended as it should, re-simulating the recorded clients in simnet gives every
    connection the response stream it got live."""
    report = replay_exact(path)
    assert report.ok, report.format()
    assert report.exited is exited, report.format()
    lines = _records(path)
    syscalls = len(lines) - 1 - (1 if exited else 0)  # minus the header (and the Exit record)
    assert report.matched == syscalls, report.format()
    if exited:
        resim = resimulate(path)
        assert resim.ok, resim.format()


@contextlib.contextmanager
def serving(tmp_path: Path, app: str, *args: str, name: str = "trace.jsonl") -> Iterator[RealnetServer]:
    """A recording server; on a clean exit of the block: SIGTERM, exit 0, exact replay."""
    trace = tmp_path / name
    server = RealnetServer(app, *args, record=trace)
    server.start()
    try:
        yield server
        rc = server.stop(signal.SIGTERM)
        assert rc == 0, (rc, server.stdout, server.stderr)
        assert server.stderr == b"", server.stderr
        assert re.match(rb"realnet: stopped \(shutdown\) after ", server.stdout), server.stdout
        assert_replays(trace)
    finally:
        server.kill()


def connect(server: RealnetServer) -> socket.socket:
    return socket.create_connection(server.addr, timeout=SOCKET_TIMEOUT)


def recv_until_eof(sock: socket.socket, limit: int = 64 << 20) -> bytes:
    chunks = []
    total = 0
    while True:
        data = sock.recv(65536)
        if not data:
            return b"".join(chunks)
        chunks.append(data)
        total += len(data)
        assert total <= limit, "more data than expected"


def read_response(f: "socket.SocketIO | object") -> tuple[int, dict[bytes, bytes], bytes]:
    """Read one Content-Length response from a buffered reader (raw-socket tests)."""
    status_line = f.readline()  # type: ignore[attr-defined]
    assert status_line.startswith(b"HTTP/1.1 "), status_line
    status = int(status_line.split()[1])
    headers: dict[bytes, bytes] = {}
    while True:
        line = f.readline()  # type: ignore[attr-defined]
        assert line, "EOF inside a response head"
        if line == b"\r\n":
            break
        name, _, value = line.partition(b":")
        headers[name.strip().lower()] = value.strip()
    body = f.read(int(headers[b"content-length"]))  # type: ignore[attr-defined]
    return status, headers, body


def summary_count(stdout: bytes, what: str) -> int:
    m = re.search(rb"(\d+) " + what.encode(), stdout)
    assert m is not None, stdout
    return int(m.group(1))


# -- http ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", list(MODES))
def test_http_client_keepalive(tmp_path: Path, mode: str) -> None:
    """Several requests over one keep-alive connection with http.client, including a POST body
    and a 200 kB response (many partial writes on a loopback socket)."""
    with serving(tmp_path, "http", *MODES[mode]) as server:
        conn = http.client.HTTPConnection(server.host, server.port, timeout=SOCKET_TIMEOUT)
        try:
            conn.request("GET", "/")
            r = conn.getresponse()
            assert (r.status, r.read()) == (200, b"Hello from simnet!\n")
            first_sock = conn.sock
            body = b"the body of a POST, " * 100
            conn.request("POST", "/echo", body=body, headers={"Content-Type": "text/plain"})
            r = conn.getresponse()
            assert (r.status, r.read()) == (200, body)
            conn.request("GET", "/bytes/200000")
            r = conn.getresponse()
            assert r.status == 200
            assert r.read() == pattern(0, 200000)
            conn.request("GET", "/nowhere")
            r = conn.getresponse()
            assert r.status == 404
            r.read()
            assert conn.sock is first_sock, "the connection was not kept alive"
        finally:
            conn.close()
    assert summary_count(server.stdout, "requests") == 4
    assert summary_count(server.stdout, "connections") == 1


@pytest.mark.parametrize("mode", list(MODES))
def test_pipelined_requests_raw_socket(tmp_path: Path, mode: str) -> None:
    """Five requests in one send; five responses, in order, the last closing the connection."""
    requests = (
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"
        b"GET /bytes/100 HTTP/1.1\r\nHost: x\r\n\r\n"
        b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello"
        b"GET /bytes/70000 HTTP/1.1\r\nHost: x\r\n\r\n"
        b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    with serving(tmp_path, "http", *MODES[mode]) as server:
        with connect(server) as sock:
            sock.sendall(requests)
            f = sock.makefile("rb")
            got = [read_response(f) for _ in range(5)]
            assert f.read() == b""  # then EOF: the server closed after Connection: close
            f.close()  # else the file keeps the fd open, and the server lingers 2 s for our FIN
        assert [(s, b) for s, _, b in got] == [
            (200, b"Hello from simnet!\n"),
            (200, pattern(0, 100)),
            (200, b"hello"),
            (200, pattern(0, 70000)),
            (200, b"Hello from simnet!\n"),
        ]
        assert got[-1][1][b"connection"] == b"close"


@pytest.mark.parametrize("mode", list(MODES))
def test_half_close_after_request(tmp_path: Path, mode: str) -> None:
    """A client that sends its request and shuts down its write side still gets the whole
    response, then EOF (the server flushes after the peer's FIN, then closes)."""
    with serving(tmp_path, "http", *MODES[mode]) as server:
        with connect(server) as sock:
            sock.sendall(b"GET /bytes/300000 HTTP/1.1\r\nHost: x\r\n\r\n")
            sock.shutdown(socket.SHUT_WR)
            data = recv_until_eof(sock)
        head, _, body = data.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200 ")
        assert body == pattern(0, 300000)


@pytest.mark.parametrize("mode", list(MODES))
def test_reset_mid_response(tmp_path: Path, mode: str) -> None:
    """A client that closes with SO_LINGER (1, 0) halfway through a large response sends a RST;
    the server drops that connection (a reset, not a crash) and goes on serving."""
    with serving(tmp_path, "http", *MODES[mode]) as server:
        sock = connect(server)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.sendall(b"GET /bytes/20000000 HTTP/1.1\r\nHost: x\r\n\r\n")
        got = 0
        while got < 100_000:
            chunk = sock.recv(65536)
            assert chunk
            got += len(chunk)
        sock.close()  # RST: unread data in our buffer and linger 0
        time.sleep(0.2)
        conn = http.client.HTTPConnection(server.host, server.port, timeout=SOCKET_TIMEOUT)
        try:
            conn.request("GET", "/")
            assert conn.getresponse().read() == b"Hello from simnet!\n"
        finally:
            conn.close()
    assert summary_count(server.stdout, "resets") == 1


def test_graceful_shutdown_finishes_in_flight_response(tmp_path: Path) -> None:
    """SIGTERM while a 20 MB response is being sent: the response completes, then exit 0; a
    second, idle keep-alive connection is closed at once."""
    n = 20_000_000
    # A grace period well beyond what the response needs: on a busy machine, recording every
    # send of 20 MB can take longer than the default 5 s, and a forced close would cut the
    # response short -- a different test (the grace period's end) than this one.
    with serving(tmp_path, "http", "--shutdown-grace", "60") as server:
        idle = http.client.HTTPConnection(server.host, server.port, timeout=SOCKET_TIMEOUT)
        idle.request("GET", "/")
        assert idle.getresponse().read() == b"Hello from simnet!\n"
        with connect(server) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
            sock.sendall(b"GET /bytes/%d HTTP/1.1\r\nHost: x\r\n\r\n" % n)
            first = sock.recv(65536)
            server.send_signal(signal.SIGTERM)
            time.sleep(0.3)  # the server is in its shutdown now, with our response in flight
            data = first + recv_until_eof(sock)
        head, _, body = data.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200 ")
        assert len(body) == n and body == pattern(0, n)
        # The idle connection was closed by the shutdown: reading gives EOF.
        assert idle.sock is not None
        idle.sock.settimeout(SOCKET_TIMEOUT)
        assert idle.sock.recv(10) == b""
        idle.close()


def test_sigint_stops_an_idle_server_promptly(tmp_path: Path) -> None:
    """An idle server waits in epoll_wait with no timeout; SIGINT must cut that short."""
    trace = tmp_path / "idle.jsonl"
    server = RealnetServer("http", record=trace)
    server.start()
    try:
        time.sleep(0.3)
        t0 = time.monotonic()
        assert server.stop(signal.SIGINT) == 0, server.stderr
        assert time.monotonic() - t0 < 3.0
        assert server.stderr == b""
    finally:
        server.kill()
    assert_replays(trace)


def test_second_signal_stops_at_once(tmp_path: Path) -> None:
    """A client that stops reading keeps a response in flight; the first SIGTERM waits for it
    (grace 30 s), a second one stops now: exit 1, and the trace replays up to where it ends."""
    trace = tmp_path / "forced.jsonl"
    server = RealnetServer("http", "--shutdown-grace", "30", record=trace)
    server.start()
    try:
        with connect(server) as sock:
            sock.sendall(b"GET /bytes/50000000 HTTP/1.1\r\nHost: x\r\n\r\n")
            sock.recv(1000)
            time.sleep(0.3)  # the server's send buffer fills; the response is stuck in flight
            server.send_signal(signal.SIGTERM)
            time.sleep(0.5)
            assert server.proc is not None and server.proc.poll() is None  # still waiting for us
            t0 = time.monotonic()
            rc = server.stop(signal.SIGTERM)
            assert time.monotonic() - t0 < 3.0
        assert rc == 1, (server.stdout, server.stderr)
        assert b"second signal" in server.stderr
    finally:
        server.kill()
    assert_replays(trace, exited=False)


def test_trace_survives_kill_9(tmp_path: Path) -> None:
    """kill -9 of an idle server: every request it served is in the trace, and it replays."""
    trace = tmp_path / "killed.jsonl"
    server = RealnetServer("http", record=trace)
    server.start()
    try:
        conn = http.client.HTTPConnection(server.host, server.port, timeout=SOCKET_TIMEOUT)
        for _ in range(3):
            conn.request("GET", "/bytes/1000")
            assert conn.getresponse().read() == pattern(0, 1000)
        time.sleep(0.2)  # back in a blocking epoll_wait: the recorder flushed before it
        assert server.stop(signal.SIGKILL) == -signal.SIGKILL
        conn.close()
    finally:
        server.kill()
    assert_replays(trace, exited=False)
    assert trace.read_bytes().count(b'"Send"') >= 3


# -- echo ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", list(MODES))
def test_echo_raw_socket(tmp_path: Path, mode: str) -> None:
    """1 MB through echo while reading concurrently, then half-close: everything comes back,
    then EOF."""
    payload = bytes(range(256)) * 4096
    with serving(tmp_path, "echo", *MODES[mode]) as server:
        with connect(server) as sock:
            sock.sendall(b"ping")
            assert sock.recv(10) == b"ping"
            errors: list[BaseException] = []

            def send_all() -> None:
                try:
                    sock.sendall(payload)
                    sock.shutdown(socket.SHUT_WR)
                except BaseException as exc:  # noqa: BLE001 - reported by the main thread
                    errors.append(exc)

            sender = threading.Thread(target=send_all, daemon=True)
            sender.start()
            back = recv_until_eof(sock)
            sender.join(SOCKET_TIMEOUT)
            assert not errors
        assert back == payload


# -- third-party clients ------------------------------------------------------------------------


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed (apt-get install -y curl)")
def test_curl(tmp_path: Path) -> None:
    with serving(tmp_path, "http") as server:
        u = server.url
        out = subprocess.run(
            ["curl", "-sS", "--max-time", "10", f"{u}/", f"{u}/bytes/1000", f"{u}/nowhere"],
            capture_output=True,
            timeout=20,
            check=True,
        ).stdout
        assert out == b"Hello from simnet!\n" + pattern(0, 1000) + b"404 Not Found\n"
        out = subprocess.run(
            ["curl", "-sS", "--max-time", "10", "--data-binary", "posted by curl", f"{u}/echo"],
            capture_output=True,
            timeout=20,
            check=True,
        ).stdout
        assert out == b"posted by curl"
    # curl reused its connection for the three URLs: two connections in all.
    assert summary_count(server.stdout, "connections") == 2
    assert summary_count(server.stdout, "requests") == 4


@pytest.mark.skipif(shutil.which("wrk") is None, reason="wrk is not installed (apt-get install -y wrk)")
@pytest.mark.parametrize("mode", list(MODES))
def test_wrk(tmp_path: Path, mode: str) -> None:
    with serving(tmp_path, "http", *MODES[mode]) as server:
        res = subprocess.run(
            ["wrk", "-t1", "-c4", "-d1s", "--timeout", "5s", f"{server.url}/bytes/100"],
            capture_output=True,
            timeout=30,
            check=True,
            text=True,
        )
        m = re.search(r"(\d+) requests in", res.stdout)
        assert m is not None and int(m.group(1)) > 0, res.stdout
        assert "Non-2xx" not in res.stdout, res.stdout
        # wrk stops at the deadline by closing its sockets with responses possibly unread, which
        # is a RST: the server counts a few resets at the end, and that is fine.
        errors = re.search(r"Socket errors: connect (\d+), read \d+, write \d+, timeout (\d+)", res.stdout)
        assert errors is None or errors.groups() == ("0", "0"), res.stdout
    assert summary_count(server.stdout, "requests") == summary_count(server.stdout, "responses")


@pytest.mark.parametrize(("option", "largest"), [((), 64 * 1024), (("--send-size", "off"), None)])
def test_send_size_caps_what_one_send_offers_and_what_the_trace_records(
    tmp_path: Path, option: tuple[str, ...], largest: int | None
) -> None:
    """A 2 MB response goes out in sends of at most --send-size (64k by default), each recorded
    with the data it offered; `--send-size off` offers all pending output (up to --output-cap)."""
    with serving(tmp_path, "http", *option) as server:
        sock = connect(server)
        sock.sendall(b"GET /bytes/2000000 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        response = recv_until_eof(sock)
        sock.close()
        assert response.endswith(pattern(0, 2_000_000))
    _, records = read_trace(tmp_path / "trace.jsonl")
    offered = [len(rec.request.data) for rec in records if isinstance(rec.request, sc.Send)]
    if largest is not None:
        assert max(offered) == largest
    else:
        assert max(offered) > 64 * 1024
