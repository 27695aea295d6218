"""Recording a program's socket syscalls into a trace: in simulation, and (simnet.aio.live) for real.

Both recorders sit at the same boundary, the methods of `socket.socket` and the selector's epoll,
and write the same records (docs/trace-format.md, "Program traces"):

* `RecordingSocket` is a mixin over a socket class -- `SimSocket` in simulation, the real
  `socket.socket` when recording live -- whose every method calls the real one and hands the
  request and its outcome (value or errno) to the class's `_recorder`.
* `SimRecorder` is what `simnet.aio.run(..., trace="run.jsonl")` makes: the world's sockets are
  made of its socket class and its selector records the epoll calls, each record carrying the
  simulated host (by name) that made it, at the network's virtual time.

Nothing here costs anything when tracing is off: the world then makes plain `SimSocket`s and a
plain `SimSelector` (one `is None` test per socket made, none per call).
"""

from __future__ import annotations

import errno
import math
import os
import selectors
import socket as _socket
import sys
from typing import TYPE_CHECKING, Any

from simnet.aio.loop import SimSelector
from simnet.aio.socket import SimSocket
from simnet.server import syscalls as sc
from simnet.trace.codec import TraceHeader
from simnet.trace.writer import TraceWriter

if TYPE_CHECKING:
    from simnet.aio.world import World

EPOLLIN = sc.EPOLLIN
EPOLLOUT = sc.EPOLLOUT
_READ = selectors.EVENT_READ
_WRITE = selectors.EVENT_WRITE


def errno_name(exc: BaseException) -> str:
    """The errno name a trace records for an exception from a socket call."""
    if isinstance(exc, _socket.gaierror) and isinstance(exc.errno, int):
        # EAI_* codes are not errnos, and the format's names have no underscore: EAI_NONAME ->
        # "EAINONAME" (errno_exception maps it back).
        for name in dir(_socket):
            if name.startswith("EAI_") and getattr(_socket, name) == exc.errno:
                return "EAI" + name[4:].replace("_", "")
        return "EAIFAIL"
    code = getattr(exc, "errno", None)
    if isinstance(code, int):
        known = errno.errorcode.get(code)
        if known is not None:
            return known
    if isinstance(exc, TimeoutError):
        return "ETIMEDOUT"  # socket.timeout carries no errno
    return "EIO"


def errno_exception(name: str) -> OSError:
    """The exception a program sees for a recorded errno name (BlockingIOError for EAGAIN...)."""
    if name.startswith("EAI"):
        for attr in dir(_socket):
            if attr.startswith("EAI_") and "EAI" + attr[4:].replace("_", "") == name:
                code = getattr(_socket, attr)
                return _socket.gaierror(code, _socket_gai_message(code))
        return _socket.gaierror(_socket.EAI_FAIL, "Non-recoverable failure in name resolution")
    code = getattr(errno, name, None)
    if not isinstance(code, int):
        return OSError(f"[{name}] (an errno this system does not know)")
    return OSError(code, os.strerror(code))  # OSError(errno, ...) is BlockingIOError for EAGAIN, etc.


def _socket_gai_message(code: int) -> str:
    messages = {
        getattr(_socket, "EAI_NONAME", -2): "Name or service not known",
        getattr(_socket, "EAI_AGAIN", -3): "Temporary failure in name resolution",
        getattr(_socket, "EAI_SERVICE", -8): "Servname not supported for ai_socktype",
        getattr(_socket, "EAI_FAMILY", -6): "ai_family not supported",
    }
    return messages.get(code, "Name resolution failed")


def address_parts(address: Any) -> tuple[str, int]:
    """(host, port) of a socket address as Bind and Connect record it: IPv6's flowinfo and
    scope id are left out; an AF_UNIX path is the host, with port -1."""
    if isinstance(address, tuple) and len(address) >= 2:
        host, port = address[0], address[1]
        if isinstance(host, bytes):
            host = host.decode("idna")
        return ("" if host is None else str(host)), int(port)
    if isinstance(address, (str, bytes)):
        return (address.decode("utf-8", "surrogateescape") if isinstance(address, bytes) else address), -1
    return repr(address), -1


def plain(value: Any) -> Any:
    """A call's return value as the trace holds it: tuples of ints, strs and bytes."""
    kind = type(value)
    if value is None or kind is int or kind is str or kind is bytes:
        return value
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):  # an IntEnum (AddressFamily, SocketKind)
        return int(value)
    if isinstance(value, (tuple, list)):
        return tuple(plain(v) for v in value)
    if isinstance(value, (bytearray, memoryview)):
        return bytes(value)
    return str(value)


