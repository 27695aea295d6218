"""TcpApi: the socket calls other than moving data, as Python's socket.socket spells them.

Blocking mode and timeout, bind (inet_bind), listen (inet_listen), accept (inet_csk_accept),
connect (__inet_stream_connect, tcp_v4_connect), shutdown (inet_shutdown), close (sock_close ->
tcp_close), the names, and setsockopt/getsockopt (sock_setsockopt, do_tcp_setsockopt). Also
`syscall`, the decorator that makes a method a call on an fd (fdget: EBADF once the fd is
closed), and `check_address`, which checks an address as CPython does.
"""

from __future__ import annotations

import collections
import errno
import functools
import socket as _socket
import struct
from collections.abc import Callable, Generator
from typing import TYPE_CHECKING, Any, Concatenate, ParamSpec, TypeVar, cast

from simnet.kernel.errors import os_error, raise_errno, timeout_error
from simnet.kernel.segment import Address
from simnet.kernel.tcp.constants import (
    CLOSE_WAIT,
    CLOSED,
    CLOSING,
    ESTABLISHED,
    FIN_WAIT1,
    FIN_WAIT2,
    KEY_ALL,
    KEY_IN,
    LAST_ACK,
    LISTEN,
    MS,
    NEED_RESET,
    RCV_SHUTDOWN,
    SEND_SHUTDOWN,
    SHUTDOWN_MASK,
    SS_CONNECTED,
    SS_CONNECTING,
    SS_UNCONNECTED,
    SYN_RECV,
    SYN_SENT,
    TCP_MSS_DEFAULT,
    TCP_TIMEOUT_INIT,
)
from simnet.kernel.tcp.listen import TcpListen

if TYPE_CHECKING:
    from simnet.kernel.tcp.base import TcpBase
    from simnet.kernel.tcp.socket import TcpSocket


def normalise_host(host: str) -> str:
    if host in ("", "0.0.0.0"):
        return "0.0.0.0"
    if host == "localhost":
        return "127.0.0.1"
    return host


def check_address(address: Any, what: str) -> tuple[str, int]:
    if not isinstance(address, tuple):
        raise TypeError(f"AF_INET address must be tuple, not {type(address).__name__}")
    if len(address) != 2:
        raise TypeError("AF_INET address must be a pair (host, port)")
    host, port = address
    if not isinstance(host, str):
        raise TypeError(f"str, bytes or bytearray expected, not {type(host).__name__}")
    if not isinstance(port, int):
        raise TypeError(f"'{type(port).__name__}' object cannot be interpreted as an integer")
    if not 0 <= port <= 65535:
        raise OverflowError(f"{what}(): port must be 0-65535.")
    return normalise_host(host), port


_P = ParamSpec("_P")
_R = TypeVar("_R")
_S = TypeVar("_S", bound="TcpBase")


def syscall(body: Callable[Concatenate[_S, _P], _R]) -> Callable[Concatenate[_S, _P], _R]:
    """A socket-API method: the fd is looked up first (fdget: EBADF once this fd is closed), then
    the body runs on the open file. A DupSocket runs the same bodies for its own fd through
    `__wrapped__`, so the check is the only part that belongs to the fd."""

    def checked(self: _S, /, *args: _P.args, **kwargs: _P.kwargs) -> _R:
        if self.closed_fd:
            raise_errno(errno.EBADF)
        return body(self, *args, **kwargs)

    functools.update_wrapper(checked, body)  # its name, its docstring, and __wrapped__
    return checked


class TcpApi(TcpListen):
    """The socket API except send and receive (see the module docstring)."""

    __slots__ = ()

    @syscall
    def setblocking(self, flag: bool) -> None:
        self.timeout_ns = None if flag else 0

    def getblocking(self) -> bool:
        return self.timeout_ns != 0

    @syscall
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

    @syscall
    def bind(self, address: tuple[str, int]) -> None:
        ip, port = check_address(address, "bind")
        try:
            if self.port_held or self.state != CLOSED:
                raise_errno(errno.EINVAL)
            if not self.host.is_local_address(ip):
                raise_errno(errno.EADDRNOTAVAIL)
            if port == 0:
                port = self.host.ephemeral_port()
            elif self.host.bind_conflict(cast("TcpSocket", self), ip, port):
                raise_errno(errno.EADDRINUSE)
            self.local = (ip, port)
            self.user_bound = True
            self._hold_port()
        finally:
            self.net.drain()

    @syscall
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
            elif self.host.bind_conflict(cast("TcpSocket", self), self.local[0], self.local[1], listening=True):
                raise_errno(errno.EADDRINUSE)
            self.backlog = backlog
            self.accept_queue = collections.deque()
            self.syn_queue = {}
            self.state = LISTEN
            self.host.listeners[self.local] = cast("TcpSocket", self)
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
            self.net.queue_watch(cast("TcpSocket", self))  # the accept queue shrank (Network.watch_queues)
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

    @syscall
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
        self.host.connections[(self.local, self.remote)] = cast("TcpSocket", self)
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

    @syscall
    def connect(self, address: tuple[str, int]) -> None:
        code = self._connect(address, "connect")
        if code:
            raise os_error(code)

    def connect_ex(self, address: tuple[str, int]) -> int:
        if self.closed_fd:
            return errno.EBADF  # CPython's connect_ex returns the errno of the failed syscall
        return self._connect(address, "connect_ex")

    def _connect(self, address: Any, what: str) -> int:
        address = check_address(address, what)
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

    # -- shutdown and close -------------------------------------------------------------------

    @syscall
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
            if state in NEED_RESET or (state in (CLOSING, LAST_ACK) and self.snd_nxt != self.snd_una):
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

    def detach(self) -> int:
        raise NotImplementedError("simnet sockets cannot be detached from their simulated host")

    # -- names and options --------------------------------------------------------------------

    @syscall
    def getsockname(self) -> Address:
        return self.local if self.local else ("0.0.0.0", 0)

    @syscall
    def getpeername(self) -> Address:
        if self.remote is None or self.state in (CLOSED, LISTEN, SYN_SENT):
            raise_errno(errno.ENOTCONN)
        return self.remote

    @syscall
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

    @syscall
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
