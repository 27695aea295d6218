"""The fence: while a simulated loop runs, the process's networking reaches the simulation.

Libraries open sockets with `socket.socket(...)`, resolve with `socket.getaddrinfo`, read the
clock with `time.time()` and draw from `random`: none of them ask the event loop. While a
`SimEventLoop` runs (and only in its thread), the fence points those module attributes at the
simulation: sockets are made on the current task's simulated host, names resolve among the
simulated hosts, the clocks read virtual time, `time.sleep` lets virtual time pass, `random` and
`os.urandom` draw from the seed, and an `os.read`/`os.write`/`os.close` of a simulated fd fails
with a message instead of reaching a real file. When the loop stops, everything is put back.

Code in another thread, or after the loop stops, gets the real functions.
"""

from __future__ import annotations

import errno
import os
import random
import select as _select
import selectors
import socket as _socket
import threading
import time as _time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from simnet.aio.socket import SimSocket, check_not_simulated
from simnet.aio.world import current_host

if TYPE_CHECKING:
    from simnet.aio.world import World
    from simnet.kernel.host import Host

_RealSocket = _socket.socket
_real_getaddrinfo = _socket.getaddrinfo
_real: dict[str, Callable[..., Any]] = {
    "time": _time.time,
    "time_ns": _time.time_ns,
    "monotonic": _time.monotonic,
    "monotonic_ns": _time.monotonic_ns,
    "sleep": _time.sleep,
    "urandom": os.urandom,
    "read": os.read,
    "write": os.write,
    "close": os.close,
    "fstat": os.fstat,
    "dup": os.dup,
}

# The simulation the current thread runs, if any (a simulated loop runs in one thread).
_local = threading.local()
# How many simulations run in the process: while one does, another thread's real socket could
# carry a simulated address (10.0.0.x) onto the real network, so such calls are refused.
_running = 0


class FencedError(RuntimeError):
    """A simulated program made a call that would leave the simulation (a thread, a process,
    a real file or fd); the message names the call."""


def active_world() -> World | None:
    return getattr(_local, "world", None)


def _outside(call: str) -> None:
    """A networking call from a thread that runs no simulation: real, unless one is running."""
    if _running:
        raise FencedError(
            f"{call} from a thread outside the simulation while a simnet.aio simulation runs: a real "
            "thread is outside the simulation, and its socket would be a real one"
        )


def current_sim_host(world: World) -> Host:
    host = current_host.get()
    return host if host is not None else world.host("main")


class _SocketClass(type):
    """`isinstance(x, socket.socket)` keeps meaning "a socket" while the name is patched."""

    def __instancecheck__(cls, obj: Any) -> bool:
        return isinstance(obj, _RealSocket)

    def __subclasscheck__(cls, sub: type) -> bool:
        return issubclass(sub, _RealSocket)


class FencedSocket(_RealSocket, metaclass=_SocketClass):
    """What `socket.socket` names while the fence is up: a simulated socket in the simulation's
    thread, a real one anywhere else."""

    def __new__(cls, family: int = -1, type: int = -1, proto: int = -1, fileno: int | None = None) -> Any:
        world = active_world()
        if world is None:
            _outside("socket.socket()")
            return _RealSocket(family, type, proto, fileno)
        if world.recorder is not None:  # run(trace=...): the socket records its calls
            return world.recorder.opened(new_socket(world, family, type, proto, fileno), family, type, proto, fileno)
        return new_socket(world, family, type, proto, fileno)


