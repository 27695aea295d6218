"""`simnet show TRACE`: a trace as a timeline per connection, then a summary.

The raw trace is one line per syscall, interleaved across connections the way the event loop ran
them. What a person debugging a server wants is the story of each connection -- accepted from
where, what it read (and where EAGAIN stopped it), how much of each send went out, when it had
to wait for EPOLLOUT and when that came, how it ended (EOF, RST) -- so that is what we print.
A connection is an accepted fd from its Accept to its Close: fds are reused, connections are not,
so they are numbered in order of acceptance (#1, #2, ...), like every other id in simnet.
"""

from __future__ import annotations

import collections
import os
from typing import IO

import attrs

from simnet.server import syscalls as sc
from simnet.trace.codec import Record, TraceHeader
from simnet.trace.reader import read_trace, source_name

_HOW = {sc.SHUT_RD: "SHUT_RD", sc.SHUT_WR: "SHUT_WR", sc.SHUT_RDWR: "SHUT_RDWR"}
# What the errors mean for a connection, in the words of the seed article (FIN vs RST).
_ERROR_NOTES = {
    "ECONNRESET": "RST: the peer reset the connection",
    "EPIPE": "the peer is gone (RST, or our side shut down)",
    "ETIMEDOUT": "the connection timed out",
}


_SOCKOPTS = {
    (sc.SOL_SOCKET, sc.SO_REUSEADDR): "SO_REUSEADDR",
    (sc.SOL_SOCKET, sc.SO_SNDBUF): "SO_SNDBUF",
    (sc.SOL_SOCKET, sc.SO_RCVBUF): "SO_RCVBUF",
    (sc.SOL_SOCKET, sc.SO_LINGER): "SO_LINGER",
    (sc.IPPROTO_TCP, sc.TCP_NODELAY): "TCP_NODELAY",
}
# Printable ASCII stays itself (HTTP reads as HTTP); the rest is escaped as in a bytes literal.
_ESCAPES = {i: chr(i) if 0x20 <= i < 0x7F and chr(i) not in '"\\' else f"\\x{i:02x}" for i in range(256)}
_ESCAPES.update({0x0D: "\\r", 0x0A: "\\n", 0x09: "\\t", 0x22: '\\"', 0x5C: "\\\\"})


def _preview(data: bytes, width: int) -> str:
    """The start of a payload, at most `width` characters once escaped: enough to recognise it."""
    pieces, used = [], 0
    for byte in data[:width]:
        piece = _ESCAPES[byte]
        if used + len(piece) > width:  # never cut an escape in half
            break
        pieces.append(piece)
        used += len(piece)
    text = "".join(pieces)
    return f'"{text}..."' if len(pieces) < len(data) else f'"{text}"'


@attrs.define
class _Conn:
    """One accepted connection while the timeline is being built."""

    number: int
    fd: int
    peer: str
    lines: list[str] = attrs.field(factory=list)
    host: str | None = None  # the simulated host it lives on (program traces of several hosts)
    connected: bool = False  # made by connect() rather than accept() (program traces)
    mask: int | None = None  # its epoll interest mask; None until registered
    bytes_in: int = 0
    bytes_out: int = 0
    ended: str = ""  # how the peer ended it: "EOF", "RST", ...
    closed: bool = False
    # When a send could not finish (partial or EAGAIN): (time, seq) until EPOLLOUT is reported.
    out_wait: tuple[int, int] | None = None
    warned_no_out: bool = False


