"""Re-simulation: take the clients' behaviour out of a trace and run it again in simnet.

A trace holds only the *server's* syscalls. Still, every byte a client sent shows up in a Recv,
every FIN as a Recv that returned b"", every RST as an ECONNRESET/EPIPE (or EPOLLERR), and every
byte of the response the client was offered as the accepted prefix of a Send. `extract_clients`
follows the fds through the records and turns that back into one `RecordedClient` per accepted
connection. `resimulate` then builds the same app and server config (optionally perturbed: seed,
latency, buffer sizes), runs the server machine on a simulated host with `SimDriver`, runs one
simulated client per recorded connection that replays what the recording says the client did,
and compares, per connection, the response stream the simulated server sent with the recorded
one. docs/resim.md describes what is reconstructed exactly and what is approximated.

    report = resimulate("live.jsonl", latency="2ms", rcvbuf=4096, trace_out="sim.jsonl")
    print(report.format()); sys.exit(0 if report.ok else 1)
"""

from __future__ import annotations

import collections
import errno
import os
import socket
import struct
from collections.abc import Generator, Iterable
from typing import IO, Any

import attrs

from simnet.server import syscalls as sc
from simnet.trace.codec import Record, TraceError, TraceHeader
from simnet.trace.reader import read_trace, source_name
from simnet.units import parse_duration_ns

NS = 1_000_000_000
CLIENT_RECV_SIZE = 65536
EXCERPT = 24  # bytes shown either side of a first difference

# Endings of a recorded connection, as far as the client's behaviour goes (see RecordedClient.ending).
RESET = "reset"  # RST: SO_LINGER {1, 0} and close, or a close with unread data
CLOSE = "close"  # FIN, and the later data was refused (RST): the client closed both directions
HALF_CLOSE = "half-close"  # FIN while the server may still write: shutdown(SHUT_WR), read on, close
CLOSE_ON_EOF = "close-on-eof"  # the server closed first (SHUT_WR); the client closed when it saw EOF
SERVER_CLOSE = "server-close"  # the server closed (timeout, shutdown) and the client never said a word
OPEN = "open"  # the trace ends with the connection still open

TIMINGS = ("recorded", "asap")


def _short(data: bytes) -> str:
    return sc._short_bytes(data)


@attrs.frozen(kw_only=True)
class Chunk:
    """Bytes one Recv returned, and when (ns from the trace's origin)."""

    at_ns: int
    data: bytes = attrs.field(repr=_short)


@attrs.frozen(kw_only=True)
class RecordedClient:
    """One accepted connection as its client behaved, reconstructed from the server's syscalls.

    Times are integer ns from the trace's origin (the header's `clock_origin`). The client sent
    each chunk no later than `at_ns` (the server read it then); it half-closed or closed no later
    than `eof_ns`, reset no later than `reset_ns`. `response` is every byte the server's Sends
    accepted (data[:result]) -- what the client was offered, in order.
    """

    index: int  # 1, 2, ...: order of accept (fds are reused, connections are not)
    fd: int
    peer: tuple[str, int]
    accepted_ns: int
    chunks: tuple[Chunk, ...] = ()
    eof_ns: int | None = None  # Recv returned b"" (the client's FIN)
    reset_ns: int | None = None  # ECONNRESET/EPIPE/ETIMEDOUT on a call, or EPOLLERR
    reset_error: str | None = None
    server_shut_wr_ns: int | None = None  # the server's own Shutdown(SHUT_WR)
    closed_ns: int | None = None  # the server's Close
    closed_in_shutdown: bool = False  # ... after a graceful shutdown had been requested
    response: bytes = attrs.field(default=b"", repr=_short)
    sends: int = 0
    send_blocks: int = 0  # partial Sends and EAGAINs: the client read slower than the server wrote
    read_rate: float | None = None  # bytes/s, estimated only when the server was blocked on it

    @property
    def received(self) -> int:
        return sum(len(c.data) for c in self.chunks)

    @property
    def reset(self) -> bool:
        return self.reset_ns is not None

    @property
    def ending(self) -> str:
        """How the client ended the connection: one of RESET, CLOSE, HALF_CLOSE, CLOSE_ON_EOF,
        SERVER_CLOSE, OPEN (see their definitions at the top of this module)."""
        if self.eof_ns is None:
            if self.reset_ns is not None:
                return RESET
            return OPEN if self.closed_ns is None else SERVER_CLOSE
        if self.server_shut_wr_ns is not None and self.server_shut_wr_ns <= self.eof_ns:
            return CLOSE_ON_EOF
        if self.reset_ns is not None:
            return CLOSE
        return HALF_CLOSE


