"""The conformance harness: the Backend interface and the shared helpers.

Every scenario in this directory takes the ``backend`` fixture and runs twice:

* ``real`` -- real loopback sockets on 127.0.0.1 and ``select.epoll`` on this machine;
* ``sim``  -- simnet's simulated kernel (``simnet.Network``), with 127.0.0.1 inside one host.

A test body only talks to the ``Backend`` interface below plus Python's own ``socket`` and
``select`` constants, errnos and exceptions, so whatever it asserts is asserted of Linux and of
the model alike.
The expected values come from shared/LINUX.md (measured on this kind of machine); its "avoid /
tolerate" rules shape the helpers:

* TCP_NODELAY on by default (``pair``), so no scenario depends on Nagle/delayed-ACK timing;
* ``drain`` loops until N bytes have arrived and never looks at how the stream was split;
* every loop is bounded in iterations *and* in (real or virtual) time;
* byte counts before EAGAIN are checked as bounds plus conservation, never exactly.

On loopback Linux delivers each segment synchronously inside the sending syscall (LINUX.md
"Important general finding"), and simnet does the same, so plain cause -> effect steps need no
``settle``; only timer-driven effects do.
"""

from __future__ import annotations

import errno
import socket
import struct
import time
from collections.abc import Callable
from typing import Any

import pytest

ADDR = "127.0.0.1"
SYSCTL_KEYS = ("somaxconn", "tcp_rmem", "tcp_wmem", "rmem_max", "wmem_max")
_PROC = {
    "somaxconn": "/proc/sys/net/core/somaxconn",
    "tcp_rmem": "/proc/sys/net/ipv4/tcp_rmem",
    "tcp_wmem": "/proc/sys/net/ipv4/tcp_wmem",
    "rmem_max": "/proc/sys/net/core/rmem_max",
    "wmem_max": "/proc/sys/net/core/wmem_max",
}
# Timer sysctls some scenarios need; the sim's Sysctl need not have them (see SimBackend).
OPTIONAL_SYSCTL = {
    "tcp_syn_retries": ("/proc/sys/net/ipv4/tcp_syn_retries", 6),
    # Linux >= 6.17: the first N SYN timeouts keep a linear 1 s RTO; 0 (classic exponential
    # backoff) where the kernel has no such knob. This machine has 4 (LINUX.md says 1, 3, 7 s).
    "tcp_syn_linear_timeouts": ("/proc/sys/net/ipv4/tcp_syn_linear_timeouts", 0),
}


# --------------------------------------------------------------------------------------------
# Backends
# --------------------------------------------------------------------------------------------


class Backend:
    """What a scenario may use. Subclasses bind it to real sockets or to simnet."""

    name: str
    addr: str = ADDR
    sysctl: dict[str, Any]

    def socket(self, proto: int = 0) -> Any:  # AF_INET, SOCK_STREAM
        raise NotImplementedError

    def epoll(self, sizehint: int = -1, flags: int = 0) -> Any:
        raise NotImplementedError

    def epoll_fromfd(self, fd: int) -> Any:
        """select.epoll.fromfd: a second object for the same epoll fd."""
        raise NotImplementedError

    def select(self, rlist: Any, wlist: Any, xlist: Any, timeout: float | None = None) -> Any:
        """select.select."""
        raise NotImplementedError

    def poll(self) -> Any:
        """select.poll()."""
        raise NotImplementedError

    def settle(self, seconds: float) -> None:
        """Let `seconds` of (real or virtual) time pass with the test doing nothing."""
        raise NotImplementedError

    def monotonic(self) -> float:
        raise NotImplementedError

    def segments_sent(self) -> int:
        """TCP segments sent so far: /proc/net/snmp's OutSegs (the whole machine's, so other
        traffic can only add to it) or the model's own count."""
        raise NotImplementedError

    def close_all(self) -> None:
        raise NotImplementedError

    def track(self, obj: Any) -> Any:
        """Hand an object the test created outside ``socket()``/``epoll()`` to teardown."""
        return obj

    def __repr__(self) -> str:
        return f"<Backend {self.name}>"