def epoll_timeout_ms(timeout: float | None) -> int:
    """The timeout epoll_wait gets for a selector's select(timeout), as EpollSelector rounds it."""
    if timeout is None:
        return -1
    if timeout <= 0:
        return 0
    return math.ceil(timeout * 1e3)


class Recording:
    """What `RecordingSocket` calls: one record per socket call."""

    def ok(self, sock: Any, request: Any, value: Any) -> None:
        raise NotImplementedError

    def failed(self, sock: Any, request: Any, exc: BaseException) -> None:
        raise NotImplementedError


class RecordingSocket:
    """Mixin over a socket class: each call goes to the real method and is recorded, with its
    outcome, by `_recorder` (a class attribute). A call that raises something other than
    OSError (a TypeError for a bad argument) never reached the kernel and is not recorded."""

    # No instance fields, so that a socket made as a plain SimSocket (or socket.socket) can be
    # turned into its recording subclass by assigning __class__.
    __slots__ = ()
    _recorder: Recording

    def accept(self) -> Any:
        fd = self.fileno()  # type: ignore[attr-defined]
        try:
            child, address = super().accept()  # type: ignore[misc]
        except OSError as exc:
            self._recorder.failed(self, sc.Accept(fd=fd), exc)
            raise
        if type(child) is not type(self):
            child.__class__ = type(self)  # the accepted socket records too
        self._recorder.ok(self, sc.Accept(fd=fd), (child.fileno(), plain(address)))
        return child, address

    def bind(self, address: Any) -> None:
        host, port = address_parts(address)
        request = sc.Bind(fd=self.fileno(), host=host, port=port)  # type: ignore[attr-defined]
        try:
            super().bind(address)  # type: ignore[misc]
        except OSError as exc:
            self._recorder.failed(self, request, exc)
            raise
        self._recorder.ok(self, request, None)

    def listen(self, *args: Any) -> None:
        backlog = int(args[0]) if args else -1
        request = sc.Listen(fd=self.fileno(), backlog=backlog)  # type: ignore[attr-defined]
        try:
            super().listen(*args)  # type: ignore[misc]
        except OSError as exc:
            self._recorder.failed(self, request, exc)
            raise
        self._recorder.ok(self, request, None)

    def connect(self, address: Any) -> None:
        host, port = address_parts(address)
        request = sc.Connect(fd=self.fileno(), host=host, port=port)  # type: ignore[attr-defined]
        try:
            super().connect(address)  # type: ignore[misc]
        except OSError as exc:
            self._recorder.failed(self, request, exc)
            raise
        self._recorder.ok(self, request, None)

    def connect_ex(self, address: Any) -> int:
        host, port = address_parts(address)
        request = sc.Connect(fd=self.fileno(), host=host, port=port)  # type: ignore[attr-defined]
        code: int = super().connect_ex(address)  # type: ignore[misc]
        if code:
            self._recorder.failed(self, request, OSError(code, os.strerror(code)))
        else:
            self._recorder.ok(self, request, None)
        return code

    def recv(self, bufsize: int, flags: int = 0) -> bytes:
        fd = self.fileno()  # type: ignore[attr-defined]
        try:
            data: bytes = super().recv(bufsize, flags)  # type: ignore[misc]
        except OSError as exc:
            self._recorder.failed(self, sc.Recv(fd=fd, size=bufsize), exc)
            raise
        self._recorder.ok(self, sc.Recv(fd=fd, size=bufsize), data)
        return data

    def recv_into(self, buffer: Any, nbytes: int = 0, flags: int = 0) -> int:
        fd = self.fileno()  # type: ignore[attr-defined]
        size = nbytes or memoryview(buffer).nbytes
        try:
            count: int = super().recv_into(buffer, nbytes, flags)  # type: ignore[misc]
        except OSError as exc:
            self._recorder.failed(self, sc.Recv(fd=fd, size=size), exc)
            raise
        with memoryview(buffer) as view:
            data = view.cast("B")[:count].tobytes()
        self._recorder.ok(self, sc.Recv(fd=fd, size=size), data)
        return count

    def send(self, data: Any, flags: int = 0) -> int:
        request = sc.Send(fd=self.fileno(), data=bytes(data))  # type: ignore[attr-defined]
        try:
            count: int = super().send(data, flags)  # type: ignore[misc]
        except OSError as exc:
            self._recorder.failed(self, request, exc)
            raise
        self._recorder.ok(self, request, count)
        return count

    def sendall(self, data: Any, flags: int = 0) -> None:
        request = sc.Send(fd=self.fileno(), data=bytes(data))  # type: ignore[attr-defined]
        try:
            super().sendall(data, flags)  # type: ignore[misc]
        except OSError as exc:
            self._recorder.failed(self, request, exc)
            raise
        self._recorder.ok(self, request, len(request.data))

    def sendmsg(self, buffers: Any, ancdata: Any = (), flags: int = 0, address: Any = None) -> int:
        # asyncio 3.12+ writes through sendmsg(buffers): recorded as the one Send it amounts to.
        buffers = list(buffers)
        request = sc.Send(fd=self.fileno(), data=b"".join(bytes(b) for b in buffers))  # type: ignore[attr-defined]
        try:
            if address is None:
                count: int = super().sendmsg(buffers, ancdata, flags)  # type: ignore[misc]
            else:
                count = super().sendmsg(buffers, ancdata, flags, address)  # type: ignore[misc]
        except OSError as exc:
            self._recorder.failed(self, request, exc)
            raise
        self._recorder.ok(self, request, count)
        return count

    def shutdown(self, how: int) -> None:
        request = sc.Shutdown(fd=self.fileno(), how=int(how))  # type: ignore[attr-defined]
        try:
            super().shutdown(how)  # type: ignore[misc]
        except OSError as exc:
            self._recorder.failed(self, request, exc)
            raise
        self._recorder.ok(self, request, None)

    def _real_close(self, *args: Any) -> None:
        fd = self.fileno()  # type: ignore[attr-defined]
        try:
            super()._real_close(*args)  # type: ignore[misc]
        except OSError as exc:
            if fd >= 0:
                self._recorder.failed(self, sc.Close(fd=fd), exc)
            raise
        if fd >= 0:
            self._recorder.ok(self, sc.Close(fd=fd), None)

    def getsockname(self) -> Any:
        request = sc.GetSockName(fd=self.fileno())  # type: ignore[attr-defined]
        try:
            address = super().getsockname()  # type: ignore[misc]
        except OSError as exc:
            self._recorder.failed(self, request, exc)
            raise
        self._recorder.ok(self, request, plain(address))
        return address

    def getpeername(self) -> Any:
        request = sc.GetPeerName(fd=self.fileno())  # type: ignore[attr-defined]
        try:
            address = super().getpeername()  # type: ignore[misc]
        except OSError as exc:
            self._recorder.failed(self, request, exc)
            raise
        self._recorder.ok(self, request, plain(address))
        return address

    def setsockopt(self, level: int, optname: int, value: Any, optlen: int | None = None) -> None:
        fd = self.fileno()  # type: ignore[attr-defined]
        request: Any
        if isinstance(value, (bytes, bytearray, memoryview)):
            request = sc.SetSockOptBytes(fd=fd, level=int(level), name=int(optname), value=bytes(value))
        elif value is None:
            request = sc.SetSockOptBytes(fd=fd, level=int(level), name=int(optname), value=b"\0" * (optlen or 0))
        else:
            request = sc.SetSockOpt(fd=fd, level=int(level), name=int(optname), value=int(value))
        try:
            if optlen is None:
                super().setsockopt(level, optname, value)  # type: ignore[misc]
            else:
                super().setsockopt(level, optname, value, optlen)  # type: ignore[misc]
        except OSError as exc:
            self._recorder.failed(self, request, exc)
            raise
        self._recorder.ok(self, request, None)

    def getsockopt(self, level: int, optname: int, buflen: int | None = None) -> Any:
        request = sc.GetSockOpt(fd=self.fileno(), level=int(level), name=int(optname), buflen=buflen or 0)  # type: ignore[attr-defined]
        try:
            value = (
                super().getsockopt(level, optname)  # type: ignore[misc]
                if buflen is None
                else super().getsockopt(level, optname, buflen)  # type: ignore[misc]
            )
        except OSError as exc:
            self._recorder.failed(self, request, exc)
            raise
        self._recorder.ok(self, request, plain(value))
        return value