@attrs.define
class _Conn:
    index: int
    fd: int
    peer: tuple[str, int]
    accepted_ns: int
    chunks: list[Chunk] = attrs.field(factory=list)
    eof_ns: int | None = None
    reset_ns: int | None = None
    reset_error: str | None = None
    server_shut_wr_ns: int | None = None
    closed_ns: int | None = None
    closed_in_shutdown: bool = False
    response: bytearray = attrs.field(factory=bytearray)
    sends: int = 0
    send_blocks: int = 0
    # For the read-rate estimate: when the first Send blocked, the response length then, and the
    # time and length at the last Send that moved bytes.
    blocked_at: tuple[int, int] | None = None
    last_send: tuple[int, int] | None = None

    def freeze(self) -> RecordedClient:
        rate = None
        if self.blocked_at is not None and self.last_send is not None:
            (t0, n0), (t1, n1) = self.blocked_at, self.last_send
            if t1 > t0 and n1 > n0:
                rate = (n1 - n0) * NS / (t1 - t0)
        return RecordedClient(
            index=self.index,
            fd=self.fd,
            peer=self.peer,
            accepted_ns=self.accepted_ns,
            chunks=tuple(self.chunks),
            eof_ns=self.eof_ns,
            reset_ns=self.reset_ns,
            reset_error=self.reset_error,
            server_shut_wr_ns=self.server_shut_wr_ns,
            closed_ns=self.closed_ns,
            closed_in_shutdown=self.closed_in_shutdown,
            response=bytes(self.response),
            sends=self.sends,
            send_blocks=self.send_blocks,
            read_rate=rate,
        )


_RESET_ERRORS = ("ECONNRESET", "EPIPE", "ETIMEDOUT", "ECONNABORTED", "EHOSTUNREACH", "ENETUNREACH")


class ClientExtractor:
    """Follows a server's syscalls, one at a time, and collects what each client did.

    Incremental so that the same code reads a recorded trace and watches a simulated run (via
    SimDriver's `on_syscall`). `origin` is subtracted from every time; None takes the first
    result's time. Records that cannot belong to a machine's run (a Recv on an fd no Accept
    returned) raise TraceError naming the line.
    """

    def __init__(self, *, origin: int | None = None, path: str = "<trace>") -> None:
        self.origin = origin
        self.path = path
        self.conns: list[_Conn] = []
        self.by_fd: dict[int, _Conn] = {}
        self.accept_errors: collections.Counter[str] = collections.Counter()
        self.shutdown_seen = False
        self.shutdown_ns: int | None = None
        self.last_ns = 0

    def feed(self, request: Any, result: sc.Result | None, seq: int = 0) -> None:
        if result is None:  # Exit
            return
        if self.origin is None:
            self.origin = result.now
        now = result.now - self.origin
        self.last_ns = now
        if result.shutdown and not self.shutdown_seen:
            self.shutdown_seen = True
            self.shutdown_ns = now
        kind = type(request)
        conn: _Conn | None
        if kind is sc.Recv:
            conn = self._conn(request.fd, request, seq)
            if result.error is None:
                data = result.value
                if data:
                    conn.chunks.append(Chunk(at_ns=now, data=data))  # type: ignore[arg-type]
                elif conn.eof_ns is None:
                    conn.eof_ns = now
            elif result.error != "EAGAIN":
                self._reset(conn, now, result.error)
        elif kind is sc.Send:
            conn = self._conn(request.fd, request, seq)
            conn.sends += 1
            if result.error is None:
                n = result.value
                if type(n) is not int or not 0 <= n <= len(request.data):
                    raise TraceError(self.path, seq + 1, f"Send returned {n!r} for {len(request.data)} bytes")
                conn.response += request.data[:n]
                conn.last_send = (now, len(conn.response))
                if n < len(request.data):
                    self._blocked(conn, now)
            elif result.error == "EAGAIN":
                self._blocked(conn, now)
            else:
                self._reset(conn, now, result.error)
        elif kind is sc.Accept:
            if result.error is not None:
                if result.error != "EAGAIN":
                    self.accept_errors[result.error] += 1
                return
            value = result.value
            try:
                fd, (host, port) = value  # type: ignore[misc]
            except (TypeError, ValueError):
                problem = f"Accept returned {value!r}, not (fd, (host, port))"
                raise TraceError(self.path, seq + 1, problem) from None
            conn = _Conn(index=len(self.conns) + 1, fd=fd, peer=(host, port), accepted_ns=now)
            self.conns.append(conn)
            self.by_fd[fd] = conn
        elif kind is sc.EpollWait:
            if result.error is None and isinstance(result.value, tuple):
                for fd, mask in result.value:
                    conn = self.by_fd.get(fd)
                    if conn is None:
                        continue
                    if mask & sc.EPOLLERR:
                        self._reset(conn, now, "EPOLLERR")
                    elif mask & sc.EPOLLHUP and conn.server_shut_wr_ns is None:
                        # Both directions shut without our SHUT_WR: a RST whose error a previous
                        # call already consumed (tcp_reset sets SHUTDOWN_MASK).
                        self._reset(conn, now, "EPOLLHUP")
                    elif mask & sc.EPOLLHUP and conn.eof_ns is None:
                        conn.eof_ns = now  # HUP after our SHUT_WR: the client's FIN came too
        elif kind is sc.Shutdown:
            conn = self._conn(request.fd, request, seq)
            if result.error is None and request.how in (sc.SHUT_WR, sc.SHUT_RDWR):
                if conn.server_shut_wr_ns is None:
                    conn.server_shut_wr_ns = now
            elif result.error is not None and result.error in _RESET_ERRORS:
                self._reset(conn, now, result.error)
        elif kind is sc.Close:
            conn = self.by_fd.pop(request.fd, None)  # the listener and the epoll fd are not ours
            if conn is not None:
                conn.closed_ns = now
                conn.closed_in_shutdown = self.shutdown_seen

    def _conn(self, fd: int, request: Any, seq: int) -> _Conn:
        conn = self.by_fd.get(fd)
        if conn is None:
            problem = f"{type(request).__name__} on fd {fd}, which no Accept returned"
            raise TraceError(self.path, seq + 1, problem)
        return conn

    @staticmethod
    def _reset(conn: _Conn, now: int, error: str | None) -> None:
        if conn.reset_ns is None:
            conn.reset_ns = now
            conn.reset_error = error

    @staticmethod
    def _blocked(conn: _Conn, now: int) -> None:
        conn.send_blocks += 1
        if conn.blocked_at is None:
            conn.blocked_at = (now, len(conn.response))

    def clients(self) -> list[RecordedClient]:
        return [conn.freeze() for conn in self.conns]


