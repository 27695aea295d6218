"""`simnet record`: run a user's program unchanged on real sockets and record it (like rr).

    python -m simnet.aio.record_main T.jsonl -- app.py [args]     (what `simnet record` runs)

The program runs in this process (runpy), on stock asyncio and real sockets. Before it starts,
the boundary where the outside world decides anything is wrapped, and each answer is recorded
(docs/trace-format.md, "Program traces"):

* `socket.socket` is `RecordingSocket` over the real class: every call and its result (bytes
  read, bytes a send took, accepted addresses, errnos); `socket.socketpair`, `getaddrinfo` too;
* `selectors.DefaultSelector` is an EpollSelector whose epoll records register/modify/unregister
  (EpollCtl) and every wait with the events it returned (EpollWait);
* the clocks (`time.time`, `monotonic`, `perf_counter` and their _ns forms, so `loop.time()`),
  `os.urandom`, and the `random` module's seed, which is read from os.urandom here;
* signal handlers: when one runs, a Signal record says where, so replay runs it at that point.

Two things asyncio would otherwise do behind the trace's back are made deterministic: the
self-pipe's wake-up byte is written unrecorded (it may come from another thread), and
`loop.getaddrinfo` resolves in the loop's thread instead of a worker thread. Calls from other
threads are not recorded.

Durability: whole lines only, flushed before every wait that may block and at exit; SIGTERM (if
the program does not handle it) writes a Signal record, flushes, and ends the process by
SIGTERM as before. After kill -9 every complete line is readable.
"""

from __future__ import annotations

import os
import random
import selectors
import signal
import socket as _socket
import sys
import threading
import time
from typing import Any

from simnet.aio.program import Program, ProgramError, exit_status, parse_program, run_program
from simnet.aio.recorder import (
    Recording,
    RecordingSocket,
    epoll_timeout_ms,
    errno_name,
    plain,
)
from simnet.server import syscalls as sc
from simnet.trace.codec import TraceHeader, line_template, payload_slot
from simnet.trace.schema import builder
from simnet.trace.values import _encode_json, payload_json
from simnet.trace.writer import TraceWriter

_real_monotonic_ns = time.monotonic_ns
_real_time_ns = time.time_ns
_real_perf_counter_ns = time.perf_counter_ns
_real_urandom = os.urandom
_real_socketpair = _socket.socketpair
_real_getaddrinfo = _socket.getaddrinfo
_real_signal = signal.signal
_real_getsignal = signal.getsignal
_RealSocket = _socket.socket
_RealEpoll = getattr(__import__("select"), "epoll", None)
_main_thread = threading.main_thread
_get_ident = threading.get_ident
_real_recv = _RealSocket.recv
_real_send = _RealSocket.send
_new_result = builder(sc.Result)  # positional: Result(value, error, now, shutdown)

CLOCK_TIME = sc.Clock(kind="time")
CLOCK_MONOTONIC = sc.Clock(kind="monotonic")
CLOCK_PERF = sc.Clock(kind="perf_counter")
SEED_BYTES = 32


class LiveRecorder(Recording):
    """Writes each call of the program's main thread, at the real monotonic clock.

    The calls made once per request or more -- a clock read, recv, send, epoll_wait -- are
    written by `install`'s wrappers straight from a `line_template` (`writer.record_formatted`),
    without a request or a Result to build: ~5 records per HTTP request made recording cost a
    third of an aiohttp app's throughput when each went through `ok`. The rest come here."""

    def __init__(self, writer: TraceWriter) -> None:
        self.writer = writer
        self.main = threading.main_thread().ident
        self.closed = False

    def ok(self, sock: Any, request: Any, value: Any) -> None:
        if self.closed or _get_ident() != self.main:
            return
        self.writer.record(request, _new_result(value, None, _real_monotonic_ns(), False))

    def failed(self, sock: Any, request: Any, exc: BaseException) -> None:
        if self.closed or _get_ident() != self.main:
            return
        self.writer.record(request, _new_result(None, errno_name(exc), _real_monotonic_ns(), False))

    def call(self, request: Any, value: Any) -> None:
        self.ok(None, request, value)

    def flush(self) -> None:
        if not self.closed:
            self.writer.flush()

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        try:
            self.writer.record_exit()
        finally:
            self.writer.close()

    def abandon(self) -> None:
        """The process is about to die by a signal: what was recorded goes out, with no Exit."""
        if not self.closed:
            self.closed = True
            self.writer.close()


