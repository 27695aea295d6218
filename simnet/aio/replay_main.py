"""`simnet replay T.jsonl -- python app.py`: rerun a recorded program with no network (like rr).

    python -m simnet.aio.replay_main T.jsonl -- app.py [args]     (what `simnet replay` runs)

The program runs in this process, unchanged, on a layer that answers every question the
recording answered -- socket calls, epoll waits, clocks, randomness, signals -- from the trace,
in order, and checks that each question is the one recorded. Nothing real is opened: sockets
are `ReplaySocket`s (a `socket.socket` that owns no fd), the selector's epoll is `ReplayEpoll`.

The first question that differs ends the run: one line names the trace's `file:line`, what the
program did and what the trace holds (for bytes, where they first differ), and the program's own
`file:line` at that call; its stack follows; exit status 1. A program that ran as recorded prints
`N syscalls matched` (exit 0); a trace that was cut short (the recording was killed) matches as
far as it goes.
"""

from __future__ import annotations

import os
import random
import selectors
import signal
import socket as _socket
import sys
import sysconfig
import threading
import time
import traceback
from collections.abc import Iterator
from typing import Any, NoReturn

import attrs

from simnet.aio.program import Program, ProgramError, parse_program, run_program
from simnet.aio.record_main import SEED_BYTES, _deterministic_loop
from simnet.aio.recorder import address_parts, epoll_timeout_ms, errno_exception
from simnet.server import syscalls as sc
from simnet.trace.codec import Record, TraceError, TraceHeader
from simnet.trace.reader import read_trace

_RealSocket = _socket.socket
_CSocket = _socket.socket.__mro__[1]
_SIMNET_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_STDLIB_DIR = sysconfig.get_paths()["stdlib"]
_real_exit = os._exit
_real_perf_counter = time.perf_counter
_real_getsignal = signal.getsignal

EXIT_OK, EXIT_DIVERGED, EXIT_BAD_INPUT = 0, 1, 2


