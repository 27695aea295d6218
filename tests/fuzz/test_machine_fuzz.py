"""Fuzz the whole server in simulation: hostile clients on simulated sockets, beside a good one.

Each example runs the real ServerMachine with the HTTP app on the kernel model. Hostile clients
send hypothesis-drawn malformed, oversized, truncated or garbage requests in arbitrary pieces,
then wait for the server to close, half-close and wait, or reset. A well-behaved keep-alive
client makes requests all along. Whatever the hostile clients did:

- each gets a well-formed response stream: the valid requests in front answered in order, a bad
  request answered 4xx/505 with `Connection: close`, a torn one not answered -- and then the
  server closes the connection (EOF), by itself if the client just waits;
- the good client gets every response right;
- nothing escapes the app (`stats.app_errors == 0`: the app answers bad input itself);
- when the clients are gone the server holds no connection and only its two fds (listener and
  epoll), and a graceful shutdown leaves no fd at all.

The tests with a deliberately raising app check the machine's side of the contract: whatever a
protocol object raises -- from receive, eof, pull, a property, or its factory -- drops that
connection only, is counted, and the server goes on serving.
"""

from __future__ import annotations

import socket
from collections.abc import Generator
from typing import Any

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from simnet.server.apps.base import BaseApp, Phase
from simnet.server.apps.http import HELLO
from simnet.server.config import ServerConfig

from .http_inputs import APP, Hostile, chunkings, fuzz_settings, garbage, hostile_inputs, parse_responses
from .simrun import CONFIG, ClientLog, World, read_until_closed, reset, run_world, send_pieces

CLOSING_ERRORS = (400, 413, 431, 505)
GOOD_REQUESTS = 6


def good_client(sock: Any, log: ClientLog) -> Generator[Any, Any, None]:
    """Keep-alive GET / every 20 ms while the hostile clients do their worst."""
    env = sock.net.env
    for i in range(GOOD_REQUESTS):
        last = i == GOOD_REQUESTS - 1
        yield from sock.co.sendall(b"GET / HTTP/1.1\r\nHost: good\r\n" + (b"Connection: close\r\n" if last else b"") + b"\r\n")
        yield env.timeout(20_000_000)
    yield from read_until_closed(sock, log)


def check_good(world: World) -> None:
    log = next(log for log in world.logs if log.name == "good")
    responses = parse_responses(bytes(log.received))
    assert [(r.status, r.body) for r in responses] == [(200, HELLO)] * GOOD_REQUESTS, log
    assert log.ended == "eof", log


def check_server_clean(world: World) -> None:
    assert world.machine.stats.app_errors == 0, world.machine.stats
    assert world.connections_after_clients == 0, world.machine.connections
    assert world.fds_after_clients == 2  # the listener and the epoll fd
    assert world.finished and world.exit_reason == "shutdown", world.exit_reason
    assert world.fds_at_end == 0


def hostile_client(pieces: list[bytes], ending: str):  # type: ignore[no-untyped-def]
    def client(sock: Any, log: ClientLog) -> Generator[Any, Any, None]:
        yield from send_pieces(sock, pieces)
        if ending == "half_close":
            sock.shutdown(socket.SHUT_WR)
        elif ending == "reset":
            yield sock.net.env.timeout(2_000_000)
            reset(sock)
            log.ended = "self"
            return
        yield from read_until_closed(sock, log)

    return client


endings = st.sampled_from(["wait", "half_close", "reset"])


# The server's configuration varies too: both epoll modes, buffers down to Linux's minimum, and an
# output cap small enough that backpressure is in play for the larger responses.
configs = st.builds(
    lambda et, rcv, snd, cap: attrs.evolve(CONFIG, edge_triggered=et, rcvbuf=rcv, sndbuf=snd, output_cap=cap),
    st.booleans(),
    st.sampled_from([None, 1, 4096]),
    st.sampled_from([None, 1, 4096]),
    st.sampled_from([1024, 256 * 1024]),
)


@fuzz_settings(200)
@given(data=st.data(), seed=st.integers(0, 2**32 - 1), count=st.integers(1, 3), config=configs)
def test_hostile_clients_get_an_answer_and_a_close_and_nobody_else_notices(
    data: st.DataObject, seed: int, count: int, config: ServerConfig
) -> None:
    hostile: list[tuple[Hostile, str]] = []
    clients = [("good", good_client, 0)]
    for i in range(count):
        h = data.draw(hostile_inputs(), label=f"hostile {i}")
        pieces = data.draw(chunkings(h.data), label=f"pieces {i}")
        ending = data.draw(endings, label=f"ending {i}")
        hostile.append((h, ending))
        clients.append((f"hostile{i}", hostile_client(pieces, ending), data.draw(st.integers(0, 50)) * 1_000_000))
    world = run_world(APP, clients, seed=seed, config=config)
    check_good(world)
    for (h, ending), log in zip(hostile, world.logs[1:]):
        if ending == "reset":
            continue  # it left on its own; the server must only survive it (checked below)
        assert log.ended == "eof", (log, h)  # the server closed: after the error, or by a timer
        responses = [r for r in parse_responses(bytes(log.received)) if r.status >= 200]
        good, rest = responses[: h.good_before], responses[h.good_before :]
        assert [r.status for r in good] == [r.status for r in good if r.status in (200, 404)], (responses, h)
        assert len(good) == h.good_before, (responses, h)
        if h.bad:
            assert len(rest) == 1 and rest[0].status in CLOSING_ERRORS and rest[0].close, (rest, h)
        else:
            assert rest == [], (rest, h)
    check_server_clean(world)


