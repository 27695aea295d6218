"""The simulated clients of a re-simulation: each replays what its RecordedClient did -- its bytes
with their recorded pauses (or as soon as possible), its half-close or reset -- and keeps what
the server sent back."""

from __future__ import annotations

import errno
import socket
import struct
from collections.abc import Generator
from typing import Any

import attrs

from simnet.sim.resim.extract import CLIENT_RECV_SIZE, CLOSE, HALF_CLOSE, NS, RESET, RecordedClient


@attrs.define
class ReplayingClient:
    """One simulated client: its script (the recorded client) and what it saw."""

    recorded: RecordedClient
    done: Any  # simpy event: this client no longer needs the server to stay up
    # SERVER_CLOSE in a shutdown, or OPEN: the recorded server closed it only when it stopped,
    # so the client is done once its script has run and it has read the recorded response.
    waits_for_bytes: bool = False
    script_done: bool = False
    address: tuple[str, int] | None = None  # its local address, once connected
    received: bytearray = attrs.field(factory=bytearray)
    closed: bool = False  # by the client itself: nothing read after this counts
    error: str | None = None

    def check_done(self, reader_ended: bool = False) -> None:
        if self.done.triggered or not self.script_done:
            return
        if reader_ended or len(self.received) >= len(self.recorded.response):
            self.done.succeed()


def _actions(rec: RecordedClient, timing: str) -> list[tuple[int, str, bytes]]:
    """(offset ns from the client's connect, what, data): the client's script, in order.

    Offsets are the recorded times less the recorded accept: the client did each thing no later
    than the server saw it. With timing "asap" the data and a half-close go at once (in order,
    chunk by chunk); a close or reset keeps its recorded time, since it decides how much of the
    response the client takes.
    """
    asap = timing == "asap"
    base = rec.accepted_ns
    actions = [(0 if asap else c.at_ns - base, "send", c.data) for c in rec.chunks]
    ending = rec.ending
    if ending == RESET:
        actions.append((rec.reset_ns - base, "reset", b""))  # type: ignore[operator]
    elif ending == CLOSE:
        actions.append((rec.eof_ns - base, "close", b""))  # type: ignore[operator]
    elif ending == HALF_CLOSE:
        actions.append((0 if asap else rec.eof_ns - base, "shut_wr", b""))  # type: ignore[operator]
    # The client is one sequential program: nothing goes before what came earlier.
    t = 0
    ordered = []
    for at, what, data in actions:
        t = max(t, at)
        ordered.append((t, what, data))
    return ordered


def _reader(env: Any, sock: Any, client: ReplayingClient, rate: float | None) -> Generator[Any, Any, None]:
    """Read everything the server sends -- at the recorded read rate, if one was estimated --
    until EOF, an error, or the client's own close."""
    while True:
        try:
            data = yield from sock.co.recv(CLIENT_RECV_SIZE)
        except OSError as exc:
            if not client.closed and client.error is None:
                client.error = _errname(exc)
            break
        if client.closed or not data:
            break
        client.received += data
        if client.waits_for_bytes:
            client.check_done()
        if rate:
            yield env.timeout(max(1, int(len(data) * NS / rate)))
    if client.waits_for_bytes:
        client.check_done(reader_ended=True)


def replay_client(
    host: Any, server: Any, client: ReplayingClient, timing: str, pace: bool
) -> Generator[Any, Any, None]:
    """One recorded client, replayed: connect when it arrived, send its chunks when the server
    read them, end the way it ended (reset, close, half-close, or read until the server closes)."""
    env = host.net.env
    rec = client.recorded
    if rec.accepted_ns > env.now:
        yield env.timeout(rec.accepted_ns - env.now)
    sock = host.socket()
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # each chunk goes out when sent
    try:
        yield from sock.co.connect(server())
    except OSError as exc:
        client.error = _errname(exc)
        sock.close()
        client.script_done = True
        client.check_done(reader_ended=True)
        return
    client.address = tuple(sock.getsockname()[:2])
    connected = env.now
    reader = env.process(_reader(env, sock, client, rec.read_rate if pace else None))
    try:
        for at, what, data in _actions(rec, timing):
            if connected + at > env.now:
                yield env.timeout(connected + at - env.now)
            if what == "send":
                yield from sock.co.sendall(data)
            elif what == "shut_wr":
                sock.shutdown(socket.SHUT_WR)
            else:  # close, or reset: SO_LINGER {1, 0} makes close() send a RST (tcp_disconnect)
                if what == "reset":
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                client.closed = True
                sock.close()
                break
        else:
            client.script_done = True
            if client.waits_for_bytes:
                client.check_done(reader_ended=reader.triggered)
            # Read until the server closes, then close: the client's last word is its FIN.
            if not reader.triggered:
                yield reader
            client.closed = True
            sock.close()
    except OSError as exc:
        if client.error is None:
            client.error = _errname(exc)
        client.closed = True
        sock.close()
    client.script_done = True
    client.check_done(reader_ended=True)


def _errname(exc: OSError) -> str:
    if exc.errno is None:
        return type(exc).__name__
    return errno.errorcode.get(exc.errno, f"E{exc.errno}")