class _TrackedSocket(socket.socket):
    """A plain real socket whose accept() also registers the child for teardown.

    (CPython's socket.accept builds a base ``socket.socket``, which is what we hand back: the
    child is a completely ordinary socket, we only remember it.)
    """

    _registry: list[Any]

    def accept(self) -> tuple[socket.socket, Any]:
        conn, peer = super().accept()
        self._registry.append(conn)
        return conn, peer


class RealBackend(Backend):
    name = "real"

    def __init__(self) -> None:
        self._objs: list[Any] = []
        self.sysctl = {k: _read_proc(p) for k, p in _PROC.items()}
        self.sysctl.update({k: _read_proc_or(p, d) for k, (p, d) in OPTIONAL_SYSCTL.items()})

    def socket(self, proto: int = 0) -> socket.socket:
        s = _TrackedSocket(socket.AF_INET, socket.SOCK_STREAM, proto)
        s._registry = self._objs
        self._objs.append(s)
        return s

    def epoll(self, sizehint: int = -1, flags: int = 0) -> Any:
        import select

        ep = select.epoll(sizehint, flags)
        self._objs.append(ep)
        return ep

    def epoll_fromfd(self, fd: int) -> Any:
        import select

        # Tracked (closed before the epoll it wraps, in reverse order): an untracked one would
        # close the fd number whenever it is collected, whatever file has the number by then.
        ep = select.epoll.fromfd(fd)
        self._objs.append(ep)
        return ep

    def select(self, rlist: Any, wlist: Any, xlist: Any, timeout: float | None = None) -> Any:
        import select

        return select.select(rlist, wlist, xlist, timeout)

    def poll(self) -> Any:
        import select

        return select.poll()

    def settle(self, seconds: float) -> None:
        time.sleep(seconds)

    def monotonic(self) -> float:
        return time.monotonic()

    def segments_sent(self) -> int:
        with open("/proc/net/snmp") as f:
            tcp = [line.split() for line in f if line.startswith("Tcp:")]
        return int(tcp[1][tcp[0].index("OutSegs")])

    def track(self, obj: Any) -> Any:
        self._objs.append(obj)
        return obj

    def close_all(self) -> None:
        # Close epolls first, then sockets; a socket left in SYN_SENT or TIME_WAIT is the
        # kernel's business after this, but no fd outlives the test.
        for obj in reversed(self._objs):
            try:
                obj.close()
            except OSError:
                pass
        self._objs.clear()


class SimBackend(Backend):
    name = "sim"

    def __init__(self, simnet: Any) -> None:
        self.net = simnet.Network(seed=0)
        self.host = self.net.host("10.0.0.1")
        sc = self.net.sysctl
        self.sysctl = {
            k: tuple(getattr(sc, k)) if k.startswith("tcp_") else int(getattr(sc, k))
            for k in SYSCTL_KEYS
        }
        # A knob the model does not declare is taken to have this machine's value: the model's
        # job is to behave like the Linux it runs beside.
        for k, (path, default) in OPTIONAL_SYSCTL.items():
            v = getattr(sc, k, None)
            self.sysctl[k] = int(v) if v is not None else _read_proc_or(path, default)

    def socket(self, proto: int = 0) -> Any:
        return self.host.socket(socket.AF_INET, socket.SOCK_STREAM, proto)

    def epoll(self, sizehint: int = -1, flags: int = 0) -> Any:
        return self.host.epoll(sizehint, flags)

    def epoll_fromfd(self, fd: int) -> Any:
        return self.host.epoll_fromfd(fd)

    def select(self, rlist: Any, wlist: Any, xlist: Any, timeout: float | None = None) -> Any:
        return self.host.select(rlist, wlist, xlist, timeout)

    def poll(self) -> Any:
        return self.host.poll()

    def settle(self, seconds: float) -> None:
        self.net.run(until=self.net.now + seconds)

    def monotonic(self) -> float:
        return float(self.net.now)

    def segments_sent(self) -> int:
        return int(self.net.counters["segments"])

    def close_all(self) -> None:
        # Nothing outlives the Network object: dropping it releases every simulated socket.
        self.net = None  # type: ignore[assignment]
        self.host = None


def _read_proc(path: str) -> Any:
    with open(path) as f:
        fields = [int(x) for x in f.read().split()]
    return tuple(fields) if len(fields) > 1 else fields[0]