def extract_clients(
    records: Iterable[Record], *, origin: int | None = None, path: str = "<trace>"
) -> list[RecordedClient]:
    """The clients of a recorded run, one per accepted connection, in order of accept.

    `origin`: the clock reading that times are taken from (the header's `clock_origin`); None
    takes the first record's time.
    """
    extractor = ClientExtractor(origin=origin, path=path)
    for rec in records:
        extractor.feed(rec.request, rec.result, rec.seq)
    return extractor.clients()


# ------------------------------------------------------------------------------------------------
# Durations on the command line
# ------------------------------------------------------------------------------------------------

# `1ms`, `250us`, `0.5s`, `2ns` (a bare number is seconds) -> integer ns, as every command reads them.
parse_duration = parse_duration_ns


def _latency_ns(latency: float | str | None) -> int:
    if latency is None:
        return 0
    if isinstance(latency, str):
        return parse_duration(latency)
    if latency < 0:
        raise ValueError(f"latency must not be negative, not {latency!r}")
    return int(round(latency * NS))


# ------------------------------------------------------------------------------------------------
# The report
# ------------------------------------------------------------------------------------------------

EQUAL = "equal"
RESET_PREFIX = "reset (prefix matches)"
DIFFERS = "DIFFERS"


@attrs.frozen(kw_only=True)
class ConnectionResult:
    """One recorded connection against its re-simulation."""

    index: int
    peer: tuple[str, int]  # as recorded
    ending: str  # the recorded client's ending
    recorded_bytes: int
    simulated_bytes: int  # what the simulated server sent on this connection
    received_bytes: int  # what the simulated client read
    status: str  # EQUAL, RESET_PREFIX or DIFFERS
    first_difference: int | None = None
    detail: str = ""

    @property
    def ok(self) -> bool:
        return self.status != DIFFERS

    def format(self) -> str:
        host, port = self.peer
        head = f"#{self.index} {host}:{port} ({self.ending})"
        if self.status == EQUAL:
            return f"{head}: {self.recorded_bytes} bytes, equal"
        if self.status == RESET_PREFIX:
            return (
                f"{head}: reset (prefix matches): {self.recorded_bytes} bytes recorded, "
                f"{self.simulated_bytes} simulated"
            )
        return f"{head}: DIFFERS: {self.detail}"


