"""The syscall boundary: what the server machine asks for, and what it is handed back.

The machine never touches a socket, a clock or a random number generator. It asks for one syscall
at a time (a frozen value below) and a driver -- simnet, realnet or replay -- executes it and hands
back a `Result`: the return value or the errno *name*, plus the backend's clock in integer
nanoseconds. A recorder between driver and machine writes exactly these values to the trace, so
every field here must be plain data (ints, strs, bytes, tuples).

Constants are Linux's numeric values, spelled out here because this module is pure (it may not
import `socket` or `select`); they are checked against the real modules in the tests.
"""

from __future__ import annotations

from typing import Any, Union

import attrs

# epoll event bits (include/uapi/linux/eventpoll.h)
EPOLLIN = 0x001
EPOLLPRI = 0x002
EPOLLOUT = 0x004
EPOLLERR = 0x008
EPOLLHUP = 0x010
EPOLLRDNORM = 0x040
EPOLLWRNORM = 0x100
EPOLLRDHUP = 0x2000
EPOLLONESHOT = 1 << 30
EPOLLET = 1 << 31

# shutdown(2) how
SHUT_RD = 0
SHUT_WR = 1
SHUT_RDWR = 2

# setsockopt levels and names (the subset a server loop uses)
SOL_SOCKET = 1
IPPROTO_TCP = 6
SO_REUSEADDR = 2
SO_SNDBUF = 7
SO_RCVBUF = 8
SO_LINGER = 13
TCP_NODELAY = 1

EPOLL_CTL_ADD = "ADD"
EPOLL_CTL_MOD = "MOD"
EPOLL_CTL_DEL = "DEL"

_EVENT_NAMES = (
    (EPOLLIN, "IN"),
    (EPOLLPRI, "PRI"),
    (EPOLLOUT, "OUT"),
    (EPOLLERR, "ERR"),
    (EPOLLHUP, "HUP"),
    (EPOLLRDNORM, "RDNORM"),
    (EPOLLWRNORM, "WRNORM"),
    (EPOLLRDHUP, "RDHUP"),
    (EPOLLONESHOT, "ONESHOT"),
    (EPOLLET, "ET"),
)


def format_events(mask: int) -> str:
    """`IN|OUT|RDHUP` -- the way strace and LINUX.md write epoll masks."""
    return "|".join(name for bit, name in _EVENT_NAMES if mask & bit) or "0"


def _short_bytes(data: bytes) -> str:
    # A 1 MB response in a repr helps nobody: show its length and both ends.
    if len(data) <= 40:
        return repr(data)
    return f"<{len(data)} bytes {data[:16]!r}...{data[-8:]!r}>"


@attrs.frozen(kw_only=True)
class Socket:
    """socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK) -> fd"""


@attrs.frozen(kw_only=True)
class SetSockOpt:
    """setsockopt(fd, level, name, value) -> None; value is an int, or (onoff, linger) for SO_LINGER."""

    fd: int
    level: int
    name: int
    value: int | tuple[int, int]


@attrs.frozen(kw_only=True)
class Bind:
    """bind(fd, (host, port)) -> None"""

    fd: int
    host: str
    port: int


@attrs.frozen(kw_only=True)
class Listen:
    """listen(fd, backlog) -> None"""

    fd: int
    backlog: int


@attrs.frozen(kw_only=True)
class GetSockName:
    """getsockname(fd) -> (host, port): how a server listening on port 0 learns its port."""

    fd: int


@attrs.frozen(kw_only=True)
class Accept:
    """accept4(fd, SOCK_NONBLOCK) -> (new_fd, (peer_host, peer_port))"""

    fd: int


@attrs.frozen(kw_only=True)
class Recv:
    """recv(fd, size) -> bytes (b'' is EOF)"""

    fd: int
    size: int


@attrs.frozen(kw_only=True, repr=False)
class Send:
    """send(fd, data) -> number of bytes queued (possibly fewer than len(data))"""

    fd: int
    data: bytes

    def __repr__(self) -> str:
        return f"Send(fd={self.fd}, data={_short_bytes(self.data)})"


@attrs.frozen(kw_only=True)
class Shutdown:
    """shutdown(fd, how) -> None"""

    fd: int
    how: int


@attrs.frozen(kw_only=True)
class Close:
    """close(fd) -> None"""

    fd: int


@attrs.frozen(kw_only=True)
class EpollCreate:
    """epoll_create1(0) -> epfd"""


@attrs.frozen(kw_only=True)
class EpollCtl:
    """epoll_ctl(epfd, op, fd, mask) -> None; op is "ADD", "MOD" or "DEL"."""

    epfd: int
    op: str
    fd: int
    mask: int = 0

    def __repr__(self) -> str:
        return f"EpollCtl(epfd={self.epfd}, op={self.op}, fd={self.fd}, mask={format_events(self.mask)})"


@attrs.frozen(kw_only=True)
class EpollWait:
    """epoll_wait(epfd, max_events, timeout_ms) -> tuple of (fd, mask); timeout_ms -1 blocks."""

    epfd: int
    max_events: int
    timeout_ms: int