@attrs.define
class _Timeline:
    header: TraceHeader
    preview: int
    origin: int
    now: int = 0
    server: list[str] = attrs.field(factory=list)
    conns: list[_Conn] = attrs.field(factory=list)
    # Open connections by (host, fd): fds are per host, and host is None in a machine trace.
    by_fd: dict[tuple[str | None, int], _Conn] = attrs.field(factory=dict)
    listen_fds: set[int] = attrs.field(factory=set)
    calls: collections.Counter[str] = attrs.field(factory=collections.Counter)
    errors: collections.Counter[str] = attrs.field(factory=collections.Counter)
    records: int = 0
    sends: int = 0
    partial_sends: int = 0
    eagain_sends: int = 0
    eagain_recvs: int = 0
    eagain_accepts: int = 0
    waits: int = 0
    empty_waits: int = 0
    out_waits: int = 0
    longest_out_wait: int = 0
    shutdown_at: int | None = None
    exited: bool = False
    host: str | None = None  # the host of the record being added
    # A program's own calls (not on a connection), per host in order of first appearance.
    host_lines: dict[str | None, list[str]] = attrs.field(factory=dict)
    clock_reads: int = 0
    random_reads: int = 0

    def at(self, seq: int) -> str:
        return f"{(self.now - self.origin) / 1e6:>+11.3f}ms  #{seq:<6}"

    def conn_line(self, conn: _Conn, seq: int, text: str) -> None:
        conn.lines.append(f"  {self.at(seq)} {text}")

    def server_line(self, seq: int, text: str) -> None:
        line = f"  {self.at(seq)} {text}"
        self.server.append(line)
        self.host_lines.setdefault(self.host, []).append(line)

    def add(self, rec: Record) -> None:
        req, res = rec.request, rec.result
        name = type(req).__name__
        self.records += 1
        self.host = rec.host
        if res is None:
            self.exited = True
            who = "the program" if self.header.program is not None else "the machine"
            self.server_line(rec.seq, f"exit: {who} finished")
            return
        self.now = res.now
        self.calls[name] += 1
        if res.error is not None:
            self.errors[res.error] += 1
        if res.shutdown and self.shutdown_at is None:
            self.shutdown_at = res.now
            self.server_line(rec.seq, "shutdown requested (handed to the machine with this result)")
        handler = getattr(self, f"_{name}", None)
        if handler is not None:
            handler(rec.seq, req, res)
        else:
            self.server_line(rec.seq, f"{req!r} -> {_outcome(res)}")

    # -- one method per syscall that has a story to tell --------------------------------------

    def _Socket(self, seq: int, req: sc.Socket, res: sc.Result) -> None:
        self.server_line(seq, f"socket -> {_outcome(res, 'fd ')}")

    def _Bind(self, seq: int, req: sc.Bind, res: sc.Result) -> None:
        self.server_line(seq, f"bind fd {req.fd} to {req.host}:{req.port} -> {_outcome(res)}")

    def _GetSockName(self, seq: int, req: sc.GetSockName, res: sc.Result) -> None:
        conn = self.by_fd.get((self.host, req.fd))
        if conn is not None:  # a program's connection learning its own address
            self.conn_line(conn, seq, f"getsockname -> {_outcome(res)}")
        else:
            self.server_line(seq, f"getsockname fd {req.fd} -> {_outcome(res)}")

    def _EpollCreate(self, seq: int, req: sc.EpollCreate, res: sc.Result) -> None:
        self.server_line(seq, f"epoll_create -> {_outcome(res, 'epfd ')}")

    def _Listen(self, seq: int, req: sc.Listen, res: sc.Result) -> None:
        if res.ok:
            self.listen_fds.add(req.fd)
        self.server_line(seq, f"listen fd {req.fd} backlog {req.backlog} -> {_outcome(res)}")

    def _Accept(self, seq: int, req: sc.Accept, res: sc.Result) -> None:
        if res.error == "EAGAIN":
            self.eagain_accepts += 1  # the normal end of an accept loop: counted, not listed
            return
        accepted = _accepted(res)
        if accepted is None:
            self.server_line(seq, f"accept on fd {req.fd} -> {_outcome(res)}")
            return
        fd, peer = accepted
        conn = _Conn(number=len(self.conns) + 1, fd=fd, peer=peer, host=self.host)
        self.conns.append(conn)
        self.by_fd[(self.host, fd)] = conn
        self.conn_line(conn, seq, f"accept from {conn.peer} -> fd {fd}")

    def _Recv(self, seq: int, req: sc.Recv, res: sc.Result) -> None:
        conn = self._conn(seq, req.fd)
        if res.error == "EAGAIN":
            self.eagain_recvs += 1
            self.conn_line(conn, seq, "recv EAGAIN: nothing more to read for now")
        elif res.error is not None:
            conn.ended = conn.ended or ("RST" if res.error == "ECONNRESET" else res.error)
            self.conn_line(conn, seq, f"recv {res.error}: {_ERROR_NOTES.get(res.error, 'error')}")
        elif res.value == b"":
            conn.ended = conn.ended or "EOF"
            self.conn_line(conn, seq, "recv EOF: the peer closed its side (FIN)")
        elif isinstance(res.value, bytes):
            conn.bytes_in += len(res.value)
            self.conn_line(conn, seq, f"recv {len(res.value)} bytes {_preview(res.value, self.preview)}")
        else:
            self.conn_line(conn, seq, f"recv -> {_outcome(res)}")

    def _Send(self, seq: int, req: sc.Send, res: sc.Result) -> None:
        conn = self._conn(seq, req.fd)
        self.sends += 1
        total = len(req.data)
        if res.ok and type(res.value) is int:
            conn.bytes_out += res.value
            if res.value >= total:
                self.conn_line(conn, seq, f"send {total} bytes {_preview(req.data, self.preview)}")
                return
            self.partial_sends += 1
            self.conn_line(conn, seq, f"send {res.value} of {total} bytes: partial, the send buffer is full")
        elif res.error == "EAGAIN":
            self.eagain_sends += 1
            self.conn_line(conn, seq, f"send EAGAIN: 0 of {total} bytes, the send buffer is full")
        else:
            if res.error is not None:
                conn.ended = conn.ended or ("RST" if res.error in ("ECONNRESET", "EPIPE") else res.error)
            note = _ERROR_NOTES.get(res.error or "", "")
            self.conn_line(
                conn, seq, f"send {total} bytes -> {_outcome(res)}" + (f": {note}" if note else "")
            )
            return
        if conn.out_wait is None:
            conn.out_wait = (self.now, seq)
            conn.warned_no_out = False

    def _EpollCtl(self, seq: int, req: sc.EpollCtl, res: sc.Result) -> None:
        conn = self.by_fd.get((self.host, req.fd))
        text = f"epoll {req.op} {sc.format_events(req.mask)}" if req.op != sc.EPOLL_CTL_DEL else "epoll DEL"
        if not res.ok:
            text += f" -> {res.error}"
        if conn is None:
            self.server_line(seq, f"{text} (fd {req.fd})")
            return
        if res.ok:
            before = conn.mask or 0
            after = 0 if req.op == sc.EPOLL_CTL_DEL else req.mask
            conn.mask = after
            if after & sc.EPOLLOUT and not before & sc.EPOLLOUT:
                text += " (+OUT: waiting for EPOLLOUT)"
            elif before & sc.EPOLLOUT and not after & sc.EPOLLOUT:
                text += " (-OUT)"
        self.conn_line(conn, seq, text)

    def _EpollWait(self, seq: int, req: sc.EpollWait, res: sc.Result) -> None:
        self.waits += 1
        events = res.value if res.ok and isinstance(res.value, tuple) else ()
        if not res.ok:
            self.server_line(seq, f"epoll_wait -> {res.error}")
        elif not events:
            self.empty_waits += 1
        for event in events:
            if not (isinstance(event, tuple) and len(event) == 2):
                continue
            fd, mask = event
            conn = self.by_fd.get((self.host, fd))
            if conn is None:
                continue  # the listening socket, mostly: its story is the accepts
            text = (
                f"epoll reports {sc.format_events(mask)}"
                if isinstance(mask, int)
                else f"epoll reports {mask!r}"
            )
            if isinstance(mask, int) and mask & sc.EPOLLOUT and conn.out_wait is not None:
                since, since_seq = conn.out_wait
                waited = self.now - since
                self.out_waits += 1
                self.longest_out_wait = max(self.longest_out_wait, waited)
                text += f": EPOLLOUT after {waited / 1e6:.3f}ms (blocked since #{since_seq})"
                conn.out_wait = None
            self.conn_line(conn, seq, text)
        # The bug this tool exists to show: a send that could not finish, and no EPOLLOUT in
        # the interest mask, so epoll will never say when to continue.
        for conn in self.by_fd.values():
            if (
                conn.out_wait is not None
                and conn.mask is not None
                and not conn.mask & sc.EPOLLOUT
                and not conn.warned_no_out
            ):
                conn.warned_no_out = True
                self.conn_line(
                    conn,
                    seq,
                    "note: a send is unfinished but OUT is not in the interest mask: no EPOLLOUT will come",
                )

    def _Shutdown(self, seq: int, req: sc.Shutdown, res: sc.Result) -> None:
        conn = self._conn(seq, req.fd)
        self.conn_line(conn, seq, f"shutdown {_HOW.get(req.how, req.how)} -> {_outcome(res)}")

    def _Close(self, seq: int, req: sc.Close, res: sc.Result) -> None:
        conn = self.by_fd.pop((self.host, req.fd), None)
        if conn is None:
            self.listen_fds.discard(req.fd)
            self.server_line(seq, f"close fd {req.fd} -> {_outcome(res)}")
            return
        conn.closed = True
        text = "close"
        if not res.ok:
            text += f" -> {res.error}"
        if conn.out_wait is not None:
            text += f" (still waiting for EPOLLOUT since #{conn.out_wait[1]})"
        self.conn_line(conn, seq, text)

    def _SetSockOpt(self, seq: int, req: sc.SetSockOpt, res: sc.Result) -> None:
        conn = self.by_fd.get((self.host, req.fd))
        option = _SOCKOPTS.get((req.level, req.name), f"level {req.level} name {req.name}")
        text = f"setsockopt {option} = {req.value!r} -> {_outcome(res)}"
        if conn is not None:
            self.conn_line(conn, seq, text)
        else:
            self.server_line(seq, f"{text} (fd {req.fd})")

    def _conn(self, seq: int, fd: int) -> _Conn:
        conn = self.by_fd.get((self.host, fd))
        if conn is None:  # an fd the trace never showed accepted: still give it a timeline
            conn = _Conn(number=len(self.conns) + 1, fd=fd, peer="(not accepted in this trace)", host=self.host)
            self.conns.append(conn)
            self.by_fd[(self.host, fd)] = conn
        return conn

    # -- a whole program's calls (program traces: simnet.aio, simnet record) -------------------

    def _Connect(self, seq: int, req: sc.Connect, res: sc.Result) -> None:
        outcome = "in progress (non-blocking)" if res.error == "EINPROGRESS" else _outcome(res)
        peer = f"{req.host}:{req.port}"
        if res.ok or res.error == "EINPROGRESS":
            conn = _Conn(number=len(self.conns) + 1, fd=req.fd, peer=peer, host=self.host, connected=True)
            self.conns.append(conn)
            self.by_fd[(self.host, req.fd)] = conn
            self.conn_line(conn, seq, f"connect fd {req.fd} to {peer} -> {outcome}")
        else:
            self.server_line(seq, f"connect fd {req.fd} to {peer} -> {outcome}")

    def _OpenSocket(self, seq: int, req: sc.OpenSocket, res: sc.Result) -> None:
        self.server_line(seq, f"socket family {req.family} type {req.type} proto {req.proto} -> {_outcome(res, 'fd ')}")

    def _SocketPair(self, seq: int, req: sc.SocketPair, res: sc.Result) -> None:
        self.server_line(seq, f"socketpair family {req.family} -> {_outcome(res, 'fds ')}")

    def _GetPeerName(self, seq: int, req: sc.GetPeerName, res: sc.Result) -> None:
        self._fd_line(seq, req.fd, f"getpeername -> {_outcome(res)}")

    def _GetSockOpt(self, seq: int, req: sc.GetSockOpt, res: sc.Result) -> None:
        name = "SO_ERROR" if (req.level, req.name) == (sc.SOL_SOCKET, 4) else None
        option = name or _SOCKOPTS.get((req.level, req.name), f"level {req.level} name {req.name}")
        self._fd_line(seq, req.fd, f"getsockopt {option} -> {_outcome(res)}")

    def _Clock(self, seq: int, req: sc.Clock, res: sc.Result) -> None:
        self.clock_reads += 1  # counted: a program reads the clock at every turn of its loop

    def _Random(self, seq: int, req: sc.Random, res: sc.Result) -> None:
        self.random_reads += 1

    def _Signal(self, seq: int, req: sc.Signal, res: sc.Result) -> None:
        self.server_line(seq, f"signal {req.signum}: the program's handler ran")

    def _fd_line(self, seq: int, fd: int, text: str) -> None:
        conn = self.by_fd.get((self.host, fd))
        if conn is not None:
            self.conn_line(conn, seq, text)
        else:
            self.server_line(seq, f"{text} (fd {fd})")

    # -- output --------------------------------------------------------------------------------

    def render(self, path: str, *, only_conn: int | None, summary_only: bool) -> str:
        h = self.header
        span = (self.now - self.origin) / 1e6
        seed = "-" if h.seed is None else str(h.seed)
        if h.program is not None:
            argv = " ".join(str(a) for a in h.program.get("argv", [])) or "?"
            what = f"program {argv!r}"
        else:
            what = f"app {h.app!r}"
        out = [f"{path}: {h.backend} trace of {what}, seed {seed}, {self.records} records over {span:.3f}ms"]
        if not summary_only:
            if only_conn is None and h.program is not None:
                for host, lines in self.host_lines.items():
                    out += ["", "program" if host is None else f"host {host}"] + lines
            elif only_conn is None:
                out += ["", "server"] + self.server
            for conn in self.conns:
                if only_conn is not None and conn.number != only_conn:
                    continue
                state = "closed" if conn.closed else "still open at the end of the trace"
                ended = f", peer sent {conn.ended}" if conn.ended else ""
                where = "" if conn.host is None else f" on {conn.host}"
                how = " (connected)" if conn.connected else ""
                out += [
                    "",
                    f"connection #{conn.number}{where}: fd {conn.fd}, peer {conn.peer}{how}, "
                    f"{conn.bytes_in} bytes in, {conn.bytes_out} bytes out{ended}, {state}",
                ]
                out += conn.lines
        out += ["", "summary"] + self.summary()
        return "\n".join(out) + "\n"

    def _made(self) -> str:
        connected = sum(c.connected for c in self.conns)
        return _made_text(len(self.conns) - connected, connected)

    def summary(self) -> list[str]:
        calls = "  ".join(f"{n} {c}" for n, c in sorted(self.calls.items(), key=lambda kv: (-kv[1], kv[0])))
        errors = "  ".join(f"{n} {c}" for n, c in sorted(self.errors.items(), key=lambda kv: (-kv[1], kv[0])))
        ended = collections.Counter(c.ended for c in self.conns if c.ended)
        waiting = [c for c in self.conns if c.out_wait is not None and not c.closed]
        gave_up = sum(1 for c in self.conns if c.out_wait is not None and c.closed)
        lines = [
            f"  syscalls     {sum(self.calls.values())}: {calls or 'none'}",
            f"  errors       {errors or 'none'}",
            f"  connections  {self._made()}, {sum(c.closed for c in self.conns)} closed"
            + "".join(f", {n} {kind}" for kind, n in sorted(ended.items())),
            f"  recv         {self.calls['Recv']} calls, {self.eagain_recvs} EAGAIN",
            f"  send         {self.sends} calls, {self.partial_sends} partial, {self.eagain_sends} EAGAIN",
            f"  EPOLLOUT     {self.out_waits} waits ended, longest {self.longest_out_wait / 1e6:.3f}ms"
            + (f"; {gave_up} connections closed while waiting" if gave_up else "")
            + (
                f"; still waiting at the end: {', '.join('#' + str(c.number) for c in waiting)}"
                if waiting
                else ""
            ),
            f"  epoll_wait   {self.waits} calls, {self.empty_waits} returned no events",
            f"  accept       {self.calls['Accept']} calls, {self.eagain_accepts} EAGAIN",
        ]
        if self.clock_reads or self.random_reads:
            lines.append(f"  read         the clock {self.clock_reads} times, randomness {self.random_reads} times")
        if self.shutdown_at is not None:
            lines.append(f"  shutdown     requested at {(self.shutdown_at - self.origin) / 1e6:+.3f}ms")
        lines.append(
            "  end          "
            + (
                ("the program exited" if self.header.program is not None else "the machine exited")
                if self.exited
                else "the trace ends without Exit (the recording was cut short)"
            )
        )
        return lines