def _python() -> str:
    return ".".join(str(p) for p in sys.version_info[:3])


class SimRecorder(Recording):
    """The trace of a simnet.aio run: every socket and epoll call of every simulated host, at the
    network's virtual time, each record naming its host. Made by `new_event_loop(trace=...)`."""

    def __init__(self, world: World, target: Any, *, seed: int, options: dict[str, Any] | None = None) -> None:
        self.world = world
        meta = {key: value if isinstance(value, (int, float, str, bool, type(None))) else repr(value)
                for key, value in (options or {}).items()}  # fmt: skip
        header = TraceHeader.for_program(
            backend="simnet.aio",
            program={"argv": [str(a) for a in sys.argv], "python": _python()},
            seed=seed,
            clock_origin=0,
            meta=meta,
        )
        self.writer = TraceWriter(target, header)
        # The world's sockets are of this class while tracing: SimSocket, recording each call.
        self.socket_class: type[Any] = type("TracedSimSocket", (RecordingSocket, SimSocket), {
            "__slots__": (), "_recorder": self, "__module__": __name__,
        })  # fmt: skip
        self.closed = False

    # -- the records ------------------------------------------------------------------------

    def _host(self, sock: Any) -> str:
        return self.world.name_of(sock._host.ip)

    def _now(self) -> int:
        return self.world.net.now_ns

    def ok(self, sock: Any, request: Any, value: Any) -> None:
        if not self.closed:
            self.writer.record(request, sc.Result(value=value, now=self._now()), self._host(sock))

    def failed(self, sock: Any, request: Any, exc: BaseException) -> None:
        if not self.closed:
            self.writer.record(request, sc.Result(error=errno_name(exc), now=self._now()), self._host(sock))

    def host_call(self, host_name: str, request: Any, value: Any) -> None:
        if not self.closed:
            self.writer.record(request, sc.Result(value=value, now=self._now()), host_name)

    # -- hooks: the fence's socket factories and the loop's selector --------------------------

    def opened(self, sock: Any, family: int, type: int, proto: int, fileno: int | None) -> Any:
        """A socket the program made (socket.socket(...)): it records from now on."""
        sock.__class__ = self.socket_class
        if fileno is None:
            request = sc.OpenSocket(family=_arg(family, _socket.AF_INET), type=_arg(type, _socket.SOCK_STREAM),
                                    proto=_arg(proto, 0))  # fmt: skip
            self.ok(sock, request, sock.fileno())
        return sock

    def paired(self, a: Any, b: Any, family: int, type: int, proto: int) -> tuple[Any, Any]:
        a.__class__ = b.__class__ = self.socket_class
        request = sc.SocketPair(family=int(family), type=int(type), proto=int(proto))
        self.ok(a, request, (a.fileno(), b.fileno()))
        return a, b

    def selector(self, world: World) -> SimSelector:
        return TracedSimSelector(world, self)

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        try:
            self.writer.record_exit()
        finally:
            self.writer.close()