def new_socket(world: World, family: int = -1, type: int = -1, proto: int = -1, fileno: int | None = None) -> SimSocket:
    host = current_sim_host(world)
    if fileno is not None:
        sim = host.fds.get(fileno) if isinstance(fileno, int) else None
        if sim is None or not hasattr(sim, "recv"):
            raise OSError(
                errno.EBADF,
                f"socket.socket(fileno={fileno!r}): not a simulated socket of host {world.name_of(host.ip)!r}; "
                "a real fd cannot enter the simulation",
            )
        if sim.fd != fileno or sim.closed_fd:  # type: ignore[union-attr]
            # The fd a dup() made and detach() let go: a handle for that fd on the same file,
            # taking over the reference the detached object held.
            from simnet.kernel.tcp import DupSocket

            return SimSocket.wrap(host, DupSocket(sim, fileno))  # type: ignore[arg-type]
        return SimSocket.wrap(host, sim)  # type: ignore[arg-type]
    family = _socket.AF_INET if family in (-1, None) else family
    type = _socket.SOCK_STREAM if type in (-1, None) else type
    proto = 0 if proto in (-1, None) else proto
    if family != _socket.AF_INET:
        raise OSError(
            errno.EAFNOSUPPORT,
            f"Address family not supported by protocol: socket.socket(family={_socket.AddressFamily(family)!r}) "
            "in a simnet.aio simulation, which models TCP over IPv4 (AF_INET) only",
        )
    if type & ~(_socket.SOCK_NONBLOCK | _socket.SOCK_CLOEXEC) != _socket.SOCK_STREAM:
        raise OSError(
            errno.ESOCKTNOSUPPORT,
            f"Socket type not supported: socket.socket(type={type!r}) in a simnet.aio simulation, "
            "which models TCP (SOCK_STREAM) only",
        )
    if proto not in (0, _socket.IPPROTO_TCP):
        raise OSError(errno.EPROTONOSUPPORT, f"Protocol not supported: socket.socket(proto={proto})")
    sim = host.socket(family, type, proto)
    return SimSocket.wrap(host, sim, proto)


def _socketpair(family: int = _socket.AF_UNIX, type: int = _socket.SOCK_STREAM, proto: int = 0) -> Any:
    world = active_world()
    if world is None:
        _outside("socket.socketpair()")
        return _real_socketpair(family, type, proto)
    host = current_sim_host(world)
    pair = getattr(host, "socketpair", None)
    if pair is None:
        raise OSError(errno.EOPNOTSUPP, "socket.socketpair(): not modelled by this simnet kernel")
    a, b = pair()
    if world.recorder is not None:
        return world.recorder.paired(SimSocket.wrap(host, a), SimSocket.wrap(host, b), family, type, proto)
    return SimSocket.wrap(host, a), SimSocket.wrap(host, b)


_real_socketpair = _socket.socketpair


def _redirect(
    real: Callable[..., Any], simulated: Callable[..., Any], *, networking: bool = False
) -> Callable[..., Any]:
    """`real`, except in the simulation's thread, where it is `simulated(world, *args)`. A
    `networking` call from another thread is refused while a simulation runs (_outside)."""

    def redirected(*args: Any, **kwargs: Any) -> Any:
        world = active_world()
        if world is None:
            if networking:
                _outside(f"socket.{real.__name__}({args[0]!r})" if args else f"socket.{real.__name__}()")
            return real(*args, **kwargs)
        return simulated(world, *args, **kwargs)

    redirected.__name__ = real.__name__
    redirected.__doc__ = f"{real.__name__}, answered by the simulation inside a simnet.aio simulation."
    return redirected


def _refuse_fromfd(world: World, fd: int, *args: Any) -> Any:
    raise OSError(errno.EBADF, f"socket.fromfd({fd}): dup of an fd is not modelled in a simnet.aio simulation")


_getaddrinfo = _redirect(
    _real_getaddrinfo, lambda world, *args, **kwargs: world.getaddrinfo(*args, **kwargs), networking=True
)
_gethostbyname = _redirect(_socket.gethostbyname, lambda world, name: world.resolve(name), networking=True)
_gethostname = _redirect(_socket.gethostname, lambda world: world.name_of(current_sim_host(world).ip))
_fromfd = _redirect(_socket.fromfd, _refuse_fromfd)


# -- select, poll, epoll on the current host ------------------------------------------------------

_real_epoll = _select.epoll
_select_select = _redirect(
    _select.select,
    lambda world, *args: current_sim_host(world).select(*args),
)
_select_poll = _redirect(_select.poll, lambda world: current_sim_host(world).poll())


class _EpollClass(type):
    def __instancecheck__(cls, obj: Any) -> bool:
        from simnet.kernel.epoll import Epoll

        return isinstance(obj, (_real_epoll, Epoll))