class Player:
    """Hands out the trace's records one question at a time, and judges each question."""

    def __init__(self, path: str, records: Iterator[Record]) -> None:
        self.path = path
        self._records = records
        self.matched = 0
        self.setup = 0  # records matched by the launcher itself (the random module's seed)
        self._next: Record | None = None
        self._ended = False
        self._cut: str | None = None  # why the trace ended early (a truncated last line)
        self.handlers: dict[int, Any] = {}
        self.main = threading.main_thread().ident
        self.started = _real_perf_counter()

    def _peek(self) -> Record | None:
        if self._next is None and not self._ended:
            try:
                self._next = next(self._records)
            except StopIteration:
                self._ended = True
            except TraceError as exc:
                self._ended = True
                if "truncated last line" in exc.problem:
                    self._cut = f"{exc}"
                else:
                    self.finish_bad(str(exc))
        return self._next

    def call(self, request: Any) -> Any:
        """The recorded result of `request`: its value, or the recorded errno raised."""
        if threading.get_ident() != self.main:
            raise RuntimeError(f"simnet replay: {request!r} from another thread: only the main thread is replayed")
        record = self._peek()
        while record is not None and type(record.request) is sc.Signal:
            self._next = None
            self.matched += 1
            self._deliver(record.request.signum)
            record = self._peek()
        if record is None:
            self.finish_trace_end(request)
        if type(record.request) is sc.Exit or record.request != request:
            self.finish_divergence(record, request)
        self._next = None
        self.matched += 1
        result = record.result
        assert result is not None
        if result.error is not None:
            raise errno_exception(result.error)
        return result.value

    def _deliver(self, signum: int) -> None:
        handler = self.handlers.get(signum, _real_getsignal(signum))
        if callable(handler):
            handler(signum, None)
        elif handler == signal.SIG_DFL and signum != signal.SIGCHLD:
            self._say(
                f"{self.path}: {self.matched} syscalls matched; then the program was killed by signal "
                f"{signum}, as recorded"
            )
            _real_exit(EXIT_OK)

    # -- endings ------------------------------------------------------------------------------

    def _say(self, text: str) -> None:
        try:
            sys.stdout.flush()
        except Exception:  # noqa: BLE001 -- the program's stdout may be gone; the report must not be
            pass
        elapsed = _real_perf_counter() - self.started
        rate = f" ({self.matched / elapsed:,.0f}/s)" if elapsed > 0 and self.matched >= 1000 else ""
        os.write(1, (text.replace(" syscalls matched", f" syscalls matched{rate}", 1) + "\n").encode())

    def finish_trace_end(self, request: Any) -> NoReturn:
        why = f"the trace was cut short ({self._cut})" if self._cut else "the recording was stopped here"
        self._say(
            f"{self.path}: {self.matched} syscalls matched; the trace ends ({why}) as the program asks for {request!r}"
        )
        _real_exit(EXIT_OK)

    def finish_exit(self, status: int) -> NoReturn:
        record = self._peek()
        while record is not None and type(record.request) is sc.Signal:
            self._next = None
            self.matched += 1
            record = self._peek()
        if record is None or type(record.request) is sc.Exit:
            ending = "the program exited " + ("as recorded" if record is not None else "where the trace ends")
            self._say(f"{self.path}: {self.matched} syscalls matched; {ending}")
            _real_exit(EXIT_OK)
        if self.matched <= self.setup:
            self.finish_bad(
                f"{self.path}:{record.line}: the program exited (status {status}) before its first recorded "
                f"call, {_show(record.request)}: it exits early, or the trace is of another program"
            )
        self._say(
            f"{self.path}:{record.line}: divergence at seq {record.seq}: the program exited (status {status}) "
            f"where the trace holds {_show(record.request)}; after {self.matched} matching syscalls"
        )
        _real_exit(EXIT_DIVERGED)

    def finish_divergence(self, record: Record, request: Any) -> NoReturn:
        expected = record.request
        detail = _difference(expected, request)
        frames = _program_frames()
        where = f" at {frames[-1]}" if frames else ""
        lines = [
            f"{self.path}:{record.line}: divergence at seq {record.seq}: the program did {_show(request)} "
            f"where the trace holds {_show(expected)}{detail}{where}",
            f"  after {self.matched} matching syscalls; the program's stack at that call (innermost last):",
        ]
        lines += [f"    {frame}" for frame in frames[-8:]]
        self._say("\n".join(lines))
        _real_exit(EXIT_DIVERGED)

    def finish_bad(self, text: str) -> NoReturn:
        try:
            sys.stdout.flush()
        except Exception:  # noqa: BLE001
            pass
        os.write(2, (text + "\n").encode())
        _real_exit(EXIT_BAD_INPUT)


def _show(request: Any) -> str:
    text = repr(request)
    return text if len(text) <= 160 else text[:150] + "...)"


def _difference(expected: Any, actual: Any) -> str:
    if type(expected) is not type(actual) or not attrs.has(type(actual)):
        return ""
    for field in attrs.fields(type(actual)):
        a, b = getattr(actual, field.name), getattr(expected, field.name)
        if a == b:
            continue
        if isinstance(a, bytes) and isinstance(b, bytes):
            at = next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))
            return (
                f"; {field.name} differs at byte {at}: the program's {a[at:at + 24]!r} "
                f"against the trace's {b[at:at + 24]!r}"
            )
        return f"; {field.name} differs: {a!r} against {b!r}"
    return ""


def _program_frames() -> list[str]:
    """The caller's stack as file:line in function, without simnet's own frames."""
    out = []
    for frame in traceback.extract_stack()[:-1]:
        path = os.path.abspath(frame.filename)
        if path.startswith(_SIMNET_DIR + os.sep) or frame.filename.startswith("<frozen"):
            continue
        if path.startswith(_STDLIB_DIR) and "site-packages" not in path:
            continue
        out.append(f"{os.path.relpath(path) if not path.startswith('/usr') else path}:{frame.lineno} in {frame.name}")
    return out


