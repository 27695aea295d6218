"""A simulated socket that *is* a `socket.socket`, for programs that check or subclass it.

asyncio and the frameworks on it take whatever `socket.socket(...)` returns, test it with
`isinstance(sock, socket.socket)`, read `.family/.type/.proto`, and call the C methods by name.
`SimSocket` subclasses the real class but is made with `_socket.socket.__new__` only, which
opens nothing (the C object's fd is -1; it is `__init__` that would call socket(2)). Every
method a program calls is overridden to run on the simulated kernel's `TcpSocket`; any C method
left over would act on fd -1 and fail with EBADF, so nothing can reach a real file by accident.
"""

from __future__ import annotations

import errno
import os
import socket as _socket
from typing import TYPE_CHECKING, Any

from simnet.kernel.errors import raise_errno

if TYPE_CHECKING:
    from simnet.kernel.host import Host
    from simnet.kernel.tcp import DupSocket, TcpSocket

_RealSocket = _socket.socket
_CSocket = _socket.socket.__mro__[1]  # _socket.socket, the C type
assert _CSocket.__module__ == "_socket"


class SimSocket(_RealSocket):
    """`socket.socket` on a simulated host: the methods of Python's socket, Linux's semantics."""

    __slots__ = ("_sim", "_host", "_family", "_type", "_proto", "_fd")

    _sim: TcpSocket | DupSocket | None
    _host: Host
    _family: int
    _type: int
    _proto: int
    _fd: int

    def __new__(cls, *args: Any, **kwargs: Any) -> SimSocket:
        return _CSocket.__new__(cls)  # type: ignore[no-any-return,call-overload]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        # Never socket.socket.__init__: that would open a real socket. `wrap` fills the fields.
        pass

    @classmethod
    def wrap(cls, host: Host, sim: TcpSocket | DupSocket, proto: int | None = None) -> SimSocket:
        sock = cls.__new__(cls)
        sock._sim = sim
        sock._host = host
        sock._family = _socket.AF_INET
        sock._type = _socket.SOCK_STREAM
        sock._proto = sim.proto if proto is None else proto
        sock._fd = sim.fileno()
        sock._io_refs = 0  # type: ignore[attr-defined]
        sock._closed = False
        return sock

    # -- what socket.socket reads ---------------------------------------------------------------

    @property
    def family(self) -> _socket.AddressFamily:
        return _socket.AddressFamily(self._family)

    @property
    def type(self) -> _socket.SocketKind:
        return _socket.SocketKind(self._type)

    @property
    def proto(self) -> int:
        return self._proto

    @property
    def timeout(self) -> float | None:
        return self.gettimeout()

    @property
    def host(self) -> Host:
        """The simulated host this socket lives on."""
        return self._host

    @property
    def kernel_socket(self) -> TcpSocket | DupSocket:
        """The simulated kernel's socket under this object (for inspection: state, queues)."""
        return self._live()

    def __repr__(self) -> str:
        sim = self._sim
        state = "closed" if sim is None else repr(sim)
        return f"<simnet.aio.SimSocket host={self._host.ip} {state}>"

    def __getstate__(self) -> Any:
        raise TypeError(f"cannot pickle {type(self).__name__!r} object")

    def _live(self) -> TcpSocket | DupSocket:
        sim = self._sim
        if sim is None:
            raise_errno(errno.EBADF)
        return sim

    def fileno(self) -> int:
        return -1 if self._sim is None else self._fd

    # -- close, detach, dup ---------------------------------------------------------------------

    def _real_close(self, _ss: Any = None) -> None:
        sim = self._sim
        if sim is not None:
            self._sim = None
            sim.close()

    def close(self) -> None:
        # socket.socket.close: the last makefile() reference closes the fd.
        self._closed = True
        if self._io_refs <= 0:  # type: ignore[attr-defined]
            self._real_close()

    def detach(self) -> int:
        """The fd stays open on its host and is returned; this object is closed (as Linux)."""
        sim = self._sim
        if sim is None:
            return -1
        self._sim = None
        self._closed = True
        return self._fd

    def dup(self) -> SimSocket:
        return SimSocket.wrap(self._host, self._live().dup(), self._proto)

    def accept(self) -> tuple[SimSocket, tuple[str, int]]:
        child, address = self._live().accept()
        # CPython's accept builds the new object with the listener's family, type and proto.
        return SimSocket.wrap(self._host, child, self._proto), address

    def _accept(self) -> tuple[int, tuple[str, int]]:
        child, address = self._live().accept()
        return child.fileno(), address

    # -- the rest of the API, forwarded ---------------------------------------------------------

    def bind(self, address: Any) -> None:
        self._live().bind(address)

    def listen(self, *args: Any) -> None:
        self._live().listen(*args)

    def connect(self, address: Any) -> None:
        self._live().connect(address)

    def connect_ex(self, address: Any) -> int:
        if self._sim is None:
            return errno.EBADF
        return self._sim.connect_ex(address)

    def recv(self, bufsize: int, flags: int = 0) -> bytes:
        return self._live().recv(bufsize, flags)

    def recv_into(self, buffer: Any, nbytes: int = 0, flags: int = 0) -> int:
        return self._live().recv_into(buffer, nbytes, flags)

    def recvfrom(self, bufsize: int, flags: int = 0) -> tuple[bytes, Any]:
        return self._live().recv(bufsize, flags), None  # TCP: no source address (Linux: None)

    def recvfrom_into(self, buffer: Any, nbytes: int = 0, flags: int = 0) -> tuple[int, Any]:
        return self._live().recv_into(buffer, nbytes, flags), None

    def send(self, data: Any, flags: int = 0) -> int:
        return self._live().send(data, flags)

    def sendall(self, data: Any, flags: int = 0) -> None:
        self._live().sendall(data, flags)

    def sendto(self, data: Any, *args: Any) -> int:
        # TCP ignores the address of sendto on a connected socket (tcp_sendmsg never reads it).
        flags = args[0] if len(args) == 2 else 0
        return self._live().send(data, flags)

    def sendmsg(self, buffers: Any, ancdata: Any = (), flags: int = 0, address: Any = None) -> int:
        return self._live().sendmsg(buffers, ancdata, flags, address)

    def recvmsg(self, bufsize: int, ancbufsize: int = 0, flags: int = 0) -> Any:
        return self._live().recvmsg(bufsize, ancbufsize, flags)

    def recvmsg_into(self, buffers: Any, ancbufsize: int = 0, flags: int = 0) -> Any:
        return self._live().recvmsg_into(buffers, ancbufsize, flags)

    def sendfile(self, file: Any, offset: int = 0, count: int | None = None) -> int:
        # os.sendfile would need a real fd: send through the buffers instead, as socket.sendfile
        # itself does where sendfile(2) is unavailable.
        return self._sendfile_use_send(file, offset, count)  # type: ignore[attr-defined,no-any-return]

    def shutdown(self, how: int) -> None:
        self._live().shutdown(how)

    def getsockname(self) -> tuple[str, int]:
        return self._live().getsockname()

    def getpeername(self) -> tuple[str, int]:
        return self._live().getpeername()

    def setsockopt(self, level: int, optname: int, value: Any, optlen: int | None = None) -> None:
        self._live().setsockopt(level, optname, value, optlen)

    def getsockopt(self, level: int, optname: int, buflen: int | None = None) -> Any:
        if buflen is None:
            return self._live().getsockopt(level, optname)
        return self._live().getsockopt(level, optname, buflen)

    def setblocking(self, flag: bool) -> None:
        self._live().setblocking(flag)

    def getblocking(self) -> bool:
        return self._live().getblocking()

    def settimeout(self, value: float | None) -> None:
        self._live().settimeout(value)

    def gettimeout(self) -> float | None:
        if self._sim is None:
            return None
        return self._sim.gettimeout()

    def set_inheritable(self, inheritable: bool) -> None:
        self._live()  # no exec() in a simulation: nothing to inherit

    def get_inheritable(self) -> bool:
        self._live()
        return False


def check_not_simulated(fd: int, call: str) -> None:
    """Refuse a real-OS call on a simulated fd with a message that says what happened."""
    from simnet.kernel.settings import DISTINCT_FD_BASE

    if isinstance(fd, int) and fd >= DISTINCT_FD_BASE:
        raise OSError(
            errno.EBADF,
            f"{os.strerror(errno.EBADF)}: {call}({fd}): fd {fd} is a simulated socket (simnet.aio); "
            "the real OS cannot reach it -- use the socket object",
        )