@fuzz_settings(150)
@given(data=st.data(), raw=garbage(), ending=endings, seed=st.integers(0, 2**32 - 1))
def test_garbage_never_stops_the_server(data: st.DataObject, raw: bytes, ending: str, seed: int) -> None:
    pieces = data.draw(chunkings(raw), label="pieces")
    world = run_world(APP, [("good", good_client, 0), ("garbage", hostile_client(pieces, ending), 5_000_000)], seed=seed)
    check_good(world)
    log = world.logs[1]
    if ending != "reset":
        assert log.ended == "eof", log
        responses = [r for r in parse_responses(bytes(log.received)) if r.status >= 200]
        for i, r in enumerate(responses):
            if r.status in CLOSING_ERRORS:
                assert r.close and i == len(responses) - 1, responses
    check_server_clean(world)


# -- an app that raises: the machine's side of the contract ----------------------------------------


class Boom(Exception):
    pass


class RaisingApp(BaseApp):
    """Echo, until the input contains b"boom": then `where` raises, now or at its next call."""

    where = "receive"

    def __init__(self) -> None:
        self.armed = False
        self.pending = b""

    def receive(self, data: bytes) -> bytes:
        if b"boom" in data:
            self.armed = True
            if self.where == "receive":
                raise Boom("receive")
            if self.where == "pull":
                self.pending = data
                return data[:1]  # output, so the machine pulls for more
        return data

    def eof(self) -> bytes:
        if self.armed and self.where == "eof":
            raise Boom("eof")
        return b""

    def pull(self, max_bytes: int) -> bytes:
        if self.armed and self.where == "pull":
            raise Boom("pull")
        return b""

    @property
    def close_after_flush(self) -> bool:
        if self.armed and self.where == "close_after_flush":
            raise Boom("close_after_flush")
        return False

    @property
    def phase(self) -> Phase:
        if self.armed and self.where == "phase":
            raise Boom("phase")
        return Phase.IDLE

    @property
    def requests(self) -> int:  # type: ignore[override]
        if self.armed and self.where == "requests":
            raise Boom("requests")
        return 0

    @property
    def responses(self) -> int:  # type: ignore[override]
        if self.armed and self.where == "returns_str":
            return "three"  # type: ignore[return-value]
        return 0


def echo_client(message: bytes):  # type: ignore[no-untyped-def]
    def client(sock: Any, log: ClientLog) -> Generator[Any, Any, None]:
        yield from sock.co.sendall(message)
        while len(log.received) < len(message):
            data = yield from sock.co.recv(65536)
            if not data:
                break
            log.received += data
        sock.shutdown(socket.SHUT_WR)
        yield from read_until_closed(sock, log)

    return client


def victim(sock: Any, log: ClientLog) -> Generator[Any, Any, None]:
    yield from sock.co.sendall(b"hello, then boom")
    if RaisingApp.where == "eof":
        sock.shutdown(socket.SHUT_WR)
    yield from read_until_closed(sock, log)


WHERE = ["receive", "eof", "pull", "close_after_flush", "phase", "requests", "returns_str", "factory"]


@pytest.mark.parametrize("where", WHERE)
def test_whatever_an_app_raises_drops_only_its_connection_and_the_server_goes_on(
    where: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(RaisingApp, "where", where)
    made = [0]

    def factory() -> RaisingApp:
        made[0] += 1
        if where == "factory" and made[0] == 2:  # the victim is the second connection
            raise Boom("factory")
        return RaisingApp()

    ms = 1_000_000
    world = run_world(
        factory,
        [
            ("before", echo_client(b"first client " * 100), 0),
            ("victim", victim, 50 * ms),
            ("after", echo_client(b"after the failure " * 100), 100 * ms),
        ],
    )
    before, hit, after = world.logs
    assert bytes(before.received) == b"first client " * 100 and before.ended == "eof"
    assert bytes(after.received) == b"after the failure " * 100 and after.ended == "eof"
    # The victim's connection is dropped at once: a close with its input read is a FIN (EOF).
    assert hit.ended in ("eof", "ECONNRESET"), hit
    if where in ("receive", "factory"):
        assert hit.received == b"", hit
    stats = world.machine.stats
    assert stats.app_errors == 1, stats
    assert stats.closes.get("app_error") == 1, stats.closes
    assert world.connections_after_clients == 0 and world.fds_after_clients == 2
    assert world.finished and world.exit_reason == "shutdown" and world.fds_at_end == 0