def _norm(value: Any, default: int) -> int:
    return default if value in (-1, None) else int(value)


def install(player: Player) -> None:
    """Put the replaying layer where the recording layer was (record_main.install)."""
    play = player.call

    class ReplaySocket(_RealSocket):
        """A socket.socket that owns no fd: every call is answered from the trace."""

        __slots__ = ("_fd", "_family", "_type", "_proto", "_timeout")

        def __new__(cls, *args: Any, **kwargs: Any) -> Any:
            return _CSocket.__new__(cls)  # type: ignore[call-overload]  # opens nothing: no fd

        def __init__(self, family: Any = -1, type: Any = -1, proto: Any = -1, fileno: Any = None) -> None:
            self._family = _norm(family, _socket.AF_INET)
            self._type = _norm(type, _socket.SOCK_STREAM)
            self._proto = _norm(proto, 0)
            self._timeout: float | None = None
            self._io_refs = 0
            self._closed = False
            if fileno is None:
                self._fd: int = play(sc.OpenSocket(family=self._family, type=self._type, proto=self._proto))
            else:
                self._fd = int(fileno)
            if self._type & _socket.SOCK_NONBLOCK:
                self._timeout = 0.0

        @property
        def family(self) -> Any:
            return _socket.AddressFamily(self._family)

        @property
        def type(self) -> Any:
            return _socket.SocketKind(self._type & ~(_socket.SOCK_NONBLOCK | _socket.SOCK_CLOEXEC))

        @property
        def proto(self) -> int:
            return self._proto

        @property
        def timeout(self) -> float | None:
            return self._timeout

        def fileno(self) -> int:
            return self._fd

        def setblocking(self, flag: bool) -> None:
            self._timeout = None if flag else 0.0

        def getblocking(self) -> bool:
            return self._timeout != 0.0

        def settimeout(self, value: float | None) -> None:
            self._timeout = value

        def gettimeout(self) -> float | None:
            return self._timeout

        def set_inheritable(self, inheritable: bool) -> None:
            pass

        def get_inheritable(self) -> bool:
            return False

        def detach(self) -> int:
            fd, self._fd = self._fd, -1
            self._closed = True
            return fd

        def _real_close(self, *args: Any) -> None:
            fd, self._fd = self._fd, -1
            if fd >= 0:
                play(sc.Close(fd=fd))

        def close(self) -> None:
            self._closed = True
            if self._io_refs <= 0:
                self._real_close()

        def __getstate__(self) -> Any:
            raise TypeError(f"cannot pickle {type(self).__name__!r} object")

        def accept(self) -> Any:
            fd, address = play(sc.Accept(fd=self._fd))
            # As socket.accept: the new socket has the default timeout (accept4 gives no O_NONBLOCK).
            child = ReplaySocket(self._family, self._type, self._proto, fileno=fd)
            child._timeout = _socket.getdefaulttimeout()
            return child, address

        def bind(self, address: Any) -> None:
            host, port = address_parts(address)
            play(sc.Bind(fd=self._fd, host=host, port=port))

        def listen(self, *args: Any) -> None:
            play(sc.Listen(fd=self._fd, backlog=int(args[0]) if args else -1))

        def connect(self, address: Any) -> None:
            host, port = address_parts(address)
            play(sc.Connect(fd=self._fd, host=host, port=port))

        def connect_ex(self, address: Any) -> int:
            try:
                self.connect(address)
            except OSError as exc:
                return int(exc.errno or 0)
            return 0

        def recv(self, bufsize: int, flags: int = 0) -> bytes:
            data: bytes = play(sc.Recv(fd=self._fd, size=bufsize))
            return data

        def recv_into(self, buffer: Any, nbytes: int = 0, flags: int = 0) -> int:
            view = memoryview(buffer).cast("B")
            data: bytes = play(sc.Recv(fd=self._fd, size=nbytes or view.nbytes))
            view[: len(data)] = data
            return len(data)

        def send(self, data: Any, flags: int = 0) -> int:
            count: int = play(sc.Send(fd=self._fd, data=bytes(data)))
            return count

        def sendall(self, data: Any, flags: int = 0) -> None:
            play(sc.Send(fd=self._fd, data=bytes(data)))

        def sendmsg(self, buffers: Any, ancdata: Any = (), flags: int = 0, address: Any = None) -> int:
            count: int = play(sc.Send(fd=self._fd, data=b"".join(bytes(b) for b in buffers)))
            return count

        def shutdown(self, how: int) -> None:
            play(sc.Shutdown(fd=self._fd, how=int(how)))

        def getsockname(self) -> Any:
            return play(sc.GetSockName(fd=self._fd))

        def getpeername(self) -> Any:
            return play(sc.GetPeerName(fd=self._fd))

        def setsockopt(self, level: int, optname: int, value: Any, optlen: int | None = None) -> None:
            request: Any
            if isinstance(value, (bytes, bytearray, memoryview)):
                request = sc.SetSockOptBytes(fd=self._fd, level=int(level), name=int(optname), value=bytes(value))
            elif value is None:
                request = sc.SetSockOptBytes(fd=self._fd, level=int(level), name=int(optname),
                                             value=b"\0" * (optlen or 0))  # fmt: skip
            else:
                request = sc.SetSockOpt(fd=self._fd, level=int(level), name=int(optname), value=int(value))
            play(request)

        def getsockopt(self, level: int, optname: int, buflen: int | None = None) -> Any:
            return play(sc.GetSockOpt(fd=self._fd, level=int(level), name=int(optname), buflen=buflen or 0))

    ReplaySocket.__name__ = ReplaySocket.__qualname__ = "socket"
    ReplaySocket.__module__ = "socket"

    def socketpair(family: Any = None, type: Any = _socket.SOCK_STREAM, proto: Any = 0) -> tuple[Any, Any]:
        fam = _socket.AF_UNIX if family is None else family
        a, b = play(sc.SocketPair(family=int(fam), type=int(type), proto=int(proto)))
        return ReplaySocket(fam, type, proto, fileno=a), ReplaySocket(fam, type, proto, fileno=b)

    def getaddrinfo(host: Any, port: Any, family: int = 0, type: int = 0, proto: int = 0, flags: int = 0) -> Any:
        request = sc.GetAddrInfo(
            host="" if host is None else (host.decode() if isinstance(host, bytes) else str(host)),
            port="" if port is None else (port.decode() if isinstance(port, bytes) else str(port)),
            family=int(family), type=int(type), proto=int(proto), flags=int(flags),
        )  # fmt: skip
        return [
            (_socket.AddressFamily(f), _socket.SocketKind(t), p, canon, addr)
            for f, t, p, canon, addr in play(request)
        ]

    class ReplayEpoll:
        def __init__(self, sizehint: int = -1, flags: int = 0) -> None:
            self._fd: int = play(sc.EpollCreate())
            self.closed = False

        def fileno(self) -> int:
            return self._fd

        def register(self, fd: int, eventmask: int = 0) -> None:
            play(sc.EpollCtl(epfd=self._fd, op=sc.EPOLL_CTL_ADD, fd=int(fd), mask=int(eventmask)))

        def modify(self, fd: int, eventmask: int) -> None:
            play(sc.EpollCtl(epfd=self._fd, op=sc.EPOLL_CTL_MOD, fd=int(fd), mask=int(eventmask)))

        def unregister(self, fd: int) -> None:
            play(sc.EpollCtl(epfd=self._fd, op=sc.EPOLL_CTL_DEL, fd=int(fd), mask=0))

        def poll(self, timeout: float | None = None, maxevents: int = -1) -> list[tuple[int, int]]:
            wait = epoll_timeout_ms(None if timeout is None or timeout < 0 else timeout)
            return list(play(sc.EpollWait(epfd=self._fd, max_events=int(maxevents), timeout_ms=wait)))

        def close(self) -> None:
            if not self.closed:
                self.closed = True
                play(sc.Close(fd=self._fd))

    class ReplaySelector(selectors.EpollSelector):
        _selector_cls = ReplayEpoll

    def clock(request: Any) -> tuple[Any, Any]:
        def read_ns() -> int:
            ns: int = play(request)
            return ns

        def read() -> float:
            ns: int = play(request)
            return ns / 1e9

        return read, read_ns

    time.time, time.time_ns = clock(sc.Clock(kind="time"))
    time.monotonic, time.monotonic_ns = clock(sc.Clock(kind="monotonic"))
    time.perf_counter, time.perf_counter_ns = clock(sc.Clock(kind="perf_counter"))
    time.sleep = lambda seconds: None  # the clock reads after it are the trace's anyway

    def urandom(size: int) -> bytes:
        data: bytes = play(sc.Random(size=int(size)))
        return data

    os.urandom = urandom
    random._urandom = urandom  # type: ignore[attr-defined]
    random.seed(int.from_bytes(urandom(SEED_BYTES), "big"))

    _socket.socket = ReplaySocket  # type: ignore[misc]
    _socket.SocketType = ReplaySocket
    _socket.socketpair = socketpair
    _socket.getaddrinfo = getaddrinfo
    selectors.DefaultSelector = ReplaySelector  # type: ignore[misc,assignment]
    _deterministic_loop(lambda sock: None)  # the wake-up byte: its arrival is in the trace

    # Signals: handlers are kept, never installed; Signal records call them.
    handlers = player.handlers

    def install_handler(signum: Any, handler: Any) -> Any:
        previous = handlers.get(int(signum), _real_getsignal(int(signum)))
        handlers[int(signum)] = handler
        return previous

    def getsignal(signum: Any) -> Any:
        return handlers.get(int(signum), _real_getsignal(int(signum)))

    signal.signal = install_handler  # type: ignore[assignment]
    signal.getsignal = getsignal  # type: ignore[assignment]
    signal.set_wakeup_fd = lambda fd, **kwargs: -1


