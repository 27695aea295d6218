"""Taking the clients out of a trace: one RecordedClient per accepted connection, with the bytes
it sent, when, and how it ended, reconstructed from the server's syscalls alone."""

from __future__ import annotations

import collections
from collections.abc import Iterable
from typing import Any

import attrs

from simnet.server import syscalls as sc
from simnet.trace.codec import Record, TraceError

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