def _read_proc_or(path: str, default: int) -> Any:
    try:
        return _read_proc(path)
    except OSError:
        return default


def syn_schedule(sysctl: dict[str, Any]) -> tuple[list[float], float]:
    """(times of the SYN retransmits after the first SYN, time connect gives up with ETIMEDOUT).

    tcp_retransmit_timer keeps the 1 s initial RTO while total_rto <= tcp_syn_linear_timeouts,
    then doubles it; tcp_write_timeout gives up in SYN_SENT after tcp_syn_retries +
    tcp_syn_linear_timeouts retransmits. Linear 0, retries 6: 1, 3, 7, 15, 31, 63 -> 127 s.
    Linear 4 (this machine): 1, 2, 3, 4, 5, 7, 11, 19, 35, 67 -> 131 s.
    """
    linear, retries = sysctl["tcp_syn_linear_timeouts"], sysctl["tcp_syn_retries"]
    times, t, rto = [], 0.0, 1.0
    for k in range(1, retries + linear + 1):
        t += rto
        times.append(t)
        if k > linear:
            rto *= 2
    return times, t + rto


def load_simnet() -> Any:
    # No skip: a sim backend that fails to import must fail the suite, not hide it.
    import simnet

    return simnet


# --------------------------------------------------------------------------------------------
# Shared helpers (backend-agnostic)
# --------------------------------------------------------------------------------------------


def errname(e: BaseException) -> str:
    """An OSError as its errno name; an errno-less one (socket.timeout) as its class name."""
    code = getattr(e, "errno", None)
    if code is None:
        return type(e).__name__
    return errno.errorcode.get(code, str(code))


def outcome(f: Callable[..., Any], *args: Any) -> tuple[str, Any]:
    """A normalised, comparable result: ('ok', value) or ('err', 'ECONNRESET')."""
    try:
        return ("ok", f(*args))
    except OSError as e:
        return ("err", errname(e))


def raised(f: Callable[..., Any], *args: Any) -> tuple[str, Any]:
    """For misuse: ('ok', value) or (exception class name, errno name or None).

    Unlike ``outcome`` this also catches TypeError/ValueError/OverflowError, so the scenario can
    compare exactly what Python raises on a real socket with what the model raises.
    """
    try:
        return ("ok", f(*args))
    except Exception as e:  # noqa: BLE001 - the whole point is to record what was raised
        code = getattr(e, "errno", None)
        return (type(e).__name__, None if code is None else errno.errorcode.get(code, code))


def rst_close(s: Any) -> None:
    """Abortive close: SO_LINGER {1, 0} makes close() send a RST (tcp_disconnect)."""
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    s.close()


def listener(backend: Backend, backlog: int = 8, rcv: int | None = None,
             snd: int | None = None, reuse: bool | None = None) -> Any:
    L = backend.socket()
    if reuse is not None:
        L.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, int(reuse))
    if rcv:
        L.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcv)
    if snd:
        L.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, snd)
    L.bind((backend.addr, 0))
    L.listen(backlog)
    return L


def pair(backend: Backend, snd: int | None = None, rcv: int | None = None,
         nodelay: bool = True) -> tuple[Any, Any]:
    """A connected (client, accepted) pair, both non-blocking, TCP_NODELAY as asked.

    `snd` sets the client's SO_SNDBUF; `rcv` the listener's SO_RCVBUF, which the accepted socket
    inherits (LINUX.md §2), before the connection exists -- as in LINUX.md's helper.
    """
    L = listener(backend, 8, rcv=rcv)
    c = backend.socket()
    if snd:
        c.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, snd)
    c.connect(L.getsockname())
    a, _ = L.accept()
    L.close()
    for s in (c, a):
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, int(nodelay))
        s.setblocking(False)
    return c, a


def closed_port(backend: Backend) -> int:
    """A loopback port with nothing bound to it (bound, read, closed)."""
    s = backend.socket()
    s.bind((backend.addr, 0))
    port = s.getsockname()[1]
    s.close()
    return port