def _norm(value: Any, default: int) -> int:
    return default if value in (-1, None) else int(value)


def install(recorder: LiveRecorder) -> None:
    """Wrap the program's view of sockets, selectors, clocks, randomness and signals."""
    rec = recorder
    main = rec.main
    write = rec.writer.record_formatted
    recv_line = line_template(sc.Recv, "json")
    send_line = line_template(sc.Send, "int")
    wait_line = line_template(sc.EpollWait, "json")
    clock_line = line_template(sc.Clock, "int")

    class RecSocket(RecordingSocket, _RealSocket):
        __slots__ = ()
        _recorder = rec

        # recv and send as RecordingSocket has them, each written from its template: they run
        # once per request or more. A failed call (EAGAIN) takes the general way.
        def recv(self, bufsize: int, flags: int = 0) -> bytes:
            try:
                data: bytes = _real_recv(self, bufsize, flags)
            except OSError as exc:
                rec.failed(self, sc.Recv(fd=self.fileno(), size=bufsize), exc)
                raise
            if rec.closed or _get_ident() != main:
                return data
            if type(bufsize) is int:
                write(recv_line, (_real_monotonic_ns(), self.fileno(), bufsize, payload_json(data)))
            else:  # an int subclass, say: the careful path writes it as the format wants
                rec.ok(self, sc.Recv(fd=self.fileno(), size=bufsize), data)
            return data

        def send(self, data: Any, flags: int = 0) -> int:
            try:
                count: int = _real_send(self, data, flags)
            except OSError as exc:
                rec.failed(self, sc.Send(fd=self.fileno(), data=bytes(data)), exc)
                raise
            if not rec.closed and _get_ident() == main:
                write(send_line, (_real_monotonic_ns(), self.fileno(), payload_slot(bytes(data)), count))
            return count

        def __init__(self, family: Any = -1, type: Any = -1, proto: Any = -1, fileno: Any = None) -> None:
            if fileno is not None:
                _RealSocket.__init__(self, family, type, proto, fileno)
                return
            request = sc.OpenSocket(
                family=_norm(family, _socket.AF_INET), type=_norm(type, _socket.SOCK_STREAM), proto=_norm(proto, 0)
            )
            try:
                _RealSocket.__init__(self, family, type, proto, fileno)
            except OSError as exc:
                rec.failed(self, request, exc)
                raise
            rec.ok(self, request, self.fileno())

    RecSocket.__name__ = RecSocket.__qualname__ = "socket"
    RecSocket.__module__ = "socket"

    def socketpair(family: Any = None, type: Any = _socket.SOCK_STREAM, proto: Any = 0) -> tuple[Any, Any]:
        fam = _socket.AF_UNIX if family is None else family
        request = sc.SocketPair(family=int(fam), type=int(type), proto=int(proto))
        try:
            a, b = _real_socketpair(fam, type, proto)
        except OSError as exc:
            rec.failed(None, request, exc)
            raise
        a.__class__ = b.__class__ = RecSocket
        rec.ok(None, request, (a.fileno(), b.fileno()))
        return a, b

    def getaddrinfo(host: Any, port: Any, family: int = 0, type: int = 0, proto: int = 0, flags: int = 0) -> Any:
        request = sc.GetAddrInfo(
            host="" if host is None else (host.decode() if isinstance(host, bytes) else str(host)),
            port="" if port is None else (port.decode() if isinstance(port, bytes) else str(port)),
            family=int(family), type=int(type), proto=int(proto), flags=int(flags),
        )  # fmt: skip
        try:
            result = _real_getaddrinfo(host, port, family, type, proto, flags)
        except OSError as exc:
            rec.failed(None, request, exc)
            raise
        rec.ok(None, request, plain(result))
        return result

    class RecordingEpoll:
        """select.epoll, recording each call; what EpollSelector holds as `_selector`."""

        def __init__(self, sizehint: int = -1, flags: int = 0) -> None:
            assert _RealEpoll is not None
            self._ep = _RealEpoll(sizehint, flags)
            self._fd: int = self._ep.fileno()
            rec.call(sc.EpollCreate(), self._fd)

        def fileno(self) -> int:
            return self._fd

        @property
        def closed(self) -> bool:
            return bool(self._ep.closed)

        def register(self, fd: int, eventmask: int = 0) -> None:
            self._ctl(self._ep.register, sc.EPOLL_CTL_ADD, fd, eventmask)

        def modify(self, fd: int, eventmask: int) -> None:
            self._ctl(self._ep.modify, sc.EPOLL_CTL_MOD, fd, eventmask)

        def unregister(self, fd: int) -> None:
            self._ctl(self._ep.unregister, sc.EPOLL_CTL_DEL, fd, 0)

        def _ctl(self, call: Any, op: str, fd: int, mask: int) -> None:
            request = sc.EpollCtl(epfd=self._fd, op=op, fd=int(fd), mask=int(mask))
            try:
                if op == sc.EPOLL_CTL_DEL:
                    call(fd)
                else:
                    call(fd, mask)
            except OSError as exc:
                rec.failed(None, request, exc)
                raise
            rec.call(request, None)

        def poll(self, timeout: float | None = None, maxevents: int = -1) -> list[tuple[int, int]]:
            wait = epoll_timeout_ms(None if timeout is None or timeout < 0 else timeout)
            events: list[tuple[int, int]]
            try:
                if wait == 0:
                    events = self._ep.poll(0, maxevents)
                else:
                    # A server idle in epoll_wait is when someone loses patience and kills it, so
                    # the trace is flushed before a wait that blocks -- but only then: a first
                    # look with timeout 0 returns what the blocking call would (events ready now
                    # are returned at once), and under load it spares a write(2) per turn of
                    # the loop. The record is the one call the program made, with its timeout.
                    events = self._ep.poll(0, maxevents)
                    if not events:
                        rec.flush()
                        events = self._ep.poll(timeout, maxevents)
            except OSError as exc:
                rec.failed(None, sc.EpollWait(epfd=self._fd, max_events=int(maxevents), timeout_ms=wait), exc)
                raise
            if rec.closed or _get_ident() != main:
                return events
            if type(maxevents) is int:
                # epoll's list of (fd, mask) int pairs: JSON as the tuple of tuples recorded.
                write(wait_line, (_real_monotonic_ns(), self._fd, maxevents, wait, _encode_json(events)))
            else:
                request = sc.EpollWait(epfd=self._fd, max_events=int(maxevents), timeout_ms=wait)
                rec.call(request, tuple(events))
            return events

        def close(self) -> None:
            if not self._ep.closed:
                self._ep.close()
                rec.call(sc.Close(fd=self._fd), None)

    class RecordingSelector(selectors.EpollSelector):
        _selector_cls = RecordingEpoll

    # -- clocks and randomness ------------------------------------------------------------------

    # Half of all records are clock reads (loop.time() is time.monotonic()): each is one
    # `%` of a template with its kind filled in once, no call but the clock's and the write.
    def clock(request: Any, real: Any) -> tuple[Any, Any]:
        kind = _encode_json(request.kind)

        def read_ns() -> int:
            ns: int = real()
            if not rec.closed and _get_ident() == main:
                write(clock_line, (_real_monotonic_ns(), kind, ns))
            return ns

        def read() -> float:
            ns: int = real()
            if not rec.closed and _get_ident() == main:
                write(clock_line, (_real_monotonic_ns(), kind, ns))
            return ns / 1e9

        return read, read_ns

    time.time, time.time_ns = clock(CLOCK_TIME, _real_time_ns)
    time.monotonic, time.monotonic_ns = clock(CLOCK_MONOTONIC, _real_monotonic_ns)
    time.perf_counter, time.perf_counter_ns = clock(CLOCK_PERF, _real_perf_counter_ns)

    def urandom(size: int) -> bytes:
        data = _real_urandom(size)
        rec.call(sc.Random(size=int(size)), data)
        return data

    os.urandom = urandom
    random._urandom = urandom  # type: ignore[attr-defined]  # SystemRandom's source
    random.seed(int.from_bytes(urandom(SEED_BYTES), "big"))  # the module's generator, as replay will seed it

    # -- sockets, selectors, the loop -----------------------------------------------------------

    _socket.socket = RecSocket  # type: ignore[misc]
    _socket.SocketType = RecSocket
    _socket.socketpair = socketpair
    _socket.getaddrinfo = getaddrinfo
    selectors.DefaultSelector = RecordingSelector  # type: ignore[misc,assignment]
    _deterministic_loop(lambda sock: _RealSocket.send(sock, b"\0"))

    # -- signals --------------------------------------------------------------------------------
    _record_signals(rec)


