"""A TCP socket as Linux implements it, as far as the socket API can observe it.

One class holds both halves that Linux keeps apart: the `struct socket` a process holds (fd,
timeout, the SS_CONNECTING/SS_CONNECTED state of inet_stream_connect) and the `struct tcp_sock`
the stack runs (TCP state, sequence numbers, queues, timers). An orphan -- a socket whose fd was
closed while TCP still has work (FIN_WAIT, LAST_ACK, TIME_WAIT) -- is the same object with no fd.
dup() adds a DupSocket: another fd for the same open file, which only checks its own fd and
then runs this class's method bodies; the file is closed (tcp_close) when its last fd goes.

Simplifications, each also listed in docs/fidelity.md:
* Buffers count payload bytes, not skb truesize. The send buffer holds SO_SNDBUF bytes (Linux
  holds about that, LINUX.md §2); the receive buffer holds 3/4 of SO_RCVBUF (Linux: 60-100 %).
* No window scaling option, timestamps or SACK; sequence numbers do not wrap.
* Loss recovery is RTO (exponential backoff) with go-back-N retransmission, plus fast
  retransmit of the first unacknowledged segment on the third duplicate ACK and, until the
  recovery point is acknowledged, on each partial ACK (NewReno, RFC 6582) -- without congestion
  control: no cwnd, the peer's window alone limits what is in flight. An RTO sets the recovery
  point as well (Linux's TCP_CA_Loss, high_seq = snd_nxt; RFC 6582 §3.2 step 4): until an ACK
  passes it, the duplicate ACKs that go-back-N draws for segments the receiver already holds
  start no fast retransmit, and partial ACKs add nothing to go-back-N. Without SACK either
  recovery ends only when an ACK covers more than its point, as in Linux. No F-RTO and no undo
  of a spurious RTO (Linux's tcp_frto, tcp_try_undo_loss). Out-of-order segments wait in an
  out-of-order queue (as Linux's rbtree) and are answered with an immediate duplicate ACK; a
  filled hole is ACKed at once. No SACK, so the sender learns only of the first hole.
"""

from __future__ import annotations

import bisect
import collections
import errno
import functools
import operator
import socket as _socket
import struct
from collections.abc import Iterable, Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Callable, Concatenate, Generator, ParamSpec, TypeVar

from simnet.kernel.epoll import EpItem
from simnet.kernel.errors import os_error, raise_errno, timeout_error
from simnet.kernel.network import Timer
from simnet.kernel.segment import ACK, FIN, PSH, RST, SYN, Address, Segment

if TYPE_CHECKING:
    from simnet.kernel.host import Host

# TCP states (include/net/tcp_states.h), spelled the way `ss` prints them.
CLOSED = "UNCONN"
LISTEN = "LISTEN"
SYN_SENT = "SYN-SENT"
SYN_RECV = "SYN-RECV"
ESTABLISHED = "ESTAB"
FIN_WAIT1 = "FIN-WAIT-1"
FIN_WAIT2 = "FIN-WAIT-2"
CLOSE_WAIT = "CLOSE-WAIT"
CLOSING = "CLOSING"
LAST_ACK = "LAST-ACK"
TIME_WAIT = "TIME-WAIT"

# sk_shutdown bits (include/net/sock.h)
RCV_SHUTDOWN = 1
SEND_SHUTDOWN = 2
SHUTDOWN_MASK = 3

# struct socket's state, which drives connect()'s return values (net/ipv4/af_inet.c).
SS_UNCONNECTED = 0
SS_CONNECTING = 1
SS_CONNECTED = 2

# Timers and constants (include/net/tcp.h), in ns.
MS = 1_000_000
TCP_TIMEOUT_INIT = 1000 * MS  # initial RTO, and the SYN retransmit base: 1, 3, 7, 15, 31, 63 s
TCP_RTO_MIN = 200 * MS
TCP_RTO_MAX = 120_000 * MS
TCP_DELACK_MIN = 40 * MS  # the delayed ACK LINUX.md measured at ~44 ms
TCP_TIMEWAIT_LEN = 60_000 * MS
TCP_MAX_QUICKACKS = 16
TCP_RETRIES2 = 15