def _made_text(accepted: int, connected: int) -> str:
    return f"{accepted} accepted" + (f", {connected} connected" if connected else "")


def _accepted(res: sc.Result) -> tuple[int, str] | None:
    """(fd, "host:port") of a successful Accept; None for anything else a trace may hold."""
    value = res.value
    if (
        res.ok
        and isinstance(value, tuple)
        and len(value) == 2
        and isinstance(value[1], tuple)
        and len(value[1]) == 2
    ):
        fd, (host, port) = value
        if isinstance(fd, int):
            return fd, f"{host}:{port}"
    return None


def _outcome(res: sc.Result, prefix: str = "") -> str:
    if res.error is not None:
        return res.error
    return "ok" if res.value is None else f"{prefix}{res.value!r}"


def render_trace(
    source: str | os.PathLike[str] | IO[bytes] | IO[str],
    *,
    conn: int | None = None,
    summary_only: bool = False,
    preview: int = 40,
) -> str:
    """The text of `simnet show`: the server's own calls, each connection's timeline (only
    connection number `conn` if given), and the summary. Raises `TraceError` on a bad trace."""
    header, records = read_trace(source)
    path = source_name(source)
    timeline = _Timeline(header=header, preview=preview, origin=header.clock_origin, now=header.clock_origin)
    for rec in records:
        timeline.add(rec)
    return timeline.render(path, only_conn=conn, summary_only=summary_only)
