"""Drivers: execute the server machine's syscalls on a kernel, and nothing else.

A driver holds no protocol or connection logic. It turns each request into the one socket or
epoll call it names, and the outcome into a `Result`: the return value, or the errno *name*
(`OSError.errno` looked up in `errno.errorcode`), with the backend's clock. The machine decides
everything else. `SyscallExecutor` is shared by the simnet driver below and by realnet, so the
two backends differ only in where sockets come from and how EpollWait waits.
"""

from __future__ import annotations

import errno
import struct
from typing import Any, Callable, Generator, Protocol

from simnet.server import syscalls as sc


class SocketLike(Protocol):
    def fileno(self) -> int: ...


class SyscallExecutor:
    """Executes the non-waiting syscalls against an fd table of socket-API objects.

    `new_socket()` returns a socket-API object (real or simulated); `new_epoll()` an epoll-API
    object. `fds` maps each fd the machine holds to its object, because a machine speaks fds.
    """

    def __init__(self, new_socket: Callable[[], Any], new_epoll: Callable[[], Any], clock_ns: Callable[[], int]) -> None:
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
            code = exc.errno
            name = errno.errorcode.get(code, f"E{code}") if code is not None else "EIO"
            return sc.Result(error=name, now=self.clock_ns(), shutdown=self.shutdown)
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
        fd = sock.fileno()
        self.fds[fd] = sock
        return fd

    def _setsockopt(self, request: sc.SetSockOpt) -> None:
        value = request.value
        if isinstance(value, tuple):
            value = struct.pack("ii", *value)  # SO_LINGER's struct linger
        self.fds[request.fd].setsockopt(request.level, request.name, value)

    def _accept(self, request: sc.Accept) -> tuple[int, tuple[str, int]]:
        conn, addr = self.fds[request.fd].accept()
        conn.setblocking(False)  # accept4(..., SOCK_NONBLOCK)
        fd = conn.fileno()
        self.fds[fd] = conn
        return fd, (addr[0], addr[1])

    def _close(self, request: sc.Close) -> None:
        obj = self.fds.pop(request.fd)
        obj.close()

    def _epoll_create(self, request: sc.EpollCreate) -> int:
        ep = self.new_epoll()
        fd = ep.fileno()
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


class Machine(Protocol):
    def start(self) -> sc.Syscall: ...

    def step(self, result: sc.Result) -> sc.Syscall: ...


class SimDriver:
    """Runs a machine on a simulated host, as a simpy process: `host.process(driver.run())`.

    Every non-waiting syscall is instantaneous in virtual time; EpollWait sleeps in virtual time.
    `request_shutdown()` is the simulated SIGTERM: it cuts a sleeping EpollWait short, and every
    Result from then on carries shutdown=True. `on_syscall` sees each (request, result) -- a
    recorder, or a test.
    """

    def __init__(
        self,
        host: Any,
        machine: Machine,
        *,
        on_syscall: Callable[[sc.Syscall, sc.Result], None] | None = None,
    ) -> None:
        self.host = host
        self.machine = machine
        self.on_syscall = on_syscall
        env = host.net.env
        self.executor = SyscallExecutor(host.socket, host.epoll, lambda: env.now)
        self.syscalls = 0
        self.finished = False
        self._signal_pending = False  # like a signal: cuts short one epoll_wait, not every one

    def request_shutdown(self) -> None:
        self.executor.shutdown = True
        self._signal_pending = True
        for obj in list(self.executor.fds.values()):
            interrupt = getattr(obj, "interrupt", None)
            if interrupt is not None:
                interrupt()

    def run(self) -> Generator[Any, Any, int]:
        executor = self.executor
        machine = self.machine
        on_syscall = self.on_syscall
        request = machine.start()
        while type(request) is not sc.Exit:
            if type(request) is sc.EpollWait:
                ep = executor.fds.get(request.epfd)
                if ep is None:
                    result = sc.Result(error="EBADF", now=self.host.net.env.now, shutdown=executor.shutdown)
                else:
                    timeout_ns = -1 if request.timeout_ms < 0 else request.timeout_ms * 1_000_000
                    if self._signal_pending:
                        self._signal_pending = False
                        timeout_ns = 0  # the signal arrived between waits: this one returns at once
                    events = yield from ep.co.poll_ns(timeout_ns, request.max_events)
                    result = executor.wait_result(events)
            else:
                result = executor.execute(request)
            if on_syscall is not None:
                on_syscall(request, result)
            self.syscalls += 1
            request = machine.step(result)
        self.finished = True
        return self.syscalls