class FencedEpoll(metaclass=_EpollClass):
    """What `select.epoll` names while the fence is up."""

    def __new__(cls, sizehint: int = -1, flags: int = 0) -> Any:
        world = active_world()
        if world is None:
            return _real_epoll(sizehint, flags)
        return current_sim_host(world).epoll(sizehint, flags)

    @staticmethod
    def fromfd(fd: int) -> Any:
        world = active_world()
        if world is None:
            return _real_epoll.fromfd(fd)
        return current_sim_host(world).epoll_fromfd(fd)


# -- clocks, sleep and randomness -------------------------------------------------------------------


def _sleep_in_simulation(world: World, seconds: float) -> None:
    if seconds < 0:
        raise ValueError("sleep length must be non-negative")
    # The program's thread blocks; the network goes on without it for that long.
    net = world.net
    net.run_ns(net.now_ns + round(seconds * 1e9))


_sleep = _redirect(_real["sleep"], _sleep_in_simulation)
_urandom = _redirect(_real["urandom"], lambda world, n: world.entropy.randbytes(n))


def _fd_guard(name: str) -> Callable[..., Any]:
    real = _real[name]

    def guarded(fd: int, *args: Any) -> Any:
        check_not_simulated(fd, f"os.{name}")
        return real(fd, *args)

    guarded.__name__ = name
    return guarded


class Fence:
    """Puts the simulation's functions in place for one thread, and back (re-entrant)."""

    def __init__(self) -> None:
        self._depth = 0
        self._saved: list[tuple[Any, str, Any]] = []
        self._random_state: Any = None

    def enter(self, world: World) -> None:
        global _running
        if self._depth == 0:
            if active_world() is not None:
                raise RuntimeError("simnet.aio: a simulation already runs in this thread")
            if _running:
                raise RuntimeError("simnet.aio: a simulation already runs in another thread")
            _local.world = world
            self._install(world)
            _running = 1
        self._depth += 1

    def exit(self) -> None:
        global _running
        self._depth -= 1
        if self._depth == 0:
            _running = 0
            self._restore()
            _local.world = None

    def _set(self, owner: Any, name: str, value: Any) -> None:
        self._saved.append((owner, name, owner.__dict__[name] if isinstance(owner, type) else getattr(owner, name)))
        setattr(owner, name, value)

    def _install(self, world: World) -> None:
        s = self._set
        s(_socket, "socket", FencedSocket)
        s(_socket, "SocketType", FencedSocket)
        s(_socket, "socketpair", _socketpair)
        s(_socket, "getaddrinfo", _getaddrinfo)
        s(_socket, "gethostbyname", _gethostbyname)
        s(_socket, "gethostname", _gethostname)
        s(_socket, "fromfd", _fromfd)
        s(_select, "select", _select_select)
        s(_select, "poll", _select_poll)
        s(_select, "epoll", FencedEpoll)
        # selectors binds these at import time; a selector made inside the simulation must
        # watch simulated sockets.
        s(selectors.SelectSelector, "_select", staticmethod(_select_select))
        s(selectors.PollSelector, "_selector_cls", staticmethod(_select_poll))
        s(selectors.EpollSelector, "_selector_cls", FencedEpoll)
        if world.virtual_clock:
            epoch_ns = world.epoch_ns
            s(_time, "time", _redirect(_real["time"], lambda w: (epoch_ns + w.net.now_ns) / 1e9))
            s(_time, "time_ns", _redirect(_real["time_ns"], lambda w: epoch_ns + w.net.now_ns))
            s(_time, "monotonic", _redirect(_real["monotonic"], lambda w: w.net.now_ns / 1e9))
            s(_time, "monotonic_ns", _redirect(_real["monotonic_ns"], lambda w: w.net.now_ns))
            s(_time, "sleep", _sleep)
        if world.seeded_random:
            self._random_state = random.getstate()
            random.seed(world.random_seed)
            s(os, "urandom", _urandom)
        for name in ("read", "write", "close", "fstat", "dup"):
            s(os, name, _fd_guard(name))

    def _restore(self) -> None:
        while self._saved:
            owner, name, value = self._saved.pop()
            setattr(owner, name, value)
        if self._random_state is not None:
            random.setstate(self._random_state)
            self._random_state = None


FENCE = Fence()
