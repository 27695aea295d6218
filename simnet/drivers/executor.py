"""The syscall executor: one request on an fd table of socket-API objects, one `Result` back.

A driver holds no protocol or connection logic. It turns each request into the one socket or
epoll call it names, and the outcome into a `Result`: the return value, or the errno *name*
(`OSError.errno` looked up in `errno.errorcode`), with the backend's clock. The machine decides
everything else. The executor is shared by the simulated driver (`simnet.drivers.simulated.SimDriver`, on
simulated sockets) and by realnet (on real ones), so the two backends differ only in where
sockets come from and how EpollWait waits. It lives here, apart from both, because realnet must
not load the simulated kernel: this module imports neither simpy nor `socket` (tests/test_layers.py).
"""

from __future__ import annotations

import errno
import struct
from collections.abc import Callable
from typing import Any

from simnet.server import syscalls as sc


def errno_name(exc: OSError) -> str:
    """The errno name a failed syscall's result carries ("ECONNRESET"), for every backend: an
    errno Python has no name for is "E<number>", an OSError without one (a library's) is EIO."""
    code = exc.errno
    if code is None:
        return "EIO"
    return errno.errorcode.get(code, f"E{code}")


class SyscallExecutor:
    """Executes the non-waiting syscalls against an fd table of socket-API objects.

    `new_socket()` returns a socket-API object (real or simulated); `new_epoll()` an epoll-API
    object. `fds` maps each fd the machine holds to its object, because a machine speaks fds.
    """

    def __init__(
        self, new_socket: Callable[[], Any], new_epoll: Callable[[], Any], clock_ns: Callable[[], int]
    ) -> None:
        self.new_socket = new_socket
        self.new_epoll = new_epoll
        self.clock_ns = clock_ns
        self.fds: dict[int, Any] = {}
        self.shutdown = False  # set by the owner (a signal, the end of a run); travels in Results
        self._table: dict[type, Callable[[Any], Any]] = {
            sc.Socket: self._socket,
            sc.SetSockOpt: self._setsockopt,
            sc.Bind: lambda r: self.fds[r.fd].bind((r.host, r.port)),
            sc.Listen: lambda r: self.fds[r.fd].listen(r.backlog),
            sc.GetSockName: lambda r: tuple(self.fds[r.fd].getsockname()[:2]),
            sc.Accept: self._accept,
            sc.Recv: lambda r: self.fds[r.fd].recv(r.size),
            sc.Send: lambda r: self.fds[r.fd].send(r.data),
            sc.Shutdown: lambda r: self.fds[r.fd].shutdown(r.how),
            sc.Close: self._close,
            sc.EpollCreate: self._epoll_create,
            sc.EpollCtl: self._epoll_ctl,
        }

    def execute(self, request: sc.Syscall) -> sc.Result:
        """Run one non-waiting syscall; EpollWait belongs to the driver (it waits)."""
        try:
            value = self._table[type(request)](request)
        except OSError as exc:
            return sc.Result(error=errno_name(exc), now=self.clock_ns(), shutdown=self.shutdown)
        except KeyError as exc:
            if type(request) not in self._table:
                raise TypeError(f"no such syscall: {request!r}") from None
            # An fd the machine never opened, or already closed: what the kernel says to that.
            del exc
            return sc.Result(error="EBADF", now=self.clock_ns(), shutdown=self.shutdown)
        return sc.Result(value=value, now=self.clock_ns(), shutdown=self.shutdown)

    def _socket(self, request: sc.Socket) -> int:
        sock = self.new_socket()
        sock.setblocking(False)  # socket(..., SOCK_NONBLOCK): an event loop never blocks in a syscall
        fd: int = sock.fileno()
        self.fds[fd] = sock
        return fd

    def _setsockopt(self, request: sc.SetSockOpt) -> None:
        value = request.value
        # SO_LINGER's struct linger is a pair; every other option an int.
        optval = struct.pack("ii", *value) if isinstance(value, tuple) else value
        self.fds[request.fd].setsockopt(request.level, request.name, optval)

    def _accept(self, request: sc.Accept) -> tuple[int, tuple[str, int]]:
        conn, addr = self.fds[request.fd].accept()
        conn.setblocking(False)  # accept4(..., SOCK_NONBLOCK)
        # Any: compiled, an int would be boxed anew for the table and for the result.
        fd: Any = conn.fileno()
        self.fds[fd] = conn
        return fd, (addr[0], addr[1])

    def _close(self, request: sc.Close) -> None:
        obj = self.fds.pop(request.fd)
        obj.close()

    def _epoll_create(self, request: sc.EpollCreate) -> int:
        ep = self.new_epoll()
        fd: int = ep.fileno()
        self.fds[fd] = ep
        return fd

    def _epoll_ctl(self, request: sc.EpollCtl) -> None:
        ep = self.fds[request.epfd]
        target = request.fd
        if target not in self.fds:
            raise OSError(errno.EBADF, "Bad file descriptor")
        if request.op == sc.EPOLL_CTL_ADD:
            ep.register(target, request.mask)
        elif request.op == sc.EPOLL_CTL_MOD:
            ep.modify(target, request.mask)
        elif request.op == sc.EPOLL_CTL_DEL:
            ep.unregister(target)
        else:
            raise OSError(errno.EINVAL, f"bad epoll_ctl op {request.op!r}")

    def wait_result(self, events: list[tuple[int, int]]) -> sc.Result:
        return sc.Result(value=tuple((fd, mask) for fd, mask in events), now=self.clock_ns(), shutdown=self.shutdown)

    def close_all(self) -> None:
        """Close whatever the machine left open (after a crash of the machine, say)."""
        for fd in sorted(self.fds):
            try:
                self.fds[fd].close()
            except OSError:
                pass
        self.fds.clear()