def _deterministic_loop(wake: Any) -> None:
    """asyncio's loop, minus what would make its calls depend on thread timing (see above)."""
    from asyncio import base_events, selector_events

    def _write_to_self(self: Any) -> None:
        csock = self._csock
        if csock is None:
            return
        try:
            wake(csock)
        except OSError:
            pass

    selector_events.BaseSelectorEventLoop._write_to_self = _write_to_self  # type: ignore[attr-defined]

    async def getaddrinfo(self: Any, host: Any, port: Any, *, family: int = 0, type: int = 0, proto: int = 0,
                          flags: int = 0) -> Any:  # fmt: skip
        return _socket.getaddrinfo(host, port, family, type, proto, flags)

    async def getnameinfo(self: Any, sockaddr: Any, flags: int = 0) -> Any:
        return _socket.getnameinfo(sockaddr, flags)

    base_events.BaseEventLoop.getaddrinfo = getaddrinfo  # type: ignore[method-assign]
    base_events.BaseEventLoop.getnameinfo = getnameinfo  # type: ignore[method-assign]


def _record_signals(rec: LiveRecorder) -> None:
    """A Signal record wherever one of the program's handlers runs; SIGTERM left at its default
    still kills the process, after the trace is flushed."""
    originals: dict[int, Any] = {}

    def wrap(signum: int, handler: Any) -> Any:
        def recorded(sig: int, frame: Any) -> Any:
            rec.call(sc.Signal(signum=sig), None)
            return handler(sig, frame)

        return recorded

    def terminate(sig: int, frame: Any) -> None:
        rec.call(sc.Signal(signum=sig), None)
        rec.abandon()
        _real_signal(sig, signal.SIG_DFL)
        os.kill(os.getpid(), sig)

    def install_handler(signum: Any, handler: Any) -> Any:
        signum = int(signum)
        previous = originals.get(signum, _real_getsignal(signum))
        originals[signum] = handler
        if callable(handler):
            _real_signal(signum, wrap(signum, handler))
        elif handler == signal.SIG_DFL and signum == signal.SIGTERM:
            _real_signal(signum, terminate)
        else:
            _real_signal(signum, handler)
        return previous

    def getsignal(signum: Any) -> Any:
        signum = int(signum)
        return originals[signum] if signum in originals else _real_getsignal(signum)

    install_handler(signal.SIGINT, _real_getsignal(signal.SIGINT))
    install_handler(signal.SIGTERM, signal.SIG_DFL)
    signal.signal = install_handler  # type: ignore[assignment]
    signal.getsignal = getsignal  # type: ignore[assignment]


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0].startswith("-"):
        print("usage: python -m simnet.aio.record_main TRACE.jsonl -- app.py [args]", file=sys.stderr)
        return 2
    trace, rest = argv[0], argv[1:]
    try:
        program = parse_program(rest)
        program.check()
    except ProgramError as exc:
        print(f"simnet record: {exc}", file=sys.stderr)
        return 2
    try:
        header = TraceHeader.for_program(
            backend="record",
            program=program.describe(),
            clock_origin=_real_monotonic_ns(),
            meta={"host": _socket.gethostname(), "kernel": os.uname().release},
        )
        writer = TraceWriter(trace, header)
    except OSError as exc:
        print(f"{trace}: cannot write: {exc.strerror or exc}", file=sys.stderr)
        return 2
    recorder = LiveRecorder(writer)
    install(recorder)
    return _run(program, recorder)


def _run(program: Program, recorder: LiveRecorder) -> int:
    try:
        run_program(program)
    except BaseException as exc:  # noqa: BLE001 -- the program's own end, reported as Python would
        recorder.close()
        if isinstance(exc, SystemExit):
            return exit_status(exc)
        raise
    recorder.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