_PERIOD = 251  # prime, so a misplaced or repeated chunk shows up as a mismatch
_PATTERN = bytes(range(_PERIOD)) * (((1 << 20) // _PERIOD) + 2)


def pattern(offset: int, n: int) -> bytes:
    """Bytes [offset, offset+n) of an endless stream 0,1,..,250,0,1,..: lets a scenario check
    both that every byte arrived and that they arrived in order."""
    out = bytearray()
    while n > 0:
        start = offset % _PERIOD
        k = min(n, len(_PATTERN) - start)
        out += _PATTERN[start:start + k]
        offset += k
        n -= k
    return bytes(out)


def fill(sock: Any, chunk: int = 1024, offset: int = 0, limit: int = 64 << 20,
         max_calls: int = 200_000) -> tuple[int, tuple[str, Any]]:
    """send() pattern bytes until it fails (EAGAIN expected), bounded by bytes and calls.

    Returns (bytes accepted, the outcome that stopped the loop).
    """
    total = 0
    last: tuple[str, Any] = ("ok", None)
    for _ in range(max_calls):
        if total >= limit:
            break
        last = outcome(sock.send, pattern(offset + total, chunk))
        if last[0] != "ok":
            break
        total += last[1]
    return total, last


def fill_settled(sock: Any, backend: Backend, chunk: int = 1024, offset: int = 0,
                 pause: float = 0.05, rounds: int = 12) -> int:
    """fill(), then refill after pauses until a whole round makes no progress (LINUX.md §2:
    more room opens 50-400 ms after the first EAGAIN). Returns the bytes accepted."""
    total = 0
    for i in range(rounds):
        n, last = fill(sock, chunk, offset + total)
        assert last == ("err", "EAGAIN"), last
        total += n
        if n == 0 and i > 0:
            break
        backend.settle(pause)
    return total


def drain(sock: Any, n: int, backend: Backend, timeout: float = 5.0, bufsize: int = 65536,
          max_calls: int = 100_000) -> bytes:
    """recv() until `n` bytes arrived, EOF, or an error; bounded by calls and (virtual) time.

    Between EAGAINs it lets time pass with ``backend.settle`` so that timer-driven delivery
    (delayed ACKs, window updates) can happen on both backends.
    """
    got = bytearray()
    deadline = backend.monotonic() + timeout
    for _ in range(max_calls):
        if len(got) >= n or backend.monotonic() > deadline:
            break
        r = outcome(sock.recv, min(bufsize, n - len(got)))
        if r == ("err", "EAGAIN"):
            backend.settle(0.002)
            continue
        if r[0] != "ok" or r[1] == b"":
            break
        got += r[1]
    return bytes(got)


def drain_all(sock: Any, backend: Backend, quiet: float = 0.05, timeout: float = 5.0,
              max_calls: int = 100_000) -> bytes:
    """recv() until nothing more arrives for `quiet` seconds (or EOF/error); bounded."""
    got = bytearray()
    deadline = backend.monotonic() + timeout
    idle_since = None
    for _ in range(max_calls):
        now = backend.monotonic()
        if now > deadline:
            break
        r = outcome(sock.recv, 65536)
        if r == ("err", "EAGAIN"):
            if idle_since is None:
                idle_since = now
            elif now - idle_since >= quiet:
                break
            backend.settle(0.005)
            continue
        if r[0] != "ok" or r[1] == b"":
            break
        idle_since = None
        got += r[1]
    return bytes(got)


def getbuf(s: Any) -> tuple[int, int]:
    """(SO_RCVBUF, SO_SNDBUF) as getsockopt reads them back."""
    return (s.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF),
            s.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF))


def so_error(s: Any) -> int:
    return s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)


def events(ep: Any, timeout: float = 0) -> dict[int, int]:
    """One epoll_wait as {fd: mask} (a dict so the order of ready fds does not matter)."""
    return dict(ep.poll(timeout))


def masks(ev: int) -> str:
    """A readable mask for assertion messages: 'IN|OUT|RDHUP'."""
    import select

    names = [(select.EPOLLIN, "IN"), (select.EPOLLPRI, "PRI"), (select.EPOLLOUT, "OUT"),
             (select.EPOLLERR, "ERR"), (select.EPOLLHUP, "HUP"), (select.EPOLLRDHUP, "RDHUP")]
    return "|".join(n for bit, n in names if ev & bit) or "0"


def is_connected(s: Any) -> bool:
    """Established from the socket's own point of view (getpeername works)."""
    return outcome(s.getpeername)[0] == "ok"
