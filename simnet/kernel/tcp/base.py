"""TcpBase: the fields of one TCP socket, and what every part of it uses.

The fields are both halves Linux keeps apart, as __slots__: the `struct socket` a process holds
(fd, timeout, SS_* state) and the `struct tcp_sock` the stack runs (state, sequence numbers,
queues, timers). Besides them: readiness and wake-ups (tcp_poll, __sk_stream_is_writeable, the
wait queue, tcp_check_space -> sk_stream_write_space), the fd (alloc_fd), holding the local port
(inet_csk_get_port / inet_put_port), the pending error (sock_error), the blocking machinery
(sk_wait_event; CPython's settimeout as sock_call does it) and the socket's rows for `ss`.

The slots sit here, with __init__, because mypy checks every `self.x = ...` against the
__slots__ of the class that assigns it; the layers above declare `__slots__ = ()`. Each layer
sees the fields and the methods of the layers below it. The only class ever instantiated is
TcpSocket (socket.py), so where a layer hands itself to the host's tables or a watcher as "the
socket", it says so to mypy with cast("TcpSocket", self).
"""

from __future__ import annotations

import collections
import errno
import socket as _socket
from collections.abc import Callable, Generator, Mapping
from typing import TYPE_CHECKING, Any, TypeVar, cast

from simnet.kernel.clock import Timer
from simnet.kernel.epoll import EpItem
from simnet.kernel.errors import raise_errno, timeout_error
from simnet.kernel.segment import Address
from simnet.kernel.tcp.constants import (
    CLOSED,
    EPOLLERR,
    EPOLLHUP,
    EPOLLRDHUP,
    KEY_OUT,
    LISTEN,
    MSG_DONTWAIT,
    NO_REQUESTS,
    NO_SEGMENTS,
    RCV_SHUTDOWN,
    READABLE,
    SEND_SHUTDOWN,
    SHUTDOWN_MASK,
    SS_UNCONNECTED,
    SYN_RECV,
    SYN_SENT,
    TCP_MAX_QUICKACKS,
    TCP_MSS_DEFAULT,
    TCP_TIMEOUT_INIT,
    WRITABLE,
)

if TYPE_CHECKING:
    from simnet.kernel.host import Host
    from simnet.kernel.tcp.listen import RequestSock
    from simnet.kernel.tcp.socket import SocketCoroutines, TcpSocket


_R = TypeVar("_R")


class TcpBase:
    """The fields of a TCP socket and the helpers every layer uses (see the module docstring)."""

    # Slots, not a __dict__: a 10,000-connection simulation holds 20,000 of these, and a
    # 70-key instance dict was most of their memory (docs/benchmarks.md, P6).
    __slots__ = (
        "host", "net", "fd", "conn_id", "host_conn_no", "family", "type", "proto", "state",
        "ss_state", "local", "remote", "port_held", "user_bound", "orphan", "closed_fd", "refs",
        "file_id", "timeout_ns", "reuseaddr", "nodelay", "linger", "rcvbuf", "sndbuf",
        "rcvbuf_locked", "sndbuf_locked", "err", "shutdown_flags", "done", "iss", "snd_una",
        "snd_nxt", "snd_max", "snd_wnd", "max_window", "sndq", "fin_pending", "fin_sent",
        "fin_seq", "nospace", "mss", "dupacks", "recover", "loss_recovery", "irs", "rcv_nxt",
        "rcvq", "ooo", "rcv_wnd_edge", "rcv_wup", "rcv_mss", "quickacks", "last_data_time", "ato", "pingpong",
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
        self.ooo: list[tuple[int, bytes, int]] | tuple[tuple[int, bytes, int], ...] = NO_SEGMENTS
        self.rcv_wnd_edge = 0  # right edge of the window we last advertised
        self.rcv_wup = 0  # rcv_nxt when we last sent an ACK
        self.rcv_mss = TCP_MSS_DEFAULT
        self.quickacks = TCP_MAX_QUICKACKS
        self.last_data_time = -1  # icsk_ack.lrcvtime: when in-order data last arrived
        # icsk_ack.ato, 0 until the first data; and icsk_ack.pingpong, the count of replies sent
        # within `ato` of receiving (interactive mode from TCP_PINGPONG_THRESH on).
        self.ato = 0
        self.pingpong = 0
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
        self.accept_queue: collections.deque[TcpSocket] | tuple[()] = ()
        # Only a listener gets a dict (listen()); every other socket shares a read-only empty
        # one, so a write where none belongs raises instead of passing silently.
        self.syn_queue: dict[Address, RequestSock] | Mapping[Address, RequestSock] = NO_REQUESTS
        self.parent: TcpSocket | None = None
        # who to wake
        # Empty tuples until something watches or waits: most sockets of a big simulation have
        # one watcher (the server's epoll) or none, and no blocked caller (docs/benchmarks.md, P6).
        self.watchers: list[EpItem] | tuple[()] = ()
        self.waiters: list[Any] | tuple[()] = ()
        self._co: SocketCoroutines | None = None

    def __repr__(self) -> str:
        local = f"{self.local[0]}:{self.local[1]}" if self.local else "-"
        remote = f" -> {self.remote[0]}:{self.remote[1]}" if self.remote else ""
        return f"<simnet.socket fd={self.fd} {self.state} {local}{remote}>"

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
            if shut & SEND_SHUTDOWN or self.writable():
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
            waiters, self.waiters = self.waiters, ()
            for event in waiters:
                if not event.triggered:
                    event.succeed()

    def _check_write_space(self) -> None:
        # tcp_check_space -> tcp_new_space -> sk_stream_write_space: only if someone ran out of
        # space (SOCK_NOSPACE) and only once the 2/3 threshold holds again.
        if self.nospace and self.writable():
            self.nospace = False
            self.wake(KEY_OUT)

    # -- the fd -------------------------------------------------------------------------------

    def fileno(self) -> int:
        return self.fd

    def _check_fd(self) -> None:
        if self.closed_fd:
            raise_errno(errno.EBADF)

    def _install_fd(self) -> int:
        """The socket's first fd (socket() or accept()): the lowest free one (alloc_fd)."""
        self.fd = self.host.allocate_fd(cast("TcpSocket", self))
        self.refs = 1
        return self.fd

    def _hold_port(self) -> None:
        assert self.local is not None
        if not self.port_held:
            self.host.take_port(cast("TcpSocket", self), self.local[1])
            self.port_held = True

    def _release_port(self) -> None:
        if self.port_held and self.local is not None:
            self.host.free_port(cast("TcpSocket", self), self.local[1])
            self.port_held = False

    def _sock_error(self) -> int:
        code, self.err = self.err, 0
        return code

    # -- blocking machinery -------------------------------------------------------------------

    def _wait_event(self, deadline: int | None = None) -> Any:
        event = self.net.wait_event(deadline)
        waiters = self.waiters
        if isinstance(waiters, tuple):
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
        if timeout is None or timeout == 0 or flags & MSG_DONTWAIT:
            try:
                return attempt()
            except BlockingIOError:
                if timeout == 0 or flags & MSG_DONTWAIT:
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