def _arg(value: Any, default: int) -> int:
    return default if value in (-1, None) else int(value)


class TracedSimSelector(SimSelector):
    """SimSelector, recording each host's epoll calls (EpollCreate, EpollCtl, EpollWait)."""

    def __init__(self, world: World, recorder: SimRecorder) -> None:
        super().__init__(world)
        self._recorder = recorder

    def _epoll_for(self, host: Any) -> Any:
        known = self._epolls.get(host.ip)
        ep = super()._epoll_for(host)
        if ep is not known:
            self._recorder.host_call(self._world.name_of(host.ip), sc.EpollCreate(), ep.fileno())
        return ep

    def _ctl(self, fd: int, op: str, events: int) -> None:
        try:
            host = self._host_of(fd)
        except Exception:  # noqa: BLE001 -- closed already: nothing reached an epoll
            return
        ep = self._epolls.get(host.ip)
        if ep is None:
            return
        mask = (EPOLLIN if events & _READ else 0) | (EPOLLOUT if events & _WRITE else 0)
        request = sc.EpollCtl(epfd=ep.fileno(), op=op, fd=fd, mask=mask if op != sc.EPOLL_CTL_DEL else 0)
        self._recorder.host_call(self._world.name_of(host.ip), request, None)

    def register(self, fileobj: Any, events: int, data: Any = None) -> selectors.SelectorKey:
        key = super().register(fileobj, events, data)
        self._ctl(key.fd, sc.EPOLL_CTL_ADD, events)
        return key

    def unregister(self, fileobj: Any) -> selectors.SelectorKey:
        key = super().unregister(fileobj)
        self._ctl(key.fd, sc.EPOLL_CTL_DEL, 0)
        return key

    def modify(self, fileobj: Any, events: int, data: Any = None) -> selectors.SelectorKey:
        before = self._fd_to_key.get(self._fileobj_lookup(fileobj))
        key = super().modify(fileobj, events, data)
        if before is not None and before.events != events:
            self._ctl(key.fd, sc.EPOLL_CTL_MOD, events)
        return key

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        ready = super().select(timeout)
        if not ready:
            return ready  # a timer's turn: nothing for a host's timeline
        by_host: dict[str, list[tuple[int, int]]] = {}
        for key, events in ready:
            try:
                host = self._host_of(key.fd)
            except Exception:  # noqa: BLE001
                continue
            mask = (EPOLLIN if events & _READ else 0) | (EPOLLOUT if events & _WRITE else 0)
            by_host.setdefault(host.ip, []).append((key.fd, mask))
        limit = max(len(self._fd_to_key), 1)
        wait = epoll_timeout_ms(timeout)
        for ip, events_of in by_host.items():
            ep = self._epolls.get(ip)
            request = sc.EpollWait(epfd=-1 if ep is None else ep.fileno(), max_events=limit, timeout_ms=wait)
            self._recorder.host_call(self._world.name_of(ip), request, tuple(events_of))
        return ready