def _model_timeout(boundary: int, rto_base: int) -> int:
    """tcp_model_timeout (net/ipv4/tcp_timer.c): how long `boundary` retransmissions take if the
    RTO starts at `rto_base` and doubles up to TCP_RTO_MAX. Linux turns tcp_retries2 into this
    time budget and gives up when it has passed since the first retransmission's original send
    (retransmits_timed_out), whatever the RTO really was: 924.6 s for 15 from 200 ms."""
    threshold = (TCP_RTO_MAX // rto_base).bit_length() - 1  # ilog2
    if boundary <= threshold:
        return ((2 << boundary) - 1) * rto_base
    return ((2 << threshold) - 1) * rto_base + (boundary - threshold) * TCP_RTO_MAX


TCP_RETRIES2_TIMEOUT = _model_timeout(TCP_RETRIES2, TCP_RTO_MIN)


TCP_MSS_DEFAULT = 536
_NO_REQUESTS: Mapping[Address, RequestSock] = MappingProxyType({})
_NO_SEGMENTS: tuple[tuple[int, bytes, int], ...] = ()
MAX_SYN_WINDOW = 65535  # windows in SYN segments are never scaled

EPOLLIN = 0x001
EPOLLOUT = 0x004
EPOLLERR = 0x008
EPOLLHUP = 0x010
EPOLLRDNORM = 0x040
EPOLLWRNORM = 0x100
EPOLLRDHUP = 0x2000
READABLE = EPOLLIN | EPOLLRDNORM
WRITABLE = EPOLLOUT | EPOLLWRNORM
# Wake-up keys: sock_def_readable, sk_stream_write_space, sk_error_report; 0 = state change.
KEY_IN = EPOLLIN | 0x002 | EPOLLRDNORM | 0x080
KEY_OUT = EPOLLOUT | EPOLLWRNORM | 0x200
KEY_ERR = EPOLLERR
KEY_ALL = 0

_ERR_BY_STATE = {SYN_SENT: errno.ECONNREFUSED, CLOSE_WAIT: errno.EPIPE}
# tcp_need_reset(): states in which an abortive close sends a RST.
_NEED_RESET = (ESTABLISHED, CLOSE_WAIT, FIN_WAIT1, FIN_WAIT2, SYN_RECV)
# socket.MSG_* are IntFlag members: `flags & socket.MSG_PEEK` goes through enum's Python-level
# __and__ (~1.5 us), on every recv. Plain ints test the same bits.
_MSG_PEEK = int(_socket.MSG_PEEK)
_MSG_DONTWAIT = int(_socket.MSG_DONTWAIT)


def _normalise_host(host: str) -> str:
    if host in ("", "0.0.0.0"):
        return "0.0.0.0"
    if host == "localhost":
        return "127.0.0.1"
    return host


def _check_address(address: Any, what: str) -> tuple[str, int]:
    if not isinstance(address, tuple):
        raise TypeError(f"AF_INET address must be tuple, not {type(address).__name__}")
    if len(address) != 2:
        raise TypeError(f"AF_INET address must be a pair (host, port)")
    host, port = address
    if not isinstance(host, str):
        raise TypeError(f"str, bytes or bytearray expected, not {type(host).__name__}")
    if not isinstance(port, int):
        raise TypeError(f"'{type(port).__name__}' object cannot be interpreted as an integer")
    if not 0 <= port <= 65535:
        raise OverflowError(f"{what}(): port must be 0-65535.")
    return _normalise_host(host), port


_P = ParamSpec("_P")
_R = TypeVar("_R")


def _syscall(body: Callable[Concatenate[TcpSocket, _P], _R]) -> Callable[Concatenate[TcpSocket, _P], _R]:
    """A socket-API method: the fd is looked up first (fdget: EBADF once this fd is closed), then
    the body runs on the open file. A DupSocket runs the same bodies for its own fd through
    `__wrapped__`, so the check is the only part that belongs to the fd."""

    def checked(self: TcpSocket, /, *args: _P.args, **kwargs: _P.kwargs) -> _R:
        if self.closed_fd:
            raise_errno(errno.EBADF)
        return body(self, *args, **kwargs)

    functools.update_wrapper(checked, body)  # its name, its docstring, and __wrapped__
    return checked


class RequestSock:
    """A half-open connection on a listener (SYN received, SYN-ACK sent): struct request_sock."""

    __slots__ = ("listener", "local", "remote", "iss", "irs", "window", "peer_window", "retries", "timer", "acked")

    def __init__(
        self, listener: TcpSocket, local: Address, remote: Address, iss: int, irs: int, window: int, peer_window: int
    ) -> None:
        self.peer_window = peer_window
        self.listener = listener
        self.local = local
        self.remote = remote
        self.iss = iss
        self.irs = irs
        self.window = window
        self.retries = 0
        self.timer: Timer | None = None
        # inet_rsk(req)->acked: the final ACK came while the accept queue was full (LINUX.md §1).
        self.acked = False


class TcpSocket:
    """A simulated TCP socket with the methods of Python's `socket.socket`."""

    # Slots, not a __dict__: a 10,000-connection simulation holds 20,000 of these, and a
    # 70-key instance dict was most of their memory (docs/benchmarks.md, P6).
    __slots__ = (
        "host", "net", "fd", "conn_id", "host_conn_no", "family", "type", "proto", "state",
        "ss_state", "local", "remote", "port_held", "user_bound", "orphan", "closed_fd", "refs",
        "file_id", "timeout_ns", "reuseaddr", "nodelay", "linger", "rcvbuf", "sndbuf",
        "rcvbuf_locked", "sndbuf_locked", "err", "shutdown_flags", "done", "iss", "snd_una",
        "snd_nxt", "snd_max", "snd_wnd", "max_window", "sndq", "fin_pending", "fin_sent",
        "fin_seq", "nospace", "mss", "dupacks", "recover", "loss_recovery", "irs", "rcv_nxt",
        "rcvq", "ooo", "rcv_wnd_edge", "rcv_wup", "rcv_mss", "quickacks", "last_data_time",
        "rto_ns", "srtt", "rttvar", "rtt_seq", "rtt_start", "retries", "retrans_stamp",
        "rto_timer", "delack_timer", "_rto_entry", "_delack_entry", "persist_timer",
        "persist_backoff", "state_timer", "backlog", "accept_queue", "syn_queue", "parent",
        "watchers", "waiters", "_co",
    )

    def __init__(self, host: Host) -> None:
        net = host.net
        sysctl = net.sysctl
        self.host = host
        self.net = net
        self.fd = -1
        self.conn_id = 0
        self.host_conn_no = 0  # the how-manyth connection of its host (faults.InjectRst)
        self.family = _socket.AF_INET
        self.type = _socket.SOCK_STREAM
        self.proto = 0
        self.state = CLOSED
        self.ss_state = SS_UNCONNECTED
        self.local: Address | None = None
        self.remote: Address | None = None
        self.port_held = False
        self.user_bound = False  # SOCK_BINDPORT_LOCK: the port survives tcp_done
        self.orphan = False
        self.closed_fd = False  # this object's fd is closed (other fds may still hold the file)
        self.refs = 0  # fds referring to the open file: this object's and its dup()s' (f_count)
        self.file_id = net.new_file_id()  # with an fd, the key of an epoll registration
        # options
        self.timeout_ns: int | None = None  # None: blocking; 0: non-blocking; >0: settimeout
        self.reuseaddr = False
        self.nodelay = False
        self.linger: tuple[int, int] = (0, 0)
        self.rcvbuf = sysctl.tcp_rmem[1]
        self.sndbuf = sysctl.tcp_wmem[1]
        self.rcvbuf_locked = False
        self.sndbuf_locked = False
        # errors and shutdown
        self.err = 0
        self.shutdown_flags = 0
        self.done = False  # SOCK_DONE: a FIN was received
        # send side
        self.iss = 0
        self.snd_una = 0
        self.snd_nxt = 0
        self.snd_max = 0
        self.snd_wnd = 0
        self.max_window = 0
        self.sndq = bytearray()
        self.fin_pending = False
        self.fin_sent = False
        self.fin_seq = -1
        self.nospace = False
        self.mss = TCP_MSS_DEFAULT
        self.dupacks = 0
        # The recovery point (RFC 6582's `recover`, Linux's tp->high_seq), an exclusive end:
        # snd_max when fast recovery or an RTO began; -1 when not recovering (TCP_CA_Open).
        self.recover = -1
        # The recovery under way began with an RTO (TCP_CA_Loss), not with three duplicate ACKs
        # (TCP_CA_Recovery): go-back-N resends every hole already, so a partial ACK adds nothing.
        self.loss_recovery = False
        # receive side
        self.irs = 0
        self.rcv_nxt = 0
        self.rcvq = bytearray()
        # Segments beyond a hole, sorted by seq: (seq, data, fin). Empty unless links misbehave.
        # Only a socket that has seen a hole gets a list: faults are rare, sockets are many.
        self.ooo: list[tuple[int, bytes, int]] = _NO_SEGMENTS  # type: ignore[assignment]
        self.rcv_wnd_edge = 0  # right edge of the window we last advertised
        self.rcv_wup = 0  # rcv_nxt when we last sent an ACK
        self.rcv_mss = TCP_MSS_DEFAULT
        self.quickacks = TCP_MAX_QUICKACKS
        self.last_data_time = -1
        # timers
        self.rto_ns = TCP_TIMEOUT_INIT
        self.srtt = 0
        self.rttvar = 0
        self.rtt_seq = -1
        self.rtt_start = 0
        self.retries = 0
        self.retrans_stamp = 0  # when the head segment went out, once it has been retransmitted
        self.rto_timer: Timer | None = None
        self.delack_timer: Timer | None = None
        # The last Timer objects used for those two, running or not, for Network.rearm to reuse.
        self._rto_entry: Timer | None = None
        self._delack_entry: Timer | None = None
        self.persist_timer: Timer | None = None
        self.persist_backoff = 0
        self.state_timer: Timer | None = None  # TIME_WAIT / orphaned FIN_WAIT2
        # listener
        self.backlog = 0
        # Only a listener gets a deque (listen()); for every other socket an empty tuple, which
        # answers len() and truth tests alike at no cost (a deque is ~600 bytes).
        self.accept_queue: collections.deque[TcpSocket] = ()  # type: ignore[assignment]
        # Only a listener gets a dict (listen()); every other socket shares a read-only empty
        # one, so a write where none belongs raises instead of passing silently.
        self.syn_queue: dict[Address, RequestSock] = _NO_REQUESTS  # type: ignore[assignment]
        self.parent: TcpSocket | None = None
        # who to wake
        # Empty tuples until something watches or waits: most sockets of a big simulation have
        # one watcher (the server's epoll) or none, and no blocked caller (docs/benchmarks.md, P6).
        self.watchers: list[EpItem] = ()  # type: ignore[assignment]
        self.waiters: list[Any] = ()  # type: ignore[assignment]
        self._co: SocketCoroutines | None = None

    @property
    def co(self) -> SocketCoroutines:
        """The blocking calls as coroutines for simulated processes (made on first use: most
        sockets, such as accepted ones in a server driven by epoll, never need them)."""
        co = self._co
        if co is None:
            co = self._co = SocketCoroutines(self)
        return co

    def __repr__(self) -> str:
        local = f"{self.local[0]}:{self.local[1]}" if self.local else "-"
        remote = f" -> {self.remote[0]}:{self.remote[1]}" if self.remote else ""
        return f"<simnet.socket fd={self.fd} {self.state} {local}{remote}>"

    def __enter__(self) -> TcpSocket:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # ==========================================================================================
    # Readiness and wake-ups
    # ==========================================================================================

    @property
    def is_listening(self) -> bool:
        return self.state == LISTEN

    def writable(self) -> bool:
        # __sk_stream_is_writeable: sk_stream_wspace >= sk_stream_min_wspace, i.e. queued <= 2/3.
        queued = len(self.sndq)
        return self.sndbuf - queued >= queued >> 1

    def poll_mask(self) -> int:
        """tcp_poll (net/ipv4/tcp.c), the mask epoll intersects with the registered events."""
        state = self.state
        if state == LISTEN:
            return READABLE if self.accept_queue else 0
        mask = 0
        shut = self.shutdown_flags
        if shut == SHUTDOWN_MASK or state == CLOSED:
            mask |= EPOLLHUP
        if shut & RCV_SHUTDOWN:
            mask |= READABLE | EPOLLRDHUP
        if state != SYN_SENT and state != SYN_RECV:
            if self.rcvq:
                mask |= READABLE
            if shut & SEND_SHUTDOWN:
                mask |= WRITABLE
            elif self.writable():
                mask |= WRITABLE
            else:
                # tcp_poll sets SOCK_NOSPACE so that the next ACK freeing space wakes EPOLLOUT.
                self.nospace = True
        if self.err:
            mask |= EPOLLERR
        return mask

    def wake(self, key: int) -> None:
        """Call the socket's wait queue: epoll items filter by key; blocked calls re-check."""
        for item in self.watchers:
            item.wake(key)
        if self.waiters:
            waiters, self.waiters = self.waiters, ()  # type: ignore[assignment]
            for event in waiters:
                if not event.triggered:
                    event.succeed()

    def _check_write_space(self) -> None:
        # tcp_check_space -> tcp_new_space -> sk_stream_write_space: only if someone ran out of
        # space (SOCK_NOSPACE) and only once the 2/3 threshold holds again.
        if self.nospace and self.writable():
            self.nospace = False
            self.wake(KEY_OUT)

    # ==========================================================================================
    # The socket API
    # ==========================================================================================

    def fileno(self) -> int:
        return self.fd

    def _check_fd(self) -> None:
        if self.closed_fd:
            raise_errno(errno.EBADF)

    def _install_fd(self) -> int:
        """The socket's first fd (socket() or accept()): the lowest free one (alloc_fd)."""
        self.fd = self.host.allocate_fd(self)
        self.refs = 1
        return self.fd

    @_syscall
    def dup(self) -> DupSocket:
        """dup(2): a new fd for the same open file. The socket lives until its last fd is
        closed, and epoll keys its interest by (fd, file), so a registration made through one
        fd survives that fd's close while another fd holds the file (epoll(7) Q6, LINUX.md §4).

        The blocking mode and timeout stay with the file, as O_NONBLOCK does in Linux; CPython
        keeps the timeout per object, which differs only when dups get different timeouts.
        """
        self.refs += 1
        return DupSocket(self, self.host.allocate_fd(self))

    @_syscall
    def setblocking(self, flag: bool) -> None:
        self.timeout_ns = None if flag else 0

    def getblocking(self) -> bool:
        return self.timeout_ns != 0

    @_syscall
    def settimeout(self, value: float | None) -> None:
        if value is None:
            self.timeout_ns = None
            return
        if value < 0:
            raise ValueError("Timeout value out of range")
        self.timeout_ns = int(round(value * 1_000_000_000))

    def gettimeout(self) -> float | None:
        return None if self.timeout_ns is None else self.timeout_ns / 1_000_000_000

    # -- bind / listen ------------------------------------------------------------------------

    @_syscall
    def bind(self, address: tuple[str, int]) -> None:
        ip, port = _check_address(address, "bind")
        try:
            if self.port_held or self.state != CLOSED:
                raise_errno(errno.EINVAL)
            if not self.host.is_local_address(ip):
                raise_errno(errno.EADDRNOTAVAIL)
            if port == 0:
                port = self.host.ephemeral_port()
            elif self.host.bind_conflict(self, ip, port):
                raise_errno(errno.EADDRINUSE)
            self.local = (ip, port)
            self.user_bound = True
            self._hold_port()
        finally:
            self.net.drain()

    def _hold_port(self) -> None:
        assert self.local is not None
        if not self.port_held:
            self.host.take_port(self, self.local[1])
            self.port_held = True

    def _release_port(self) -> None:
        if self.port_held and self.local is not None:
            self.host.free_port(self, self.local[1])
            self.port_held = False

    @_syscall
    def listen(self, backlog: int = min(_socket.SOMAXCONN, 128)) -> None:
        if not isinstance(backlog, int):
            raise TypeError(f"'{type(backlog).__name__}' object cannot be interpreted as an integer")
        if not -(2**31) <= backlog < 2**31:
            raise OverflowError("Python int too large to convert to C int")
        try:
            # Python turns a negative backlog into 0; __sys_listen caps it at somaxconn.
            backlog = min(max(backlog, 0), self.net.sysctl.somaxconn)
            if self.state == LISTEN:
                self.backlog = backlog
                return
            if self.state != CLOSED or self.ss_state != SS_UNCONNECTED:
                raise_errno(errno.EINVAL)
            if self.local is None:
                self.local = ("0.0.0.0", self.host.ephemeral_port())
                self._hold_port()
            elif self.host.bind_conflict(self, self.local[0], self.local[1], listening=True):
                raise_errno(errno.EADDRINUSE)
            self.backlog = backlog
            self.accept_queue = collections.deque()
            self.syn_queue = {}
            self.state = LISTEN
            self.host.listeners[self.local] = self
        finally:
            self.net.drain()

    # -- accept -------------------------------------------------------------------------------

    def _accept_now(self) -> tuple[TcpSocket, Address]:
        if self.state != LISTEN:
            raise_errno(errno.EINVAL)
        if not self.accept_queue:
            raise_errno(errno.EAGAIN)
        child = self.accept_queue.popleft()
        if self.net.queue_watch is not None:
            self.net.queue_watch(self)  # the accept queue shrank (Network.watch_queues)
        child.parent = None
        # CPython's accept() builds the new socket object with the listener's family, type and
        # proto (socket.accept: `socket(self.family, self.type, self.proto, fileno=fd)`), so
        # `.proto` is whatever the listener was created with, 0 or IPPROTO_TCP, as on Linux.
        child.proto = self.proto
        child._install_fd()
        # accept() without SOCK_NONBLOCK returns a blocking socket (accept(2); Python does too).
        child.timeout_ns = None
        assert child.remote is not None
        return child, child.remote

    @_syscall
    def accept(self) -> tuple[TcpSocket, Address]:
        return self._blocking_call(self._accept_now, KEY_IN, "accept")

    # -- connect ------------------------------------------------------------------------------

    def _connect_step(self, address: Address, first: bool) -> int:
        """__inet_stream_connect's switch on sock->state; returns 0 or an errno."""
        ss = self.ss_state
        if ss == SS_CONNECTED:
            return errno.EISCONN
        if ss == SS_CONNECTING:
            if self.state in (SYN_SENT, SYN_RECV):
                return errno.EALREADY
            return self._connect_settle()
        if self.state != CLOSED:
            return errno.EISCONN
        self._start_connect(address)
        return errno.EINPROGRESS

    def _connect_settle(self) -> int:
        """After the wait: CLOSE means failure (the pending error, else ECONNABORTED)."""
        if self.state == CLOSED:
            code = self._sock_error() or errno.ECONNABORTED
            self.ss_state = SS_UNCONNECTED
            return code
        self.ss_state = SS_CONNECTED
        return 0

    def _start_connect(self, address: Address) -> None:
        ip, port = address
        if ip == "0.0.0.0":
            ip = "127.0.0.1"  # Linux treats INADDR_ANY as the local host
        if self.local is None or self.local[0] == "0.0.0.0":
            src_ip = "127.0.0.1" if ip.startswith("127.") else self.host.ip
            port_local = self.local[1] if self.local else self.host.ephemeral_port()
            self.local = (src_ip, port_local)
        self._hold_port()
        self.remote = (ip, port)
        self.conn_id = self.net.new_conn_id()
        self.host_conn_no = self.host.next_conn_no()
        self.host.connections[(self.local, self.remote)] = self
        self.iss = self.net.isn(self.local, self.remote)
        self.snd_una = self.snd_nxt = self.iss
        self.snd_max = self.iss + 1
        self.mss = self._path_mss()
        self.shutdown_flags = 0
        self.done = False
        self.state = SYN_SENT
        self.ss_state = SS_CONNECTING
        self.retries = 0
        self.rto_ns = TCP_TIMEOUT_INIT
        self._send_syn()

    def _syn_window(self, mss: int) -> int:
        """tcp_select_initial_window: the free space, at most 65535 (a SYN's window is never
        scaled), rounded down to a multiple of the MSS. So Linux's SYN on Ethernet offers 64240
        (44 x 1460) and its SYN-ACK 65160 (45 x 1448, timestamps counted); on loopback 65495 and
        65483 -- half of which is the 32741-byte segment of LINUX.md §2 and the TCP_MAXSEG its
        machine line reports. (Linux rounds before capping at 65535, from a space of about half
        the buffer; the model's space is 3/4 of it, and capping first lands on Linux's numbers.)"""
        window = min(self._rcv_capacity(), MAX_SYN_WINDOW)
        if window > mss:
            window -= window % mss
        return window

    def _path_mss(self) -> int:
        assert self.remote is not None
        from simnet.kernel.network import mss_for_mtu

        return mss_for_mtu(self.net.path(self.host.ip, self.remote[0]).mtu)

    def _send_syn(self) -> None:
        if self.retries == 0:
            self.rtt_start = self.net.env.now
        # The connector quantizes by its advertised MSS without the timestamp option, which it
        # cannot count on yet (tcp_connect_init: ts_recent_stamp is 0).
        window = self._syn_window(self.mss + 12)
        self._transmit(Segment(self.local, self.remote, SYN, self.iss, 0, window))  # type: ignore[arg-type]
        linear = self.net.sysctl.tcp_syn_linear_timeouts
        backoff = self.retries - linear if self.retries > linear else 0
        self._arm_rto(self.rto_ns << backoff)

    @_syscall
    def connect(self, address: tuple[str, int]) -> None:
        code = self._connect(address, "connect")
        if code:
            raise os_error(code)

    def connect_ex(self, address: tuple[str, int]) -> int:
        if self.closed_fd:
            return errno.EBADF  # CPython's connect_ex returns the errno of the failed syscall
        return self._connect(address, "connect_ex")

    def _connect(self, address: Any, what: str) -> int:
        address = _check_address(address, what)
        try:
            code = self._connect_step(address, True)
        finally:
            self.net.drain()
        if code not in (errno.EINPROGRESS, errno.EALREADY) or self.timeout_ns == 0:
            return code
        return self.net.drive(self._connect_wait_gen(address, code), what)

    def _connect_wait_gen(self, address: Address, code: int) -> Generator[Any, Any, int]:
        if self.timeout_ns is None:
            # A blocking connect sleeps in inet_wait_for_connect until the handshake ends.
            while self.state in (SYN_SENT, SYN_RECV):
                yield self._wait_event()
            return self._connect_settle()
        # CPython's connect with a timeout: poll for writability, then read SO_ERROR.
        deadline = self.net.env.now + self.timeout_ns
        while self.state in (SYN_SENT, SYN_RECV):
            if self.net.env.now >= deadline:
                raise timeout_error()
            yield self._wait_event(deadline)
        code = self._sock_error()
        if code:
            self.ss_state = SS_UNCONNECTED
            return code
        self.ss_state = SS_CONNECTED
        return 0

    # -- send ---------------------------------------------------------------------------------

    def _send_now(self, data: bytes) -> int:
        """tcp_sendmsg_locked for a non-blocking caller: queue what fits, else EAGAIN."""
        state = self.state
        if state != ESTABLISHED and state != CLOSE_WAIT:
            # sk_stream_wait_connect: a pending error first, EPIPE unless still connecting.
            if self.err:
                raise_errno(self._sock_error())
            if state != SYN_SENT and state != SYN_RECV:
                raise_errno(errno.EPIPE)
            raise_errno(errno.EAGAIN)
        if self.err or self.shutdown_flags & SEND_SHUTDOWN:
            # sk_stream_error: a pending sk_err replaces EPIPE (and is consumed).
            raise_errno(self._sock_error() or errno.EPIPE)
        space = self.sndbuf - len(self.sndq)
        if space <= 0:
            self.nospace = True
            raise_errno(errno.EAGAIN)
        if not data:
            return 0
        n = len(data) if len(data) <= space else space
        short_io = self.host.short_io
        if short_io is not None and n > 1 and short_io.send:
            # Injected fault: accept fewer bytes than fit (at least one). SOCK_NOSPACE is set as
            # for a real partial write, so the next ACK wakes EPOLLOUT for an edge-triggered
            # caller waiting on it.
            rng = self.net.fault_rng
            if rng.random() < short_io.send:  # type: ignore[union-attr]
                n = rng.randint(1, n - 1)  # type: ignore[union-attr]
                self.net.counters["short_sends"] += 1
        if n < len(data):
            self.nospace = True
            self.net.counters["partial_sends"] += 1
        self.sndq += data[:n] if n < len(data) else data
        if self.net.queue_watch is not None:
            self.net.queue_watch(self)
        self._output()
        return n

    @_syscall
    def send(self, data: bytes, flags: int = 0) -> int:
        data = _as_bytes(data)
        if self.timeout_ns is None and not flags & _MSG_DONTWAIT:
            # A blocking send queues everything (sleeping for memory), unless an error stops it.
            return self._blocking_send(data, "send")
        return self._blocking_call(lambda: self._send_now(data), KEY_OUT, "send", flags)

    @_syscall
    def sendall(self, data: bytes, flags: int = 0) -> None:
        data = _as_bytes(data)
        if self.timeout_ns is None:
            self._blocking_send(data, "sendall")
            return
        if self.timeout_ns == 0:
            # CPython's sendall on a non-blocking socket: send until EAGAIN, which it raises.
            view = memoryview(data)
            while view:
                n = self._blocking_call(lambda: self._send_now(bytes(view)), KEY_OUT, "sendall")
                view = view[n:]
            return
        self.net.drive(self._sendall_timeout_gen(data), "sendall")

    def _blocking_send(self, data: bytes, what: str) -> int:
        try:
            sent = self._send_some(data, 0)
            if sent == len(data):
                return sent
        finally:
            self.net.drain()
        return self.net.drive(self._send_all_gen(data, sent), what)

    def _send_some(self, data: bytes, sent: int) -> int:
        try:
            return sent + self._send_now(data[sent:] if sent else data)
        except BlockingIOError:
            return sent
        except OSError:
            if sent:
                return sent  # the kernel returns the partial count; the error comes next time
            raise

    def _send_all_gen(self, data: bytes, sent: int) -> Generator[Any, Any, int]:
        while sent < len(data):
            yield self._wait_event()
            sent = self._send_some(data, sent)
            self.net.drain()
        return sent

    def _sendall_timeout_gen(self, data: bytes) -> Generator[Any, Any, None]:
        # CPython: each send waits up to the timeout for writability; the deadline is global.
        deadline = self.net.env.now + (self.timeout_ns or 0)
        sent = 0
        while sent < len(data):
            if self.poll_mask() & (EPOLLOUT | EPOLLERR | EPOLLHUP):
                try:
                    sent += self._send_now(data[sent:])
                    continue
                except BlockingIOError:
                    pass
                finally:
                    self.net.drain()
            if self.net.env.now >= deadline:
                raise timeout_error()
            yield self._wait_event(deadline)

    # -- recv ---------------------------------------------------------------------------------

    def _recv_now(self, bufsize: int, flags: int = 0) -> bytes:
        """tcp_recvmsg: queued data first; then FIN, error, shutdown, ENOTCONN, EAGAIN."""
        if bufsize == 0:
            return b""
        rcvq = self.rcvq
        if rcvq:
            peek = flags & _MSG_PEEK
            short_io = self.host.short_io
            if short_io is not None and short_io.recv and not peek:
                # Injected fault: return a shorter prefix (at least one byte) of what is there.
                available = len(rcvq) if bufsize >= len(rcvq) else bufsize
                rng = self.net.fault_rng
                if available > 1 and rng.random() < short_io.recv:  # type: ignore[union-attr]
                    bufsize = rng.randint(1, available - 1)  # type: ignore[union-attr]
                    self.net.counters["short_recvs"] += 1
            if bufsize >= len(rcvq):
                data = bytes(rcvq)
                if not peek:
                    rcvq.clear()
            else:
                data = bytes(rcvq[:bufsize])
                if not peek:
                    del rcvq[:bufsize]
            if not peek:
                if self.net.queue_watch is not None:
                    self.net.queue_watch(self)
                self._cleanup_rbuf()
            return data
        if self.done:
            return b""
        if self.err:
            raise_errno(self._sock_error())
        if self.shutdown_flags & RCV_SHUTDOWN:
            return b""
        if self.state == CLOSED or self.state == LISTEN:
            raise_errno(errno.ENOTCONN)
        raise_errno(errno.EAGAIN)

    @_syscall
    def recv(self, bufsize: int, flags: int = 0) -> bytes:
        if not isinstance(bufsize, int):
            raise TypeError(f"'{type(bufsize).__name__}' object cannot be interpreted as an integer")
        if bufsize < 0:
            raise ValueError("negative buffersize in recv")
        return self._blocking_call(lambda: self._recv_now(bufsize, flags), KEY_IN, "recv", flags)

    def recv_into(self, buffer: bytearray | memoryview, nbytes: int = 0, flags: int = 0) -> int:
        data = self.recv(nbytes or len(buffer), flags)
        buffer[: len(data)] = data
        return len(data)

    # -- sendmsg / recvmsg --------------------------------------------------------------------

    @_syscall
    def sendmsg(self, buffers: Iterable[Any], ancdata: Iterable[Any] = (), flags: int = 0,
                address: Any = None) -> int:
        """tcp_sendmsg with an iovec: the buffers are gathered and sent as one send(), so the
        count is partial, EAGAIN and EPIPE come exactly as send()'s.

        Ancillary data on TCP (measured, LINUX.md-style, in tests/conformance/test_socket_api.py):
        tcp_sendmsg_locked runs sock_cmsg_send, which skips every level but SOL_SOCKET and, at
        SOL_SOCKET, *ignores* SCM_RIGHTS and SCM_CREDENTIALS ("semantically in SOL_UNIX"): an
        fd sent over TCP is silently dropped and the bytes go. An unknown SOL_SOCKET type fails
        the whole call with EINVAL -- after the connection-state checks, before EPIPE. A
        destination address is converted (so a malformed one is CPython's TypeError) and then
        ignored, as tcp_sendmsg ignores msg_name without MSG_FASTOPEN.
        """
        data = _gather(buffers, "sendmsg() argument 1 must be an iterable")
        bad_cmsg = _bad_cmsg(ancdata)
        if address is not None:
            _check_address(address, "sendmsg")

        def attempt() -> int:
            if bad_cmsg and (self.state == ESTABLISHED or self.state == CLOSE_WAIT):
                raise_errno(errno.EINVAL)  # sock_cmsg_send failed: tcp_sendmsg says EINVAL
            return self._send_now(data)  # else the state's own error first (EPIPE, EAGAIN, ...)

        if self.timeout_ns is None and not flags & _MSG_DONTWAIT and not bad_cmsg:
            return self._blocking_send(data, "sendmsg")
        return self._blocking_call(attempt, KEY_OUT, "sendmsg", flags)

    @_syscall
    def recvmsg(self, bufsize: int, ancbufsize: int = 0, flags: int = 0) -> tuple[bytes, list[Any], int, None]:
        """tcp_recvmsg through recvmsg(2): (data, ancdata, msg_flags, address). TCP fills in
        no address (msg_namelen 0: CPython gives None) and, with no IP_RECV* option modelled,
        no ancillary data; msg_flags is 0 (a stream is never MSG_TRUNC)."""
        bufsize = _index(bufsize)
        ancbufsize = _index(ancbufsize)
        if bufsize < 0 or ancbufsize < 0:
            raise ValueError("negative buffer size in recvmsg()")
        data = self._blocking_call(lambda: self._recv_now(bufsize, flags), KEY_IN, "recvmsg", flags)
        return data, [], 0, None

    @_syscall
    def recvmsg_into(self, buffers: Iterable[Any], ancbufsize: int = 0,
                     flags: int = 0) -> tuple[int, list[Any], int, None]:
        """recvmsg with an iovec: one receive of up to the buffers' total size, scattered."""
        views = [memoryview(b).cast("B") for b in buffers]
        ancbufsize = _index(ancbufsize)
        if ancbufsize < 0:
            raise ValueError("negative buffer size in recvmsg()")
        total = sum(len(v) for v in views)
        data = self._blocking_call(lambda: self._recv_now(total, flags), KEY_IN, "recvmsg_into", flags)
        offset = 0
        for view in views:
            if offset >= len(data):
                break
            chunk = data[offset : offset + len(view)]
            view[: len(chunk)] = chunk
            offset += len(chunk)
        return len(data), [], 0, None

    def _cleanup_rbuf(self) -> None:
        """tcp_cleanup_rbuf: after the reader drained data, advertise a window that grew a lot.

        Linux sends a window update when the window left from the last advertisement is at most
        half the buffer and the new window is at least twice that. This is what lets a sender
        stalled on a zero window go on without waiting for a probe.
        """
        state = self.state
        if state == CLOSED or state == LISTEN or state == SYN_SENT or self.shutdown_flags & RCV_SHUTDOWN:
            return
        left = self.rcv_wnd_edge - self.rcv_nxt
        if 2 * left <= self._rcv_capacity():
            new_window = self._select_window()
            if new_window and new_window >= 2 * left:
                self._send_ack()

    # -- shutdown and close -------------------------------------------------------------------

    @_syscall
    def shutdown(self, how: int) -> None:
        if how not in (_socket.SHUT_RD, _socket.SHUT_WR, _socket.SHUT_RDWR):
            raise_errno(errno.EINVAL)
        try:
            self._shutdown(how + 1)
        finally:
            self.net.drain()

    def _shutdown(self, flags: int) -> None:
        """inet_shutdown."""
        state = self.state
        code = 0
        if state == LISTEN:
            if flags & RCV_SHUTDOWN:
                self._stop_listening()
            self.wake(KEY_ALL)
            return
        if state == SYN_SENT:
            # tcp_disconnect of a connecting socket: back to CLOSE, no RST on the wire.
            self._done()
            self.ss_state = SS_UNCONNECTED
            self.wake(KEY_ALL)
            return
        if state == CLOSED:
            code = errno.ENOTCONN
        self.shutdown_flags |= flags
        if flags & SEND_SHUTDOWN and state in (ESTABLISHED, SYN_RECV, CLOSE_WAIT):
            self._close_state_and_fin()
        self.wake(KEY_ALL)
        if code:
            raise_errno(code)

    def _close_state_and_fin(self) -> None:
        # tcp_close_state: ESTABLISHED -> FIN_WAIT1, CLOSE_WAIT -> LAST_ACK; then tcp_send_fin.
        self.state = LAST_ACK if self.state == CLOSE_WAIT else FIN_WAIT1
        self.fin_pending = True
        self._output()

    def close(self) -> None:
        if self.closed_fd:
            return
        self.host.release_fd(self.fd)
        self.fd = -1
        self.closed_fd = True
        self._release_ref()

    def _release_ref(self) -> None:
        """An fd referring to this socket was closed; the last one closes the socket (fput)."""
        self.refs -= 1
        if self.refs > 0:
            return
        try:
            self._close()
        finally:
            self.net.drain()

    def _close(self) -> None:
        """sock_close on the last reference: epoll forgets the file, then tcp_close."""
        for item in list(self.watchers):
            item.epoll.forget(item)  # eventpoll_release: every (fd, file) key of this file
        self.orphan = True
        state = self.state
        if state == LISTEN:
            self._stop_listening()
            self._release_port()
            return
        if state == CLOSED:
            self._release_port()
            self.wake(KEY_ALL)
            return
        if state == SYN_SENT:
            self._done()
            self._release_port()
            return
        if self.rcvq or (self.linger[0] and not self.linger[1]):
            # tcp_close: unread data -> RST, not FIN (RFC 2525 §2.17, TCPAbortOnClose);
            # SO_LINGER {1, 0} -> tcp_disconnect -> RST. Neither leaves a TIME_WAIT.
            if state in _NEED_RESET or (state in (CLOSING, LAST_ACK) and self.snd_nxt != self.snd_una):
                self._send_rst()
            self.net.counters["abortive_closes"] += 1
            self._destroy()
            return
        self.shutdown_flags = SHUTDOWN_MASK
        if state in (ESTABLISHED, SYN_RECV, CLOSE_WAIT):
            self._close_state_and_fin()
        elif state == FIN_WAIT2:
            self._arm_state_timer(self.net.sysctl.tcp_fin_timeout * 1000 * MS)
        if self.state == CLOSED:
            self._destroy()

    def _stop_listening(self) -> None:
        """inet_csk_listen_stop: un-accepted children are reset; half-open requests dropped."""
        host = self.host
        if host.listeners.get(self.local) is self:  # type: ignore[arg-type]
            del host.listeners[self.local]  # type: ignore[arg-type]
        self.state = CLOSED
        for req in list(self.syn_queue.values()):
            if req.timer:
                req.timer.cancel()
        self.syn_queue = _NO_REQUESTS  # type: ignore[assignment]
        while self.accept_queue:
            child = self.accept_queue.popleft()
            child.orphan = True
            child.closed_fd = True
            if child.state in _NEED_RESET:
                child._send_rst()
            child._destroy()

    def detach(self) -> int:
        raise NotImplementedError("simnet sockets cannot be detached from their simulated host")

    # -- names and options --------------------------------------------------------------------

    @_syscall
    def getsockname(self) -> Address:
        return self.local if self.local else ("0.0.0.0", 0)

    @_syscall
    def getpeername(self) -> Address:
        if self.remote is None or self.state in (CLOSED, LISTEN, SYN_SENT):
            raise_errno(errno.ENOTCONN)
        return self.remote

    @_syscall
    def setsockopt(self, level: int, optname: int, value: Any, optlen: int | None = None) -> None:
        if isinstance(value, (bytes, bytearray, memoryview)):
            raw = bytes(value)
            intval = struct.unpack("i", raw[:4])[0] if len(raw) >= 4 else 0
        elif isinstance(value, int):
            raw = b""
            intval = value
        else:
            raise TypeError(f"a bytes-like object is required, not '{type(value).__name__}'")
        sysctl = self.net.sysctl
        if level == _socket.SOL_SOCKET:
            if optname == _socket.SO_RCVBUF:
                # sock_setsockopt: min(val, rmem_max) as unsigned, doubled, floored; and locked.
                val = min(intval & 0xFFFFFFFF, sysctl.rmem_max)
                self.rcvbuf = max(val * 2, sysctl.sock_min_rcvbuf)
                self.rcvbuf_locked = True
            elif optname == _socket.SO_SNDBUF:
                val = min(intval & 0xFFFFFFFF, sysctl.wmem_max)
                self.sndbuf = max(val * 2, sysctl.sock_min_sndbuf)
                self.sndbuf_locked = True
                self._check_write_space()
            elif optname == _socket.SO_REUSEADDR:
                self.reuseaddr = bool(intval)
            elif optname == _socket.SO_LINGER:
                if len(raw) < 8:
                    raise_errno(errno.EINVAL)
                onoff, seconds = struct.unpack("ii", raw[:8])
                self.linger = (1 if onoff else 0, seconds)
            elif optname in (_socket.SO_KEEPALIVE, _socket.SO_REUSEPORT):
                pass  # accepted, not modelled (no keepalive probes; one listener per port)
            else:
                raise_errno(errno.ENOPROTOOPT)
        elif level == _socket.IPPROTO_TCP:
            if optname == _socket.TCP_NODELAY:
                self.nodelay = bool(intval)
                if self.nodelay:
                    try:
                        self._output()  # tcp_push_pending_frames: held-back data goes now
                    finally:
                        self.net.drain()
            elif optname in (_socket.TCP_MAXSEG, _socket.TCP_QUICKACK, _socket.TCP_KEEPIDLE,
                             _socket.TCP_KEEPINTVL, _socket.TCP_KEEPCNT):
                pass
            else:
                raise_errno(errno.ENOPROTOOPT)
        else:
            raise_errno(errno.ENOPROTOOPT)

    @_syscall
    def getsockopt(self, level: int, optname: int, buflen: int | None = None) -> int | bytes:
        value: int
        if level == _socket.SOL_SOCKET:
            if optname == _socket.SO_RCVBUF:
                value = self.rcvbuf
            elif optname == _socket.SO_SNDBUF:
                value = self.sndbuf
            elif optname == _socket.SO_ERROR:
                value = self._sock_error()  # read once, then cleared (sock_error)
            elif optname == _socket.SO_REUSEADDR:
                value = int(self.reuseaddr)
            elif optname == _socket.SO_TYPE:
                value = _socket.SOCK_STREAM
            elif optname == _socket.SO_PROTOCOL:
                # sk->sk_protocol: inet_create resolved proto 0 to IPPROTO_TCP, so this is 6
                # whatever socket() was given (Python's `.proto` keeps what was passed).
                value = _socket.IPPROTO_TCP
            elif optname == _socket.SO_DOMAIN:
                value = _socket.AF_INET
            elif optname == _socket.SO_ACCEPTCONN:
                value = int(self.state == LISTEN)
            elif optname == _socket.SO_KEEPALIVE:
                value = 0
            elif optname == _socket.SO_LINGER:
                packed = struct.pack("ii", *self.linger)
                return packed if buflen else struct.unpack("i", packed[:4])[0]
            else:
                raise_errno(errno.ENOPROTOOPT)
        elif level == _socket.IPPROTO_TCP:
            if optname == _socket.TCP_NODELAY:
                value = int(self.nodelay)
            elif optname == _socket.TCP_MAXSEG:
                value = self._eff_mss() if self.state not in (CLOSED, LISTEN) else TCP_MSS_DEFAULT
            else:
                raise_errno(errno.ENOPROTOOPT)
        else:
            raise_errno(errno.ENOPROTOOPT)
        if buflen:
            return struct.pack("i", value)[:buflen]
        return value

    def _sock_error(self) -> int:
        code, self.err = self.err, 0
        return code

    # -- blocking machinery -------------------------------------------------------------------

    def _wait_event(self, deadline: int | None = None) -> Any:
        event = self.net.wait_event(deadline)
        waiters = self.waiters
        if not waiters:
            waiters = self.waiters = []
        waiters.append(event)
        return event

    def _blocking_call(self, attempt: Callable[[], _R], want: int, what: str, flags: int = 0) -> _R:
        """Run `attempt` with the socket's blocking mode.

        Non-blocking (or MSG_DONTWAIT): once, EAGAIN raised. Blocking: once, then sleep until a
        wake-up and retry, as the kernel does. With settimeout(): as CPython does -- poll for
        `want` (EPOLLIN/EPOLLOUT) first, then one non-blocking attempt; TimeoutError at the deadline.
        """
        timeout = self.timeout_ns
        if timeout is None or timeout == 0 or flags & _MSG_DONTWAIT:
            try:
                return attempt()
            except BlockingIOError:
                if timeout == 0 or flags & _MSG_DONTWAIT:
                    raise
            finally:
                self.net.drain()
        return self.net.drive(self._retry_gen(attempt, want), what)

    def _retry_gen(self, attempt: Callable[[], _R], want: int) -> Generator[Any, Any, _R]:
        env = self.net.env
        timeout = self.timeout_ns
        deadline = None if timeout is None else env.now + timeout
        poll_first = deadline is not None
        while True:
            if not poll_first or self.poll_mask() & (want | EPOLLERR | EPOLLHUP):
                try:
                    return attempt()
                except BlockingIOError:
                    pass
                finally:
                    self.net.drain()
            if deadline is not None and env.now >= deadline:
                raise timeout_error()
            yield self._wait_event(deadline)

    # ==========================================================================================
    # The TCP engine: segments out
    # ==========================================================================================

    def _rcv_capacity(self) -> int:
        return self.rcvbuf * 3 >> 2

    def _select_window(self) -> int:
        """__tcp_select_window: the free receive space, but no silly small windows.

        Once less than half the buffer is free, Linux advertises 0 rather than a window smaller
        than one segment, so a sender does not dribble tiny segments (receiver-side SWS avoidance).
        """
        capacity = self._rcv_capacity()
        free = capacity - len(self.rcvq)
        if free < capacity >> 1 and free < min(self.rcv_mss, capacity >> 1):
            return 0
        return free if free > 0 else 0

    def _eff_mss(self) -> int:
        # tcp_bound_to_half_wnd: never a segment larger than half the biggest window seen. This is
        # why Linux's first partial send on loopback is 32741 bytes, half of the 65483 SYN window.
        mss = self.mss
        max_window = self.max_window
        if max_window > TCP_MSS_DEFAULT:
            half = max_window >> 1
            if mss > half:
                return max(half, 68)
        return mss

    def _transmit(self, seg: Segment) -> None:
        self.net.transmit(self.host, seg)

    def _send_ack(self) -> None:
        if self.remote is None:
            return
        self._transmit(Segment(self.local, self.remote, ACK, self.snd_nxt, self.rcv_nxt, self._advertise()))  # type: ignore[arg-type]

    def _advertise(self) -> int:
        """The window to put in an outgoing segment; every ACK we send goes through here."""
        window = self._select_window()
        self.rcv_wnd_edge = self.rcv_nxt + window
        self.rcv_wup = self.rcv_nxt
        timer = self.delack_timer
        if timer is not None:
            timer.cancel()
            self.delack_timer = None
        return window

    def _send_rst(self) -> None:
        if self.remote is None:
            return
        self.net.counters["resets_sent"] += 1
        self._transmit(Segment(self.local, self.remote, RST | ACK, self.snd_nxt, self.rcv_nxt, 0))  # type: ignore[arg-type]

    def _output(self) -> None:
        """tcp_write_xmit: send what the window, Nagle and the MSS allow; then a pending FIN."""
        if self.remote is None or self.state in (SYN_SENT, SYN_RECV, CLOSED, LISTEN):
            return
        mss = self._eff_mss()
        sndq = self.sndq
        queued_end = self.snd_una + len(sndq)
        while True:
            unsent = queued_end - self.snd_nxt
            if unsent <= 0:
                break
            room = self.snd_una + self.snd_wnd - self.snd_nxt
            n = unsent if unsent < mss else mss
            if room < n:
                n = room
            if n <= 0:
                # Zero window with nothing in flight: only the persist timer can learn more.
                if self.snd_nxt == self.snd_una:
                    self._arm_persist()
                break
            in_flight = self.snd_nxt != self.snd_una
            if n < mss and n == unsent and in_flight and not self.nodelay and not self.fin_pending:
                # Nagle (RFC 896): hold a small segment while data is unacknowledged.
                break
            offset = self.snd_nxt - self.snd_una
            data = bytes(sndq[offset : offset + n])
            flags = ACK
            last = n == unsent
            if last:
                flags |= PSH
                if self.fin_pending and not self.fin_sent:
                    flags |= FIN  # tcp_send_fin piggybacks on the last unsent data
            seq = self.snd_nxt
            self.snd_nxt = seq + n
            if flags & FIN:
                self.fin_sent = True
                self.fin_seq = self.snd_nxt
                self.snd_nxt += 1
            if self.snd_nxt > self.snd_max:
                if self.rtt_seq < 0:
                    self.rtt_seq, self.rtt_start = self.snd_nxt, self.net.env.now
                self.snd_max = self.snd_nxt
            self._transmit(Segment(self.local, self.remote, flags, seq, self.rcv_nxt, self._advertise(), data))  # type: ignore[arg-type]
            if self.rto_timer is None:
                self._arm_rto(self.rto_ns)
        if self.fin_pending and not self.fin_sent and queued_end == self.snd_nxt:
            # A FIN occupies one sequence number and needs no window.
            self.fin_sent = True
            self.fin_seq = self.snd_nxt
            seq = self.snd_nxt
            self.snd_nxt += 1
            if self.snd_nxt > self.snd_max:
                self.snd_max = self.snd_nxt
            self._transmit(Segment(self.local, self.remote, FIN | ACK, seq, self.rcv_nxt, self._advertise()))  # type: ignore[arg-type]
            if self.rto_timer is None:
                self._arm_rto(self.rto_ns)

    # -- timers -------------------------------------------------------------------------------

    def _arm_rto(self, delay: int) -> None:
        self.rto_timer = self._rto_entry = self.net.rearm(self._rto_entry, min(delay, TCP_RTO_MAX), self._on_rto)

    def _cancel_timers(self) -> None:
        for name in ("rto_timer", "delack_timer", "persist_timer", "state_timer"):
            timer = getattr(self, name)
            if timer is not None:
                timer.cancel()
                setattr(self, name, None)

    def _on_rto(self) -> None:
        self.rto_timer = None
        state = self.state
        if state == SYN_SENT:
            # SYN retransmits on the schedule of Sysctl.tcp_syn_linear_timeouts, then ETIMEDOUT.
            sysctl = self.net.sysctl
            if self.retries >= sysctl.tcp_syn_retries + sysctl.tcp_syn_linear_timeouts:
                self._fail(errno.ETIMEDOUT)
                return
            self.retries += 1
            self.net.counters["syn_retransmits"] += 1
            self._send_syn()
            return
        if self.snd_una >= self.snd_max or state in (CLOSED, LISTEN, TIME_WAIT):
            return
        if self.snd_wnd == 0 and not self.fin_sent:
            self._arm_persist()
            return
        now = self.net.env.now
        if self.retries == 0:
            # tp->retrans_stamp: Linux stamps the head segment's original send. The model keeps
            # no send time per segment; the timer that just fired was armed at or after that
            # send, one RTO ago, which is within one RTO of Linux's stamp.
            self.retrans_stamp = now - min(self.rto_ns, TCP_RTO_MAX)
        if now - self.retrans_stamp >= TCP_RETRIES2_TIMEOUT:
            # retransmits_timed_out: tcp_retries2 as a time budget, not a count -- with a long
            # RTO Linux gives up after fewer than 15 retransmissions.
            self._fail(errno.ETIMEDOUT)
            return
        self.retries += 1
        # tcp_enter_loss: the duplicate-ACK count starts again (tcp_timeout_mark_lost ->
        # tcp_reset_reno_sack), the state becomes TCP_CA_Loss and tp->high_seq = snd_nxt, the
        # end of what was sent (our snd_max) -- what RFC 6582 §3.2 step 4 records in `recover`
        # after a timeout. Until an ACK covers more than that, duplicate ACKs start no fast
        # retransmit: the go-back-N resend below draws one for each segment the receiver
        # already holds, and those say nothing about loss. An RTO during fast recovery does the
        # same, moving the recovery point up to what has been sent since recovery began.
        self.dupacks = 0
        self.recover = self.snd_max
        self.loss_recovery = True
        self.net.counters["retransmits"] += 1
        # Go back N: resend from the oldest unacknowledged byte (Karn: no RTT sample from it).
        self.snd_nxt = self.snd_una
        if self.fin_sent and self.fin_seq >= self.snd_una:
            self.fin_sent = False
        self.rtt_seq = -1
        self._arm_rto(self.rto_ns << self.retries)
        self._output()

    def _retransmit_head(self) -> None:
        """Resend the first unacknowledged segment only (tcp_retransmit_skb of the head)."""
        if self.remote is None or self.state in (SYN_SENT, SYN_RECV, CLOSED, LISTEN, TIME_WAIT):
            return
        sndq = self.sndq
        n = min(self._eff_mss(), len(sndq), self.snd_max - self.snd_una)
        seq = self.snd_una
        flags = ACK | PSH if n else ACK
        if self.fin_sent and seq + n == self.fin_seq:
            flags |= FIN
        elif not n:
            return
        self.rtt_seq = -1  # Karn: no RTT sample from a retransmitted segment
        self._transmit(Segment(self.local, self.remote, flags, seq, self.rcv_nxt, self._advertise(), bytes(sndq[:n])))  # type: ignore[arg-type]

    def _arm_persist(self) -> None:
        if self.persist_timer is None:
            delay = min(max(self.rto_ns, TCP_RTO_MIN) << self.persist_backoff, TCP_RTO_MAX)
            self.persist_timer = self.net.call_later(delay, self._on_persist)

    def _on_persist(self) -> None:
        """tcp_probe_timer: a zero-window probe (an old sequence number) makes the peer re-ACK."""
        self.persist_timer = None
        if self.state in (CLOSED, LISTEN, TIME_WAIT) or self.snd_wnd > 0 or self.remote is None:
            return
        if self.snd_una + len(self.sndq) == self.snd_nxt:
            return
        self.net.counters["window_probes"] += 1
        self.persist_backoff = min(self.persist_backoff + 1, 10)
        self._transmit(Segment(self.local, self.remote, ACK, self.snd_una - 1, self.rcv_nxt, self._advertise()))  # type: ignore[arg-type]
        self._arm_persist()

    def _arm_state_timer(self, delay: int) -> None:
        if self.state_timer is not None:
            self.state_timer.cancel()
        self.state_timer = self.net.call_later(delay, self._on_state_timer)

    def _on_state_timer(self) -> None:
        # TIME_WAIT's 60 s (TCP_TIMEWAIT_LEN), or an orphaned FIN_WAIT2 after tcp_fin_timeout.
        self.state_timer = None
        if self.state in (TIME_WAIT, FIN_WAIT2):
            self._destroy()

    def _on_delack(self) -> None:
        self.delack_timer = None
        if self.state not in (CLOSED, LISTEN, SYN_SENT) and self.rcv_wup != self.rcv_nxt:
            self._send_ack()

    # -- ends of a connection -----------------------------------------------------------------

    def _done(self) -> None:
        """tcp_done: state CLOSE, both directions shut; the port goes unless bind() pinned it."""
        self._cancel_timers()
        host = self.host
        local, remote = self.local, self.remote
        if local is not None and remote is not None and host.connections.get((local, remote)) is self:
            del host.connections[(local, remote)]
        self.state = CLOSED
        self.shutdown_flags = SHUTDOWN_MASK
        self.ooo = _NO_SEGMENTS  # type: ignore[assignment]
        if self.orphan or not self.user_bound:
            self._release_port()

    def _destroy(self) -> None:
        self._done()
        self._release_port()
        self.wake(KEY_ALL)

    def _fail(self, code: int) -> None:
        self.err = code
        self.sndq.clear()
        if self.net.queue_watch is not None:
            self.net.queue_watch(self)
        self._done()
        self.wake(KEY_ALL)

    def _reset_received(self) -> None:
        """tcp_reset: the error depends on the state; the write queue is purged, the receive
        queue is NOT (queued data is still read first, LINUX.md §3)."""
        state = self.state
        if state == TIME_WAIT:
            self._destroy()  # a RST kills a TIME_WAIT socket (tcp_timewait_state_process)
            return
        self.err = _ERR_BY_STATE.get(state, errno.ECONNRESET)
        self.net.counters["resets_received"] += 1
        self.sndq.clear()
        if self.net.queue_watch is not None:
            self.net.queue_watch(self)
        self._done()
        self.wake(KEY_ALL)

    def _vanish(self) -> None:
        """Its host crashed: gone at once, no segment sent, nothing left to wake (faults.Crash)."""
        self._cancel_timers()
        for req in self.syn_queue.values():
            if req.timer is not None:
                req.timer.cancel()
        self.syn_queue = _NO_REQUESTS  # type: ignore[assignment]
        while self.accept_queue:
            self.accept_queue.popleft()._vanish()
        self.state = CLOSED
        self.shutdown_flags = SHUTDOWN_MASK
        self.sndq.clear()
        self.rcvq.clear()
        if self.net.queue_watch is not None:
            self.net.queue_watch(self)
        self.ooo = _NO_SEGMENTS  # type: ignore[assignment]
        self.watchers = ()  # type: ignore[assignment]
        self.port_held = False
        self.orphan = True
        self.closed_fd = True
        self.fd = -1

    def _enter_time_wait(self) -> None:
        self._cancel_timers()
        self.state = TIME_WAIT
        self.shutdown_flags = SHUTDOWN_MASK
        self._arm_state_timer(TCP_TIMEWAIT_LEN)

    # ==========================================================================================
    # The TCP engine: segments in
    # ==========================================================================================

    def segment_arrived(self, seg: Segment) -> None:
        """tcp_rcv_state_process / tcp_rcv_established for a socket found by its 4-tuple."""
        state = self.state
        flags = seg.flags
        if state == SYN_SENT:
            self._syn_sent_segment(seg)
            return
        if flags & RST:
            self._reset_received()
            return
        if flags & SYN:
            if state == TIME_WAIT and self._time_wait_reopens(seg):
                return
            # A retransmitted SYN-ACK for a connection we think is ESTABLISHED (the server lost
            # our ACK to a full accept queue): answer with an ACK, which lets it finish.
            self._send_ack()
            return
        if state == TIME_WAIT:
            if seg.data or flags & FIN:
                self._send_ack()
            return
        if flags & ACK:
            self._ack_received(seg)
            if self.state == CLOSED:
                return
        data = seg.data
        if data:
            self._data_received(seg, data)
        elif flags & FIN:
            if seg.seq == self.rcv_nxt:
                self._fin_received()
            elif seg.seq > self.rcv_nxt and state not in (CLOSE_WAIT, CLOSING, LAST_ACK):
                self._queue_out_of_order(seg.seq, b"", FIN)  # a FIN beyond a hole waits for it
        elif seg.seq == self.rcv_nxt - 1:
            # A zero-window probe (tcp_xmit_probe_skb sends snd_una - 1): the old sequence number
            # is out of window, and tcp_validate_incoming answers it with an ACK carrying our
            # current window.
            self._send_ack()

    def _time_wait_reopens(self, seg: Segment) -> bool:
        """tcp_timewait_state_process's TCP_TW_SYN: a new SYN whose sequence number is after
        everything the old connection used reopens the 4-tuple. The TIME_WAIT sock is killed
        and the listener takes the SYN, answering with ISN tw_snd_nxt + 65535 + 2 so the new
        connection's numbers follow the old ones. This is what lets a client's new connection
        from a port whose old connection the server still holds in TIME_WAIT succeed at once
        (a server that closes first leaves one TIME_WAIT per client port). Otherwise -- an old
        sequence number, or no listener -- the SYN is answered with an ACK (TCP_TW_ACK), the
        client resets it, and retransmits its SYN a second later."""
        if seg.flags & (ACK | RST) or not 0 < (seg.seq - self.rcv_nxt) & 0xFFFFFFFF < 0x80000000:
            return False
        listener = self.host.listener_for(seg.dst)
        if listener is None:
            return False
        isn = (self.snd_nxt + 65537) & 0xFFFFFFFF
        self.net.counters["time_wait_reopened"] += 1
        self._destroy()
        listener.listener_segment(seg, isn)
        return True

    def _syn_sent_segment(self, seg: Segment) -> None:
        flags = seg.flags
        if flags & ACK and seg.ack != self.iss + 1:
            if not flags & RST:
                self._transmit(Segment(seg.dst, seg.src, RST, seg.ack, 0, 0))
            return
        if flags & RST:
            if flags & ACK:
                self._reset_received()  # ECONNREFUSED
            return
        if flags & SYN and flags & ACK:
            self.irs = seg.seq
            self.rcv_nxt = seg.seq + 1
            self.snd_una = self.snd_nxt = seg.ack
            self.snd_max = max(self.snd_max, seg.ack)
            self.snd_wnd = seg.window
            self.max_window = seg.window
            if self.retries == 0:
                self._rtt_sample(self.net.env.now - self.rtt_start)  # Karn: not after a retransmit
            self.retries = 0
            self._establish()
            self._send_ack()
            self.wake(KEY_ALL)  # tcp_finish_connect -> sk_state_change: EPOLLOUT for the connector

    def _establish(self) -> None:
        self._cancel_timers()
        # The handshake's timer is not kept for re-arming (Network.rearm): the first data may be
        # long in coming, and an idle connection then holds no timer (docs/benchmarks.md, P6).
        self._rto_entry = None
        self.state = ESTABLISHED
        if not self.sndbuf_locked:
            # tcp_sndbuf_expand at establishment; Linux reads 3939840, later tcp_wmem[2].
            self.sndbuf = max(self.sndbuf, self.net.sysctl.tcp_wmem[2])

    def _rtt_sample(self, rtt: int) -> None:
        """RFC 6298 estimator; the RTO never goes below TCP_RTO_MIN (Linux's rttvar floor)."""
        if rtt < 0:
            return
        if self.srtt == 0 and self.rttvar == 0:
            self.srtt = rtt
            self.rttvar = rtt >> 1
        else:
            self.rttvar = (3 * self.rttvar + abs(self.srtt - rtt)) >> 2
            self.srtt = (7 * self.srtt + rtt) >> 3
        self.rto_ns = min(self.srtt + max(4 * self.rttvar, TCP_RTO_MIN), TCP_RTO_MAX)

    def _ack_received(self, seg: Segment) -> None:
        ack = seg.ack
        if ack > self.snd_una and ack <= self.snd_max:
            acked = ack - self.snd_una
            sndq = self.sndq
            data_acked = acked if acked <= len(sndq) else len(sndq)
            if data_acked:
                del sndq[:data_acked]
                if self.net.queue_watch is not None:
                    self.net.queue_watch(self)
            self.snd_una = ack
            if self.snd_nxt < ack:
                self.snd_nxt = ack
            if self.rtt_seq >= 0 and ack >= self.rtt_seq:
                self._rtt_sample(self.net.env.now - self.rtt_start)
                self.rtt_seq = -1
            self.retries = 0
            self.persist_backoff = 0
            self.dupacks = 0
            if self.rto_timer is not None:
                self.rto_timer.cancel()
                self.rto_timer = None
            if ack < self.snd_max:
                self._arm_rto(self.rto_ns)
            recover = self.recover
            if recover >= 0:
                if ack > recover:
                    # Recovery ends only when an ACK covers more than the recovery point: without
                    # SACK, an ACK of exactly `recover` may still have duplicates coming (drawn by
                    # our own resends), which must not start a fast retransmit. Linux holds
                    # TCP_CA_Recovery and TCP_CA_Loss "until something *above* high_seq is ACKed"
                    # (tcp_is_non_sack_preventing_reopen); RFC 6582 §3.2 step 2 gates fast
                    # retransmit on the same test.
                    self.recover = -1
                    self.loss_recovery = False
                elif ack < recover and not self.loss_recovery:
                    # NewReno's partial ACK (RFC 6582 §3.2 step 3; tcp_newreno_mark_lost in
                    # TCP_CA_Recovery): the next hole is known lost too; resend it now. After an
                    # RTO (TCP_CA_Loss) go-back-N is already resending it.
                    self.net.counters["fast_retransmits"] += 1
                    self._retransmit_head()
            if self.fin_sent and ack > self.fin_seq:
                self._our_fin_acked()
                if self.state in (CLOSED, TIME_WAIT):
                    return
            self._check_write_space()
        elif (
            ack == self.snd_una
            and ack < self.snd_max
            and not seg.data
            and not seg.flags & FIN
            and seg.window == self.snd_wnd
        ):
            # A duplicate ACK (tcp_ack's "dup ack" test: nothing new acknowledged, no data, the
            # same window): the third one means the segment at snd_una was lost (RFC 5681 3.2) --
            # unless a recovery is under way, whose point this ACK does not pass (RFC 6582 §3.2
            # step 2; Linux counts it, but tcp_fastretrans_alert enters recovery only from
            # TCP_CA_Open or TCP_CA_Disorder).
            self.dupacks += 1
            if self.dupacks == 3 and self.recover < 0:
                self.recover = self.snd_max
                self.net.counters["fast_retransmits"] += 1
                self._retransmit_head()
        window = seg.window
        self.snd_wnd = window
        if window > self.max_window:
            self.max_window = window
        if window and self.persist_timer is not None:
            self.persist_timer.cancel()
            self.persist_timer = None
        if self.snd_una + len(self.sndq) > self.snd_nxt or (self.fin_pending and not self.fin_sent):
            self._output()

    def _our_fin_acked(self) -> None:
        state = self.state
        if state == FIN_WAIT1:
            self.state = FIN_WAIT2
            if self.orphan:
                self._arm_state_timer(self.net.sysctl.tcp_fin_timeout * 1000 * MS)
            self.wake(KEY_ALL)
        elif state == CLOSING:
            self._enter_time_wait()
            self.wake(KEY_ALL)
        elif state == LAST_ACK:
            self._destroy()

    def _data_received(self, seg: Segment, data: bytes) -> None:
        """In-order data is queued up to the free space; anything else is re-ACKed."""
        state = self.state
        seq = seg.seq
        rcv_nxt = self.rcv_nxt
        if seq < rcv_nxt:
            overlap = rcv_nxt - seq
            if overlap >= len(data):
                self._send_ack()  # an old duplicate (a retransmission we already have): re-ACK
                return
            data = data[overlap:]
            seq = rcv_nxt
        if self.shutdown_flags & RCV_SHUTDOWN and state in (FIN_WAIT1, FIN_WAIT2) and not self.done:
            # tcp_rcv_state_process step 7: new data after our receive side was shut down and our
            # FIN sent -- "RFC 1122 says we MUST send a reset" (LINUX.md §3).
            self._send_rst()
            self._fail(errno.ECONNRESET)
            return
        if state in (CLOSE_WAIT, CLOSING, LAST_ACK):
            self._send_ack()  # data after the peer's own FIN: impossible from an honest peer
            return
        if seq != rcv_nxt:
            self._queue_out_of_order(seq, data, seg.flags & FIN)
            return
        free = self._rcv_capacity() - len(self.rcvq)
        take = len(data) if len(data) <= free else (free if free > 0 else 0)
        now = self.net.env.now
        if take:
            self.rcvq += data if take == len(data) else data[:take]
            self.rcv_nxt = seq + take
            if self.net.queue_watch is not None:
                self.net.queue_watch(self)
            if len(data) > self.rcv_mss:
                self.rcv_mss = min(len(data), self.mss)
            # tcp_event_data_recv: after an idle gap longer than the RTO, quick-ack again.
            if self.last_data_time >= 0 and now - self.last_data_time > self.rto_ns:
                self.quickacks = TCP_MAX_QUICKACKS
            self.last_data_time = now
        if take < len(data):
            # Beyond the window (a probe, or more than we offered): drop the rest, ACK now.
            self._send_ack()
            if take:
                self.wake(KEY_IN)
            return
        if self.ooo:
            if self._drain_out_of_order(seg.flags & FIN):
                self._fin_received()  # ACKs at once
            else:
                self._send_ack()  # a filled hole is ACKed at once (tcp_data_queue: ICSK_ACK_NOW)
        elif seg.flags & FIN:
            self._fin_received()  # ACKs at once
        else:
            self._ack_policy()
        self.wake(KEY_IN)

    def _queue_out_of_order(self, seq: int, data: bytes, fin: int) -> None:
        """tcp_data_queue_ofo: keep a segment that lies beyond a hole (what fits in the buffer
        once the hole is filled), and send a duplicate ACK at once so the sender learns of the
        hole (__tcp_ack_snd_check acks at once while the out-of-order queue is not empty)."""
        room = self._rcv_capacity() - len(self.rcvq) - (seq - self.rcv_nxt)
        if len(data) > room:
            data = data[: room if room > 0 else 0]
            fin = 0
        if data or fin:
            ooo = self.ooo
            if not ooo:
                ooo = self.ooo = []
            i = bisect.bisect_left(ooo, seq, key=lambda entry: entry[0])
            if not (i < len(ooo) and ooo[i][0] == seq and len(ooo[i][1]) >= len(data) and (ooo[i][2] or not fin)):
                ooo.insert(i, (seq, data, fin))
            self.net.counters["out_of_order"] += 1
        self._send_ack()

    def _drain_out_of_order(self, fin: int) -> int:
        """tcp_ofo_queue: move what the new in-order data made contiguous to the receive queue;
        returns whether a FIN was reached."""
        ooo = self.ooo
        while ooo and ooo[0][0] <= self.rcv_nxt:
            seq, data, entry_fin = ooo.pop(0)
            end = seq + len(data)
            if end < self.rcv_nxt or (end == self.rcv_nxt and not entry_fin):
                continue  # wholly old: a duplicate of what is already queued
            part = data[self.rcv_nxt - seq :]
            if part:
                self.rcvq += part
                self.rcv_nxt += len(part)
                if self.net.queue_watch is not None:
                    self.net.queue_watch(self)
            if entry_fin:
                fin = entry_fin
                ooo.clear()
                break
        return fin

    def _ack_policy(self) -> None:
        """__tcp_ack_snd_check: ACK at once in quick-ack mode or after more than one full segment;
        otherwise let the delayed-ACK timer (40 ms) or outgoing data carry the ACK."""
        if self.quickacks > 0:
            self.quickacks -= 1
            self._send_ack()
        elif self.rcv_nxt - self.rcv_wup > self.rcv_mss and self._select_window() >= self.rcv_wnd_edge - self.rcv_nxt:
            self._send_ack()
        elif self.delack_timer is None:
            self.delack_timer = self._delack_entry = self.net.rearm(
                self._delack_entry, TCP_DELACK_MIN, self._on_delack
            )

    def _fin_received(self) -> None:
        """tcp_fin: SOCK_DONE, RCV_SHUTDOWN, and the state moves on; ACK at once."""
        if self.done:
            self._send_ack()
            return
        self.rcv_nxt += 1
        self.done = True
        self.shutdown_flags |= RCV_SHUTDOWN
        state = self.state
        if state in (ESTABLISHED, SYN_RECV):
            self.state = CLOSE_WAIT
        elif state == FIN_WAIT1:
            self.state = CLOSING  # our FIN is not yet acknowledged
        elif state == FIN_WAIT2:
            self._send_ack()
            self._enter_time_wait()
            self.wake(KEY_ALL)
            return
        self._send_ack()
        self.wake(KEY_ALL)

    # -- the listener's side of the handshake -------------------------------------------------

    def listener_segment(self, seg: Segment, isn: int | None = None) -> None:
        """tcp_v4_do_rcv on a LISTEN socket: SYNs make requests; the final ACK makes a child."""
        flags = seg.flags
        remote = seg.src
        req = self.syn_queue.get(remote)
        if flags & RST:
            if req is not None:
                self._drop_request(req)
            return
        if flags & SYN:
            if flags & ACK:
                self.host.send_reset_for(seg)
                return
            if req is not None:
                self._send_synack(req)  # the client retransmitted its SYN
                return
            if len(self.accept_queue) > self.backlog:
                # sk_acceptq_is_full (strict >, so backlog+1 fit): the SYN is silently dropped and
                # the client retransmits it at 1, 3, 7 ... s (LINUX.md §1).
                self.net.counters["listen_overflows"] += 1
                if self.net.log_segments:
                    self.net.log(seg, "dropped: accept queue full")
                return
            iss = self.net.isn(seg.dst, remote) if isn is None else isn
            from simnet.kernel.network import mss_for_mtu

            window = self._syn_window(mss_for_mtu(self.net.path(self.host.ip, remote[0]).mtu))
            req = RequestSock(self, seg.dst, remote, iss, seg.seq, window, seg.window)
            self.syn_queue[remote] = req
            self._send_synack(req)
            return
        if not flags & ACK or req is None or seg.ack != req.iss + 1:
            self.host.send_reset_for(seg)
            return
        if len(self.accept_queue) > self.backlog:
            # tcp_check_req's listen_overflow: with tcp_abort_on_overflow=0 the ACK is dropped and
            # the request stays, so the client is ESTABLISHED while we hold only a SYN_RECV.
            self.net.counters["listen_overflows"] += 1
            if self.net.sysctl.tcp_abort_on_overflow:
                self._drop_request(req)
                self.host.send_reset_for(seg)
                return
            req.acked = True
            if self.net.log_segments:
                self.net.log(seg, "dropped: accept queue full")
            return
        child = self._make_child(req, seg)
        self.accept_queue.append(child)
        if self.net.queue_watch is not None:
            self.net.queue_watch(self)
        self.wake(KEY_IN)  # sk_data_ready on the listener
        if seg.data or flags & FIN:
            child.segment_arrived(seg)

    def _send_synack(self, req: RequestSock) -> None:
        self._transmit(Segment(req.local, req.remote, SYN | ACK, req.iss, req.irs + 1, req.window))
        if req.timer is not None:
            req.timer.cancel()
        req.timer = self.net.call_later(TCP_TIMEOUT_INIT << req.retries, lambda: self._synack_timeout(req))

    def _synack_timeout(self, req: RequestSock) -> None:
        if self.syn_queue.get(req.remote) is not req:
            return
        if req.retries >= self.net.sysctl.tcp_synack_retries:
            # reqsk_timer_handler gives up even on an acked request: a client that is already
            # ESTABLISHED and never sends keeps a connection the server has forgotten.
            self.net.counters["synack_expired"] += 1
            self._drop_request(req)
            return
        req.retries += 1
        self.net.counters["synack_retransmits"] += 1
        self._send_synack(req)

    def _drop_request(self, req: RequestSock) -> None:
        if req.timer is not None:
            req.timer.cancel()
        if self.syn_queue.get(req.remote) is req:
            del self.syn_queue[req.remote]

    def _make_child(self, req: RequestSock, seg: Segment) -> TcpSocket:
        """tcp_create_openreq_child: a clone of the listener's settings, ESTABLISHED."""
        self._drop_request(req)
        child = TcpSocket(self.host)
        child.parent = self
        child.local = req.local
        child.remote = req.remote
        child.conn_id = self.net.new_conn_id()
        child.host_conn_no = self.host.next_conn_no()
        child.reuseaddr = self.reuseaddr
        child.nodelay = self.nodelay
        child.rcvbuf, child.rcvbuf_locked = self.rcvbuf, self.rcvbuf_locked
        child.sndbuf, child.sndbuf_locked = self.sndbuf, self.sndbuf_locked
        child.linger = self.linger
        child.iss = req.iss
        child.snd_una = child.snd_nxt = child.snd_max = req.iss + 1
        child.irs = req.irs
        child.rcv_nxt = req.irs + 1
        child.rcv_wnd_edge = child.rcv_nxt + req.window
        child.rcv_wup = child.rcv_nxt
        child.snd_wnd = seg.window
        child.max_window = max(seg.window, req.peer_window)
        child.mss = child._path_mss()
        child.ss_state = SS_CONNECTED
        child._establish()
        self.host.connections[(child.local, child.remote)] = child
        child.port_held = True
        self.host.take_port(child, req.local[1])
        return child

    # -- inspection ---------------------------------------------------------------------------

    def ss_rows(self) -> list[tuple[str, int, int, str, str]]:
        def fmt(addr: Address | None) -> str:
            return f"{addr[0]}:{addr[1]}" if addr else "*:*"

        if self.state == LISTEN:
            rows = [(LISTEN, len(self.accept_queue), self.backlog, fmt(self.local), "0.0.0.0:*")]
            for req in self.syn_queue.values():
                rows.append((SYN_RECV, 0, 0, fmt(req.local), fmt(req.remote)))
            return rows
        unsent_and_unacked = len(self.sndq)
        return [(self.state, len(self.rcvq), unsent_and_unacked, fmt(self.local), fmt(self.remote))]


def _forward(body: Callable[Concatenate[TcpSocket, _P], _R]) -> Callable[Concatenate[DupSocket, _P], _R]:
    """TcpSocket's method `body` (a @_syscall), called through a DupSocket's own fd."""
    raw: Callable[Concatenate[TcpSocket, _P], _R] = body.__wrapped__  # type: ignore[attr-defined]

    def through_dup(self: DupSocket, /, *args: _P.args, **kwargs: _P.kwargs) -> _R:
        if self.closed_fd:
            raise_errno(errno.EBADF)
        return raw(self._sock, *args, **kwargs)

    functools.update_wrapper(through_dup, raw)
    return through_dup


class DupSocket:
    """Another fd for a TcpSocket's open file, made by dup(): Python's socket API on its own fd.

    Each call checks this object's fd, then runs TcpSocket's own method body on the shared
    socket, so the two objects can never disagree about TCP state. close() drops this fd's
    reference; the last reference, through whichever object, closes the socket.
    """

    def __init__(self, sock: TcpSocket, fd: int) -> None:
        self._sock = sock
        self.fd = fd
        self.closed_fd = False
        self.family, self.type, self.proto = sock.family, sock.type, sock.proto
        self.co = SocketCoroutines(sock, self)

    def __repr__(self) -> str:
        return repr(self._sock).replace(f"fd={self._sock.fd}", f"fd={self.fd}", 1)

    def __enter__(self) -> DupSocket:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def fileno(self) -> int:
        return self.fd

    def _check_fd(self) -> None:
        if self.closed_fd:
            raise_errno(errno.EBADF)

    def close(self) -> None:
        if self.closed_fd:
            return
        self._sock.host.release_fd(self.fd)
        self.fd = -1
        self.closed_fd = True
        self._sock._release_ref()

    def connect_ex(self, address: tuple[str, int]) -> int:
        if self.closed_fd:
            return errno.EBADF
        return self._sock._connect(address, "connect_ex")

    def getblocking(self) -> bool:
        return self._sock.getblocking()

    def gettimeout(self) -> float | None:
        return self._sock.gettimeout()

    def recv_into(self, buffer: bytearray | memoryview, nbytes: int = 0, flags: int = 0) -> int:
        data = self.recv(nbytes or len(buffer), flags)
        buffer[: len(data)] = data
        return len(data)

    def detach(self) -> int:
        raise NotImplementedError("simnet sockets cannot be detached from their simulated host")

    setblocking = _forward(TcpSocket.setblocking)
    settimeout = _forward(TcpSocket.settimeout)
    bind = _forward(TcpSocket.bind)
    listen = _forward(TcpSocket.listen)
    accept = _forward(TcpSocket.accept)
    connect = _forward(TcpSocket.connect)
    send = _forward(TcpSocket.send)
    sendall = _forward(TcpSocket.sendall)
    recv = _forward(TcpSocket.recv)
    shutdown = _forward(TcpSocket.shutdown)
    getsockname = _forward(TcpSocket.getsockname)
    getpeername = _forward(TcpSocket.getpeername)
    setsockopt = _forward(TcpSocket.setsockopt)
    getsockopt = _forward(TcpSocket.getsockopt)
    dup = _forward(TcpSocket.dup)
    sendmsg = _forward(TcpSocket.sendmsg)
    recvmsg = _forward(TcpSocket.recvmsg)
    recvmsg_into = _forward(TcpSocket.recvmsg_into)


def _index(value: Any) -> int:
    """An int argument as CPython's "i"/"n" converters take it (TypeError for a float)."""
    try:
        return operator.index(value)
    except TypeError:
        raise TypeError(f"'{type(value).__name__}' object cannot be interpreted as an integer") from None


def _gather(buffers: Any, message: str) -> bytes:
    """sendmsg's iovec: any iterable of bytes-like objects, concatenated."""
    try:
        items = list(buffers)
    except TypeError:
        raise TypeError(message) from None
    out = bytearray()
    for item in items:
        try:
            out += memoryview(item).cast("B")
        except TypeError:
            raise TypeError(f"a bytes-like object is required, not '{type(item).__name__}'") from None
    return bytes(out)


# SOL_SOCKET control messages __sock_cmsg_send accepts, with the payload size it requires
# (None: any; SCM_RIGHTS and SCM_CREDENTIALS are skipped unread on a non-AF_UNIX socket).
_SOL_SOCKET_CMSGS: dict[int, int | None] = {
    _socket.SCM_RIGHTS: None,
    getattr(_socket, "SCM_CREDENTIALS", 2): None,
    getattr(_socket, "SO_MARK", 36): 4,
    37: 4,  # SO_TIMESTAMPING_OLD
    getattr(_socket, "SO_PRIORITY", 12): 4,
    61: 8,  # SCM_TXTIME
}


def _bad_cmsg(ancdata: Any) -> bool:
    """Check sendmsg's ancdata as CPython parses it (TypeError for a malformed item); True if
    Linux's sock_cmsg_send would refuse one of them (EINVAL from tcp_sendmsg)."""
    try:
        items = list(ancdata)
    except TypeError:
        raise TypeError("sendmsg() argument 2 must be an iterable") from None
    bad = False
    for item in items:
        if not isinstance(item, (tuple, list)) or len(item) != 3:
            raise TypeError("[sendmsg() ancillary data items]() argument must be sequence of length 3")
        level, kind, data = _index(item[0]), _index(item[1]), memoryview(item[2])
        if level != _socket.SOL_SOCKET:
            continue  # sock_cmsg_send: only SOL_SOCKET is looked at
        if kind not in _SOL_SOCKET_CMSGS:
            bad = True
            continue
        size = _SOL_SOCKET_CMSGS[kind]
        if size is not None and data.nbytes != size:
            bad = True
    return bad


def _as_bytes(data: Any) -> bytes:
    if isinstance(data, bytes):
        return data
    if isinstance(data, (bytearray, memoryview)):
        return bytes(data)
    raise TypeError(f"a bytes-like object is required, not '{type(data).__name__}'")


class SocketCoroutines:
    """Blocking calls for simulated processes, which must not block the simpy loop:
    `data = yield from sock.co.recv(4096)`. Non-blocking sockets behave as their plain methods."""

    def __init__(self, sock: TcpSocket, handle: TcpSocket | DupSocket | None = None) -> None:
        self._sock = sock
        self._handle = sock if handle is None else handle  # whose fd the calls go through

    def _call(self, attempt: Callable[[], _R], want: int) -> Generator[Any, Any, _R]:
        sock = self._sock
        if sock.timeout_ns is None or sock.timeout_ns == 0:
            try:
                return attempt()
            except BlockingIOError:
                if sock.timeout_ns == 0:
                    raise
            finally:
                sock.net.drain()
        return (yield from sock._retry_gen(attempt, want))

    def accept(self) -> Generator[Any, Any, tuple[TcpSocket, Address]]:
        self._handle._check_fd()
        return (yield from self._call(self._sock._accept_now, KEY_IN))

    def recv(self, bufsize: int, flags: int = 0) -> Generator[Any, Any, bytes]:
        self._handle._check_fd()
        return (yield from self._call(lambda: self._sock._recv_now(bufsize, flags), KEY_IN))

    def send(self, data: bytes) -> Generator[Any, Any, int]:
        sock = self._sock
        self._handle._check_fd()
        data = _as_bytes(data)
        if sock.timeout_ns is None:
            return (yield from self.sendall(data))
        return (yield from self._call(lambda: sock._send_now(data), KEY_OUT))

    def sendall(self, data: bytes) -> Generator[Any, Any, int]:
        sock = self._sock
        self._handle._check_fd()
        data = _as_bytes(data)
        try:
            sent = sock._send_some(data, 0)
        finally:
            sock.net.drain()
        if sent < len(data):
            sent = yield from sock._send_all_gen(data, sent)
        return sent

    def connect(self, address: tuple[str, int]) -> Generator[Any, Any, None]:
        sock = self._sock
        self._handle._check_fd()
        address = _check_address(address, "connect")
        try:
            code = sock._connect_step(address, True)
        finally:
            sock.net.drain()
        if code in (errno.EINPROGRESS, errno.EALREADY) and sock.timeout_ns != 0:
            code = yield from sock._connect_wait_gen(address, code)
        if code:
            raise os_error(code)
