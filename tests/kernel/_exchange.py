"""A bounded driver for one TCP connection in simnet, with its invariants checked at every step.

The property tests in test_properties.py hand it a configuration (seed, path, buffer sizes,
Nagle) and a list of operations drawn by hypothesis. Each operation is one socket call from
plain code -- send, recv, shutdown, an abortive close -- or `advance`, which lets virtual time
pass one simpy event at a time. After every call and every event the driver checks:

* the byte streams: what each side has received is a prefix of what the other side's send()
  calls accepted (each direction carries its own pattern, so a lost, repeated or reordered
  chunk shows up as a mismatch), and EOF comes only after every accepted byte;
* the buffers: len(rcvq) <= _rcv_capacity() and len(sndq) <= sndbuf on every socket;
* errors: only EAGAIN unless a RST intervened (then ECONNRESET or EPIPE, LINUX.md §3).

`finish()` then drains both directions to the end, bounded in calls and in virtual time, and
says whether the stream completed.
"""

from __future__ import annotations

import socket
import struct
from typing import Any, Callable

import attrs
import hypothesis

import simnet

CLIENT_IP = "10.0.0.2"
SERVER_IP = "10.0.0.1"
PORT = 8080

# One pattern per direction, with periods that are prime and different, so that a chunk
# delivered twice, out of order or to the wrong side cannot look right.
_LIMIT = 4 << 20
STREAMS = (
    (bytes(range(251)) * (_LIMIT // 251 + 1))[:_LIMIT],
    (bytes(range(240, -1, -1)) * (_LIMIT // 241 + 1))[:_LIMIT],
)
CLIENT, SERVER = 0, 1
SIDE_NAMES = ("client", "server")


class InvariantBroken(AssertionError):
    """A property of the model does not hold; the message says which and where."""


@attrs.frozen(kw_only=True)
class Path:
    """Where the two ends live: one host over 127.0.0.1, or two hosts on a link."""

    latency: float | None  # None: loopback inside one host
    mtu: int = 1500

    def __str__(self) -> str:
        if self.latency is None:
            return "loopback"
        return f"link(latency={self.latency}, mtu={self.mtu})"


@attrs.frozen(kw_only=True)
class Config:
    seed: int
    path: Path
    # SO_SNDBUF / SO_RCVBUF as passed to setsockopt (None: not set, so autotuned as in Linux).
    client_snd: int | None = None
    client_rcv: int | None = None
    server_snd: int | None = None  # set on the listener; the accepted socket inherits it
    server_rcv: int | None = None
    client_nodelay: bool = True
    server_nodelay: bool = True


def make_network(seed: int, **kwargs: Any) -> simnet.Network:
    """A Network whose RNG hypothesis manages (STYLE.md: register every simulation RNG).

    The seed is itself drawn by hypothesis, so the RNG's stream is already a function of the
    example; registering it as well means nothing outside the example can perturb it.
    """
    net = simnet.Network(seed=seed, **kwargs)
    hypothesis.register_random(net.rng)
    return net


def advance(net: simnet.Network, dt: float, check: Callable[[], None]) -> None:
    """Let `dt` seconds of virtual time pass, calling `check` after every simpy event."""
    env = net.env
    limit = net.now_ns + int(round(dt * 1e9))
    while env.peek() <= limit:
        env.step()
        check()
    net.run(until=limit / 1e9)  # sets the clock to the limit; nothing is left to run before it


class Side:
    """One end: its socket and what it sent and received."""

    def __init__(self, index: int, sock: Any) -> None:
        self.index = index
        self.name = SIDE_NAMES[index]
        self.sock = sock
        self.sent = 0  # bytes accepted by send()
        self.received = bytearray()
        self.eof = False
        self.errors: list[tuple[str, str]] = []  # (call, errno name)
        self.shut_wr = False
        self.shut_rd = False
        self.closed = False  # close()d: the fd is gone

    @property
    def stream(self) -> bytes:
        return STREAMS[self.index]


class Exchange:
    """A connected client/server pair and the operations a test may apply to it."""

    def __init__(self, config: Config, *, strict: bool = True, log_segments: bool = False) -> None:
        # strict: no RST unless reset() made one, so an error other than EAGAIN is a bug and EOF
        # means "everything arrived". Not strict (SHUT_RD in the mix, where Linux itself may
        # answer data with a RST, LINUX.md §3): only the prefix and buffer checks apply.
        self.strict = strict
        self.config = config
        net = make_network(config.seed, log_segments=log_segments)
        self.net = net
        server_host = net.host(SERVER_IP)
        if config.path.latency is None:
            client_host, connect_ip = server_host, "127.0.0.1"
        else:
            client_host, connect_ip = net.host(CLIENT_IP), SERVER_IP
            net.link(CLIENT_IP, SERVER_IP, latency=config.path.latency, mtu=config.path.mtu)
        self.server_host, self.client_host = server_host, client_host

        listener = server_host.socket()
        _set_buffers(listener, config.server_snd, config.server_rcv)
        listener.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, int(config.server_nodelay))
        listener.bind(("0.0.0.0", PORT))
        listener.listen(1)
        listener.setblocking(False)
        client = client_host.socket()
        _set_buffers(client, config.client_snd, config.client_rcv)
        client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, int(config.client_nodelay))
        client.setblocking(False)
        client.connect_ex((connect_ip, PORT))
        net.run()  # the handshake; nothing else is pending yet
        server, _ = listener.accept()
        listener.close()
        server.setblocking(False)
        self.sides = (Side(CLIENT, client), Side(SERVER, server))
        self.reset_by: Side | None = None  # the side that closed abortively, if any
        self.check()

    # -- invariants ---------------------------------------------------------------------------

    def check(self) -> None:
        for side in self.sides:
            sock = side.sock
            if len(sock.rcvq) > sock._rcv_capacity():
                raise InvariantBroken(
                    f"{side.name} rcvq holds {len(sock.rcvq)} > capacity {sock._rcv_capacity()} "
                    f"at t={self.net.now_ns}ns"
                )
            if len(sock.sndq) > sock.sndbuf:
                raise InvariantBroken(
                    f"{side.name} sndq holds {len(sock.sndq)} > sndbuf {sock.sndbuf} at t={self.net.now_ns}ns"
                )
        for side in self.sides:
            self._check_prefix(side)

    def _check_prefix(self, side: Side) -> None:
        peer = self.peer(side)
        got = side.received
        if len(got) > peer.sent:
            raise InvariantBroken(f"{side.name} received {len(got)} bytes but {peer.name} sent only {peer.sent}")
        if got != peer.stream[: len(got)]:
            at = next(i for i, (x, y) in enumerate(zip(got, peer.stream)) if x != y)
            raise InvariantBroken(f"{side.name} received a wrong byte at offset {at} of {len(got)}")

    def peer(self, side: Side) -> Side:
        return self.sides[1 - side.index]

    # -- operations ---------------------------------------------------------------------------

    def send(self, index: int, n: int) -> None:
        side = self.sides[index]
        if side.closed or side.shut_wr:
            return
        data = side.stream[side.sent : side.sent + n]
        if not data:
            return
        try:
            sent = side.sock.send(data)
        except BlockingIOError:
            pass
        except OSError as e:
            self._error(side, e, "send")
        else:
            if not 0 < sent <= len(data):
                raise InvariantBroken(f"{side.name} send({len(data)}) returned {sent}")
            side.sent += sent
        self.check()

    def recv(self, index: int, n: int) -> None:
        side = self.sides[index]
        if side.closed:
            return
        try:
            data = side.sock.recv(n)
        except BlockingIOError:
            if side.eof:
                raise InvariantBroken(f"{side.name} recv raised EAGAIN after EOF")
        except OSError as e:
            self._error(side, e, "recv")
        else:
            if len(data) > n:
                raise InvariantBroken(f"{side.name} recv({n}) returned {len(data)} bytes")
            if data:
                if side.eof and not side.shut_rd:
                    # (after our own SHUT_RD, Linux returns b'' and still queues later data)
                    raise InvariantBroken(f"{side.name} recv returned data after EOF")
                side.received += data
            else:
                self._eof(side)
        self.check()

    def _eof(self, side: Side) -> None:
        peer = self.peer(side)
        side.eof = True
        if self.strict and self.reset_by is None and not side.shut_rd:
            # An orderly EOF: the peer shut down its sending side, and nothing it sent is missing.
            if not peer.shut_wr:
                raise InvariantBroken(f"{side.name} got EOF but {peer.name} never shut down or closed")
            if len(side.received) != peer.sent:
                raise InvariantBroken(
                    f"{side.name} got EOF after {len(side.received)} of the {peer.sent} bytes {peer.name} sent"
                )

    def _error(self, side: Side, e: OSError, call: str) -> None:
        import errno

        name = errno.errorcode.get(e.errno or 0, str(e.errno))
        side.errors.append((call, name))
        if self.strict and self.reset_by is None:
            if call == "send" and name == "EPIPE" and side.shut_wr:
                return
            raise InvariantBroken(f"{side.name} {call} raised {name} though nobody reset the connection")
        if name not in ("ECONNRESET", "EPIPE"):
            raise InvariantBroken(f"{side.name} {call} raised {name} (expected ECONNRESET or EPIPE)")
        # tcp_reset sets one error; whichever call comes first consumes it, and after that recv
        # returns b'' and send EPIPE (LINUX.md §3).
        if sum(1 for _, n in side.errors if n == "ECONNRESET") > 1:
            raise InvariantBroken(f"{side.name} saw ECONNRESET twice: {side.errors}")
        if sum(1 for c, _ in side.errors if c == "recv") > 1:
            raise InvariantBroken(f"{side.name} recv raised twice: {side.errors}")

    def shutdown(self, index: int, how: int) -> None:
        side = self.sides[index]
        if side.closed:
            return
        try:
            side.sock.shutdown(how)
        except OSError as e:
            # ENOTCONN once the connection is gone (reset, or both FINs exchanged).
            if e.errno != 107:
                raise
        if how in (socket.SHUT_WR, socket.SHUT_RDWR):
            side.shut_wr = True
        if how in (socket.SHUT_RD, socket.SHUT_RDWR):
            side.shut_rd = True
        self.check()

    def reset(self, index: int) -> None:
        """close() with SO_LINGER {1, 0}: a RST, and everything queued is discarded."""
        side = self.sides[index]
        if side.closed or self.reset_by is not None:
            return
        side.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        side.sock.close()
        side.closed = True
        self.reset_by = side
        self.check()

    def advance(self, dt: float) -> None:
        advance(self.net, dt, self.check)

    # -- the end ------------------------------------------------------------------------------

    def finish(self, *, max_calls: int = 20_000, max_time: float = 1_000.0) -> None:
        """Shut both sending sides and read both directions to EOF (or to the error after a
        RST), bounded; raise InvariantBroken if a stream does not complete."""
        for side in self.sides:
            if not side.closed and not side.shut_wr and self.reset_by is None:
                self.shutdown(side.index, socket.SHUT_WR)
        deadline = self.net.now + max_time
        dt = 0.001
        for _ in range(max_calls):
            live = [s for s in self.sides if not s.closed and not s.eof]
            if not live or self.net.now > deadline:
                break
            progress = False
            for side in live:
                before = (len(side.received), side.eof, len(side.errors))
                self.recv(side.index, 65536)
                progress |= (len(side.received), side.eof, len(side.errors)) != before
            if progress:
                dt = 0.001
            else:
                self.advance(dt)
                dt = min(dt * 2, 8.0)
        stuck = [s.name for s in self.sides if not s.closed and not s.eof]
        if stuck:
            raise InvariantBroken(
                f"no EOF on {stuck} within {max_calls} calls / {max_time}s: "
                + "; ".join(f"{s.name} got {len(s.received)} of {self.peer(s).sent}" for s in self.sides)
                + f"\n{self.net.ss()}"
            )
        if self.strict and self.reset_by is None:
            for side in self.sides:
                if bytes(side.received) != self.peer(side).stream[: self.peer(side).sent]:
                    raise InvariantBroken(f"{side.name} did not receive exactly what {self.peer(side).name} sent")


def _set_buffers(sock: Any, snd: int | None, rcv: int | None) -> None:
    if snd is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, snd)
    if rcv is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcv)


def apply(ex: Exchange, op: tuple[Any, ...]) -> None:
    """Run one drawn operation: ("send", side, n), ("recv", side, n), ("advance", dt),
    ("shut_wr", side), ("shut_rd", side), ("reset", side)."""
    kind = op[0]
    if kind == "send":
        ex.send(op[1], op[2])
    elif kind == "recv":
        ex.recv(op[1], op[2])
    elif kind == "advance":
        ex.advance(op[1])
    elif kind == "shut_wr":
        ex.shutdown(op[1], socket.SHUT_WR)
    elif kind == "shut_rd":
        ex.shutdown(op[1], socket.SHUT_RD)
    elif kind == "reset":
        ex.reset(op[1])
    else:
        raise ValueError(f"unknown operation {op!r}")