@attrs.frozen(kw_only=True)
class ResimReport:
    path: str
    seed: int
    latency_ns: int
    rcvbuf: int | None
    sndbuf: int | None
    timing: str
    connections: tuple[ConnectionResult, ...]
    accept_errors: dict[str, int]  # connections reset before the recorded server accepted them
    finished: bool  # the simulated server exited
    server_exit: str | None
    sim_time_ns: int
    syscalls: int
    trace_out: str | None = None

    @property
    def ok(self) -> bool:
        """Every connection's response stream equals the recorded one (or, for a connection that
        was reset, one is a prefix of the other)."""
        return all(c.ok for c in self.connections)

    def lines(self) -> list[str]:
        out = [c.format() for c in self.connections]
        counts = collections.Counter(c.status for c in self.connections)
        rec = sum(c.recorded_bytes for c in self.connections)
        sim = sum(c.simulated_bytes for c in self.connections)
        perturb = f"seed {self.seed}, latency {self.latency_ns / 1e6:g}ms"
        if self.rcvbuf is not None:
            perturb += f", rcvbuf {self.rcvbuf}"
        if self.sndbuf is not None:
            perturb += f", sndbuf {self.sndbuf}"
        if self.timing != "recorded":
            perturb += f", timing {self.timing}"
        out.append(
            f"total: {len(self.connections)} connections: {counts[EQUAL]} equal, "
            f"{counts[RESET_PREFIX]} reset (prefix matches), {counts[DIFFERS]} differ; "
            f"{rec} response bytes recorded, {sim} simulated ({perturb})"
        )
        if self.accept_errors:
            errors = ", ".join(f"{name} {n}" for name, n in self.accept_errors.items())
            out.append(f"note: not re-simulated: connections the recorded accept() failed on ({errors})")
        if not self.finished:
            seconds = self.sim_time_ns / NS
            out.append(f"note: the simulated server did not exit (after {seconds:.3f} s of virtual time)")
        if self.trace_out is not None:
            out.append(f"simulated trace: {self.trace_out} ({self.syscalls} syscalls)")
        return out

    def format(self) -> str:
        return "\n".join(self.lines())


def compare(
    recorded: RecordedClient, simulated: bytes, received: bytes, sim_reset: bool, note: str = ""
) -> ConnectionResult:
    """Judge one connection: the recorded response stream against the simulated server's.

    Equal streams pass. A connection the recorded client reset (or closed while the response
    was still coming) passes when one stream is a prefix of the other: where the cut falls
    depends on timing, which is exactly what a re-simulation changes. Anything else fails --
    including a cut stream when only the simulation saw a reset -- and so does a simulated
    client that read other bytes than its server sent (that would be the kernel model's bug).
    """
    rec = recorded.response
    first = _first_difference(rec, simulated)
    status, detail = EQUAL, ""
    if first is None:
        if recorded.reset:
            status = RESET_PREFIX
        elif not sim_reset and received != simulated:
            status = DIFFERS
            detail = (
                f"the simulated client read {len(received)} bytes but its server sent {len(simulated)} "
                f"(first difference at byte {_first_difference(simulated, received)})"
            )
    elif first in (len(rec), len(simulated)) and (recorded.reset or sim_reset):
        if recorded.reset:
            status = RESET_PREFIX
        else:
            status = DIFFERS
            detail = f"reset in the simulation only ({len(rec)} bytes recorded, {len(simulated)} simulated)"
    else:
        status = DIFFERS
        detail = (
            f"first difference at byte {first} ({len(rec)} bytes recorded, {len(simulated)} simulated): "
            f"recorded {_excerpt(rec, first)}, simulated {_excerpt(simulated, first)}"
        )
    if note and status == DIFFERS:
        detail += f"; {note}"
    return ConnectionResult(
        index=recorded.index,
        peer=recorded.peer,
        ending=recorded.ending,
        recorded_bytes=len(rec),
        simulated_bytes=len(simulated),
        received_bytes=len(received),
        status=status,
        first_difference=first,
        detail=detail,
    )