def check_program(path: str, header: TraceHeader, program: Program) -> str | None:
    """Why this trace cannot be replayed with this program, or None."""
    if header.program is None:
        return (
            f"{path}:1: a trace of the server machine (app {header.app!r}), not of a program: "
            f"replay it with `simnet replay {path}`"
        )
    if header.backend != "record":
        return (
            f"{path}:1: a {header.backend} trace (simulated, several hosts): "
            "only `simnet record` traces replay a program"
        )
    recorded = Program(
        run=str(header.program.get("run", "path")),
        target=str(header.program.get("target", (header.program.get("argv") or ["?"])[0])),
        args=(),
    )
    if recorded.name != program.name:
        return f"{path}:1: recorded from program {recorded.name!r}, not {program.name!r}"
    return None


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0].startswith("-"):
        print("usage: python -m simnet.aio.replay_main TRACE.jsonl -- app.py [args]", file=sys.stderr)
        return EXIT_BAD_INPUT
    path, rest = argv[0], argv[1:]
    try:
        program = parse_program(rest)
        program.check()
    except ProgramError as exc:
        print(f"simnet replay: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    try:
        header, records = read_trace(path)
    except TraceError as exc:
        print(str(exc), file=sys.stderr)
        return EXIT_BAD_INPUT
    except OSError as exc:
        print(f"{path}: cannot read: {exc.strerror or exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    problem = check_program(path, header, program)
    if problem is not None:
        print(problem, file=sys.stderr)
        return EXIT_BAD_INPUT
    player = Player(path, records)
    install(player)
    player.setup = player.matched
    status = 0
    try:
        run_program(program)
    except SystemExit as exc:
        status = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except KeyboardInterrupt:
        status = 130
    except BaseException:  # noqa: BLE001 -- the program's own failure: shown, then judged like an exit
        traceback.print_exc()
        status = 1
    player.finish_exit(status)


if __name__ == "__main__":
    sys.exit(main())
