"""TcpSocket, the class the rest of simnet uses, and the other handles on one socket.

TcpSocket puts the layers together -- TcpBase < TcpOutput < TcpInput < TcpListen < TcpApi <
TcpSendRecv, one line of single inheritance, which mypyc can compile (setup.py) -- and adds
what needs the whole class: dup() and its DupSocket (another fd for the same open file),
`co` and SocketCoroutines (the blocking calls for simulated processes).
"""

from __future__ import annotations

import errno
import functools
from collections.abc import Callable, Generator
from typing import Any, Concatenate, ParamSpec, TypeVar

from mypy_extensions import mypyc_attr

from simnet.kernel.errors import os_error, raise_errno
from simnet.kernel.segment import Address
from simnet.kernel.tcp.api import check_address, syscall
from simnet.kernel.tcp.constants import KEY_IN, KEY_OUT
from simnet.kernel.tcp.sendrecv import BytesLike, TcpSendRecv, as_bytes

_P = ParamSpec("_P")
_R = TypeVar("_R")


class TcpSocket(TcpSendRecv):
    """A simulated TCP socket with the methods of Python's `socket.socket`."""

    __slots__ = ()

    @property
    def co(self) -> SocketCoroutines:
        """The blocking calls as coroutines for simulated processes (made on first use: most
        sockets, such as accepted ones in a server driven by epoll, never need them)."""
        co = self._co
        if co is None:
            co = self._co = SocketCoroutines(self)
        return co

    def __enter__(self) -> TcpSocket:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    @syscall
    def dup(self) -> DupSocket:
        """dup(2): a new fd for the same open file. The socket lives until its last fd is
        closed, and epoll keys its interest by (fd, file), so a registration made through one
        fd survives that fd's close while another fd holds the file (epoll(7) Q6, LINUX.md §4).

        The blocking mode and timeout stay with the file, as O_NONBLOCK does in Linux; CPython
        keeps the timeout per object, which differs only when dups get different timeouts.
        """
        self.refs += 1
        return DupSocket(self, self.host.allocate_fd(self))


def _forward(body: Callable[Concatenate[TcpSocket, _P], _R]) -> Callable[Concatenate[DupSocket, _P], _R]:
    """TcpSocket's method `body` (a @syscall), called through a DupSocket's own fd."""
    raw: Callable[Concatenate[TcpSocket, _P], _R] = body.__wrapped__  # type: ignore[attr-defined]

    def through_dup(self: DupSocket, /, *args: _P.args, **kwargs: _P.kwargs) -> _R:
        if self.closed_fd:
            raise_errno(errno.EBADF)
        return raw(self._sock, *args, **kwargs)

    functools.update_wrapper(through_dup, raw)
    return through_dup


# A plain Python class even where this module is compiled: its methods are TcpSocket's, forwarded
# as class attributes, which a native class cannot hold, and nothing on it is a hot path.
@mypyc_attr(native_class=False)
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

    def send(self, data: BytesLike) -> Generator[Any, Any, int]:
        sock = self._sock
        self._handle._check_fd()
        payload = as_bytes(data)
        if sock.timeout_ns is None:
            return (yield from self.sendall(payload))
        return (yield from self._call(lambda: sock._send_now(payload), KEY_OUT))

    def sendall(self, data: BytesLike) -> Generator[Any, Any, int]:
        sock = self._sock
        self._handle._check_fd()
        payload = as_bytes(data)
        try:
            sent = sock._send_some(payload, 0)
        finally:
            sock.net.drain()
        if sent < len(payload):
            sent = yield from sock._send_all_gen(payload, sent)
        return sent

    def connect(self, address: tuple[str, int]) -> Generator[Any, Any, None]:
        sock = self._sock
        self._handle._check_fd()
        address = check_address(address, "connect")
        try:
            code = sock._connect_step(address, True)
        finally:
            sock.net.drain()
        if code in (errno.EINPROGRESS, errno.EALREADY) and sock.timeout_ns != 0:
            code = yield from sock._connect_wait_gen(address, code)
        if code:
            raise os_error(code)