def _first_difference(a: bytes, b: bytes) -> int | None:
    """The first offset where a and b differ (len of the shorter if one is a prefix); None if equal."""
    if a == b:
        return None
    n = min(len(a), len(b))
    if a[:n] == b[:n]:
        return n
    lo, hi = 0, n  # a[:lo] == b[:lo], a[:hi] != b[:hi]: bisect on slices, C-speed comparisons
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if a[:mid] == b[:mid]:
            lo = mid
        else:
            hi = mid
    return lo


def _excerpt(data: bytes, at: int) -> str:
    if at >= len(data):
        return "(ends here)"
    start = max(0, at - EXCERPT)
    before, after = data[start:at], data[at : at + EXCERPT]
    return f"{'...' if start else ''}{before!r} | {after!r}{'...' if at + EXCERPT < len(data) else ''}"


# ------------------------------------------------------------------------------------------------
# Simulated clients
# ------------------------------------------------------------------------------------------------


@attrs.define
class _Client:
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


def _reader(env: Any, sock: Any, client: _Client, rate: float | None) -> Generator[Any, Any, None]:
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


def _client(host: Any, server: Any, client: _Client, timing: str, pace: bool) -> Generator[Any, Any, None]:
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


# ------------------------------------------------------------------------------------------------
# The re-simulation
# ------------------------------------------------------------------------------------------------

Source = str | os.PathLike[str] | IO[bytes] | IO[str] | tuple[TraceHeader, Iterable[Record]]


def _read(source: Source) -> tuple[TraceHeader, list[RecordedClient], ClientExtractor, str]:
    if isinstance(source, tuple):
        header, records = source
        path = "<records>"
    else:
        header, records = read_trace(source)
        path = source_name(source)
    extractor = ClientExtractor(origin=header.clock_origin, path=path)
    try:
        for rec in records:
            extractor.feed(rec.request, rec.result, rec.seq)
    finally:
        close = getattr(records, "close", None)
        if close is not None:
            close()
    return header, extractor.clients(), extractor, path


def build_machine(
    header: TraceHeader,
    path: str = "<trace>",
    *,
    host: str,
    rcvbuf: int | None = None,
    sndbuf: int | None = None,
) -> tuple[Any, Any]:
    """(machine, config): the header's app and server config, listening on `host`, with the
    buffer sizes overridden where given. TraceError (line 1) for a header this simnet cannot build."""
    from simnet.server.apps import make_app
    from simnet.server.config import ServerConfig
    from simnet.server.machine import ServerMachine

    try:
        app = make_app(header.app, **header.app_config)
    except ValueError as exc:
        raise TraceError(path, 1, f"header: {exc}") from None
    try:
        config = ServerConfig.from_recorded(header.server_config)
    except (TypeError, ValueError) as exc:
        problem = f"header: server_config does not fit this simnet's ServerConfig: {exc}"
        raise TraceError(path, 1, problem) from None
    changes: dict[str, Any] = {}
    # A live server listened on loopback, which every simulated host has to itself: listen on
    # the server host's address instead (a wildcard listener is left as it was).
    if config.host != "0.0.0.0":
        changes["host"] = host
    if rcvbuf is not None:
        changes["rcvbuf"] = rcvbuf
    if sndbuf is not None:
        changes["sndbuf"] = sndbuf
    config = attrs.evolve(config, **changes)
    return ServerMachine(config, app), config