@attrs.frozen(kw_only=True)
class Exit:
    """Not a syscall: the machine has finished (after a graceful shutdown). Drivers stop here."""


# -- what a whole program asks of the kernel (simnet.aio traces, `simnet record`) ----------------
# The server machine above never needs these; a user's asyncio program does. They follow the same
# rules (plain fields, the errno name on failure), so the codec derives their encoders as for the
# rest, and a machine trace never contains them.


@attrs.frozen(kw_only=True)
class OpenSocket:
    """socket(family, type, proto) -> fd, with the arguments the program passed (type may carry
    SOCK_NONBLOCK/SOCK_CLOEXEC); `Socket` above is the machine's fixed AF_INET stream socket."""

    family: int
    type: int
    proto: int


@attrs.frozen(kw_only=True)
class SocketPair:
    """socketpair(family, type, proto) -> (fd, fd): asyncio's self-pipe is one."""

    family: int
    type: int
    proto: int


@attrs.frozen(kw_only=True)
class Connect:
    """connect(fd, (host, port)) -> None; a non-blocking socket fails with EINPROGRESS and
    reports the outcome through GetSockOpt(SO_ERROR). An AF_UNIX path is `host`, port -1."""

    fd: int
    host: str
    port: int


@attrs.frozen(kw_only=True)
class GetPeerName:
    """getpeername(fd) -> (host, port); ENOTCONN before the handshake completes."""

    fd: int


@attrs.frozen(kw_only=True)
class GetSockOpt:
    """getsockopt(fd, level, name[, buflen]) -> int, or bytes when buflen > 0 (0: not given)."""

    fd: int
    level: int
    name: int
    buflen: int


@attrs.frozen(kw_only=True)
class SetSockOptBytes:
    """setsockopt(fd, level, name, value) with a packed struct for value (SetSockOpt takes ints)."""

    fd: int
    level: int
    name: int
    value: bytes


@attrs.frozen(kw_only=True)
class GetAddrInfo:
    """getaddrinfo(host, port, family, type, proto, flags) -> ((family, type, proto, canonname,
    address), ...). host and port as the program gave them, as text ("" for None)."""

    host: str
    port: str
    family: int
    type: int
    proto: int
    flags: int


@attrs.frozen(kw_only=True)
class Clock:
    """A clock the program read -> integer ns: kind "time" (time.time, time_ns), "monotonic"
    (time.monotonic, loop.time()) or "perf_counter". Replay answers it from the trace."""

    kind: str


@attrs.frozen(kw_only=True)
class Random:
    """os.urandom(size) -> bytes (also what seeds the `random` module when recording starts)."""

    size: int


@attrs.frozen(kw_only=True)
class Signal:
    """Not a syscall: the program's handler for signal `signum` ran here (-> None). Replay runs
    the handler again at the same place in the call sequence."""

    signum: int


Syscall = Union[  # noqa: UP007  (trace/codec.py reads these aliases' members with typing.get_args)
    Socket,
    SetSockOpt,
    Bind,
    Listen,
    GetSockName,
    Accept,
    Recv,
    Send,
    Shutdown,
    Close,
    EpollCreate,
    EpollCtl,
    EpollWait,
    Exit,
    OpenSocket,
    SocketPair,
    Connect,
    GetPeerName,
    GetSockOpt,
    SetSockOptBytes,
    GetAddrInfo,
    Clock,
    Random,
    Signal,
]

SYSCALL_TYPES: dict[str, type] = {
    cls.__name__: cls
    for cls in (
        Socket,
        SetSockOpt,
        Bind,
        Listen,
        GetSockName,
        Accept,
        Recv,
        Send,
        Shutdown,
        Close,
        EpollCreate,
        EpollCtl,
        EpollWait,
        Exit,
        OpenSocket,
        SocketPair,
        Connect,
        GetPeerName,
        GetSockOpt,
        SetSockOptBytes,
        GetAddrInfo,
        Clock,
        Random,
        Signal,
    )
}

# What a successful call returns. Accept: (fd, (host, port)); EpollWait: ((fd, mask), ...).
Value = Union[None, int, bytes, tuple[Any, ...]]  # noqa: UP007  (as Syscall above)


@attrs.frozen(kw_only=True, repr=False)
class Result:
    """The outcome of one syscall: a value, or an errno name such as "EAGAIN"; and the clock.

    `now` is the backend's monotonic clock in integer nanoseconds (virtual time in simnet), so
    the machine needs no clock of its own. `shutdown` is set by the driver once a graceful
    shutdown has been requested (SIGTERM in realnet, the end of a run in simnet); it travels
    inside a result so that a trace replays it exactly.
    """

    value: Value = None
    error: str | None = None
    now: int = 0
    shutdown: bool = False

    @property
    def ok(self) -> bool:
        return self.error is None

    def __repr__(self) -> str:
        body = self.error if self.error is not None else (
            _short_bytes(self.value) if isinstance(self.value, bytes) else repr(self.value)
        )
        flag = ", shutdown" if self.shutdown else ""
        return f"Result({body}, now={self.now}{flag})"