def resimulate(
    path_or_records: Source,
    *,
    seed: int = 0,
    latency: float | str | None = None,
    rcvbuf: int | None = None,
    sndbuf: int | None = None,
    trace_out: str | os.PathLike[str] | None = None,
    timing: str = "recorded",
    pace_reads: bool = True,
    time_limit: float = 600.0,
    pcap: str | os.PathLike[str] | IO[bytes] | None = None,
) -> ResimReport:
    """Re-run a trace's clients against the same app and config in simnet; see the module docstring.

    `path_or_records`: a trace path or file object, or `(header, records)`. `latency`: one-way,
    between every client and the server, in seconds or as a duration string ("1ms"); default 0
    (a live trace was recorded on loopback). `rcvbuf`/`sndbuf` override the server config's
    SO_RCVBUF/SO_SNDBUF. `trace_out`: write the simulated server's trace there. `timing`:
    "recorded" (each chunk at its recorded time) or "asap". `pace_reads`: clients read at the
    estimated recorded rate where there is one. `time_limit`: virtual seconds after the last
    recorded event before the server is told to shut down regardless. `pcap`: write every
    segment of the re-simulation there (a path or a binary file), for Wireshark (docs/pcap.md).

    Raises TraceError for a malformed trace (nothing is simulated), ValueError for a bad option,
    OSError when the trace cannot be read or `trace_out` cannot be written.
    """
    from simnet.drivers.simulated import SimDriver
    from simnet.kernel import Network
    from simnet.run import CLIENTS_PER_HOST, SERVER_IP
    from simnet.trace.writer import TraceWriter

    if timing not in TIMINGS:
        raise ValueError(f"timing must be one of {', '.join(TIMINGS)}, not {timing!r}")
    for name, value in (("rcvbuf", rcvbuf), ("sndbuf", sndbuf)):
        if value is not None and (type(value) is not int or value <= 0):
            raise ValueError(f"{name} must be a positive number of bytes, not {value!r}")
    if type(seed) is not int:
        raise ValueError(f"seed must be an integer, not {seed!r}")
    latency_ns = _latency_ns(latency)

    header, recorded, extractor, path = _read(path_or_records)
    machine, config = build_machine(header, path, host=SERVER_IP, rcvbuf=rcvbuf, sndbuf=sndbuf)

    net = Network(seed=seed, latency=latency_ns / NS, pcap=pcap)
    env = net.env
    server_host = net.host(SERVER_IP)
    watcher = ClientExtractor(origin=0, path="<simulation>")
    writer = None
    if trace_out is not None:
        sim_header = TraceHeader.create(
            backend="simnet",
            app=header.app,
            app_config=header.app_config,
            server_config=config,
            seed=seed,
            clock_origin=0,
            meta={"resimulation_of": path, "latency_ns": latency_ns, "timing": timing},
        )
        writer = TraceWriter(trace_out, sim_header)

    def on_syscall(request: sc.Syscall, result: sc.Result) -> None:
        watcher.feed(request, result)
        if writer is not None:
            writer.record(request, result)

    try:
        driver = SimDriver(server_host, machine, on_syscall=on_syscall)
        server_proc = server_host.process(driver.run())

        def server_address() -> tuple[str, int]:
            return SERVER_IP, config.port or machine.bound_port or 0

        clients: list[_Client] = []
        hosts = [
            net.host(f"10.0.{1 + i // 250}.{1 + i % 250}")
            for i in range(max(1, -(-len(recorded) // CLIENTS_PER_HOST)))
        ]
        for i, rec in enumerate(recorded):
            waits = rec.ending == OPEN or (rec.ending == SERVER_CLOSE and rec.closed_in_shutdown)
            client = _Client(recorded=rec, done=env.event(), waits_for_bytes=waits)
            clients.append(client)
            host = hosts[i % len(hosts)]
            host.process(_client(host, server_address, client, timing, pace_reads))

        def supervisor() -> Generator[Any, Any, None]:
            if clients:
                yield env.all_of([c.done for c in clients])
            driver.request_shutdown()

        env.process(supervisor())
        net.run(until=extractor.last_ns / NS + time_limit, stop=server_proc)
        if not driver.finished:
            driver.request_shutdown()
            net.run(until=net.now + 60, stop=server_proc)
        if writer is not None and driver.finished:
            writer.record_exit()
    finally:
        net.stop_capture()  # flushed, and closed if given as a path
        if writer is not None:
            writer.close()

    # Simulated connections to clients: by the client's address, in order of accept (an address
    # can come back for a later connection only after the earlier one is gone).
    by_addr: dict[tuple[str, int], collections.deque[_Conn]] = {}
    for accepted in watcher.conns:
        by_addr.setdefault(accepted.peer, collections.deque()).append(accepted)
    results = []
    for client in clients:
        queue = by_addr.get(client.address) if client.address is not None else None
        conn = queue.popleft() if queue else None
        note = f"the simulated client saw {client.error}" if client.error else ""
        if conn is None:
            note = "the simulated server never accepted it" + (f" ({note})" if note else "")
            results.append(compare(client.recorded, b"", bytes(client.received), False, note))
        else:
            simulated, sim_reset = bytes(conn.response), conn.reset_ns is not None
            results.append(compare(client.recorded, simulated, bytes(client.received), sim_reset, note))
    return ResimReport(
        path=path,
        seed=seed,
        latency_ns=latency_ns,
        rcvbuf=rcvbuf,
        sndbuf=sndbuf,
        timing=timing,
        connections=tuple(results),
        accept_errors=dict(extractor.accept_errors),
        finished=driver.finished,
        server_exit=getattr(machine, "exit_reason", None),
        sim_time_ns=net.now_ns,
        syscalls=driver.syscalls,
        trace_out=None if trace_out is None else os.fspath(trace_out),
    )
