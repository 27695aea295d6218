"""Stand-ins for the modules CPython's own tests import, bound to one simulated host.

tests/kernel/cpython/test_epoll.py and test_selectors.py are CPython's files with their import
lines changed to take `socket`, `select`, `selectors` and the clock from here, and nothing else
changed. Each name here is the real module's, with what would touch the real kernel replaced:

* `socket.socket`, `socket.socketpair`, `socket.create_server`: sockets of the current host
  (`Host.socket`, `Host.socketpair` -- TCP over 127.0.0.1, simnet models AF_INET only);
* `select.epoll` (with `fromfd`), `select.select`, `select.poll`: the host's simulated ones;
* `selectors`: a second copy of the standard library's selectors.py whose `select` is this
  one, so its EpollSelector, PollSelector and SelectSelector run unchanged on simulated
  epoll, poll and select (conftest.py puts the copy in sys.modules['selectors'] during each
  test, so that `mock.patch('selectors.EpollSelector._selector_cls')` finds it);
* `time.monotonic` and `time.sleep`: the simulation's clock; sleeping runs the network.

conftest.py gives every test a fresh Network (seed 0, distinct fds: a simulated fd never
names a real file), as CPython's tests expect a fresh process state per test.
"""

from __future__ import annotations

import importlib.util
import select as _select
import selectors as _selectors
import socket as _socket
import types
from typing import Any

from simnet.kernel import Host, Network

_current: dict[str, Any] = {}


def reset() -> Network:
    """A fresh simulated world for the next test."""
    net = Network(seed=0, distinct_fds=True)
    _current["net"] = net
    _current["host"] = net.host("10.0.0.1")
    return net


def host() -> Host:
    return _current["host"]  # type: ignore[no-any-return]


def net() -> Network:
    return _current["net"]  # type: ignore[no-any-return]


def _module(name: str, real: types.ModuleType) -> types.ModuleType:
    """A module with every public name of `real` (constants, exceptions, helpers)."""
    mod = types.ModuleType(name, real.__doc__)
    for key, value in vars(real).items():
        if not key.startswith("__"):
            setattr(mod, key, value)
    return mod


# -- socket ------------------------------------------------------------------------------------


class _SocketMeta(type):
    def __instancecheck__(cls, obj: Any) -> bool:
        from simnet.kernel.tcp import DupSocket, TcpSocket

        return isinstance(obj, (TcpSocket, DupSocket))


class _Socket(metaclass=_SocketMeta):
    """socket.socket(...): a simulated socket of the current host."""

    def __new__(cls, family: int = _socket.AF_INET, type: int = _socket.SOCK_STREAM, proto: int = 0,
                fileno: int | None = None) -> Any:
        if fileno is not None:
            raise OSError(9, "simnet: socket(fileno=...) of an existing fd is not modelled")
        return host().socket(family, type, proto)


def _socketpair(family: int = _socket.AF_INET, type: int = _socket.SOCK_STREAM, proto: int = 0) -> Any:
    return host().socketpair(family, type, proto)


def _create_server(address: tuple[str, int], *, family: int = _socket.AF_INET, backlog: int | None = None,
                   reuse_port: bool = False, dualstack_ipv6: bool = False) -> Any:
    """socket.create_server as Lib/socket.py writes it, on a simulated socket."""
    sock = host().socket(family, _socket.SOCK_STREAM)
    try:
        sock.setsockopt(_socket.SOL_SOCKET, _socket.SO_REUSEADDR, 1)  # as on POSIX
        if reuse_port:
            sock.setsockopt(_socket.SOL_SOCKET, _socket.SO_REUSEPORT, 1)
        sock.bind(address)
        if backlog is None:
            sock.listen()
        else:
            sock.listen(backlog)
        return sock
    except BaseException:
        sock.close()
        raise


socket = _module("socket", _socket)
socket.socket = _Socket  # type: ignore[attr-defined]
socket.SocketType = _Socket  # type: ignore[attr-defined]
socket.socketpair = _socketpair  # type: ignore[attr-defined]
socket.create_server = _create_server  # type: ignore[attr-defined]


# -- select ------------------------------------------------------------------------------------


class _EpollMeta(type):
    def __instancecheck__(cls, obj: Any) -> bool:
        from simnet.kernel.epoll import Epoll

        return isinstance(obj, Epoll)


class _Epoll(metaclass=_EpollMeta):
    """select.epoll(sizehint=-1, flags=0) and select.epoll.fromfd(fd) on the current host."""

    def __new__(cls, sizehint: int = -1, flags: int = 0) -> Any:
        return host().epoll(sizehint, flags)

    @staticmethod
    def fromfd(fd: int) -> Any:
        return host().epoll_fromfd(fd)


def _select_select(rlist: Any, wlist: Any, xlist: Any, timeout: float | None = None) -> Any:
    return host().select(rlist, wlist, xlist, timeout)


def _select_poll() -> Any:
    return host().poll()


select = _module("select", _select)
select.epoll = _Epoll  # type: ignore[attr-defined]
select.select = _select_select  # type: ignore[attr-defined]
select.poll = _select_poll  # type: ignore[attr-defined]


# -- selectors: the standard library's own code, on the select above ---------------------------


def _load_selectors() -> types.ModuleType:
    spec = importlib.util.spec_from_file_location("selectors", _selectors.__file__)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    mod.select = select  # type: ignore[attr-defined]  # read at call time by every selector
    # Bound when the classes were made, to the real ones: point them at the simulated ones.
    mod.EpollSelector._selector_cls = select.epoll  # type: ignore[attr-defined]
    # `_selector_cls = select.poll` and `_select = select.select` were builtins, which do not
    # bind as methods; Python functions do, unless wrapped.
    mod.PollSelector._selector_cls = staticmethod(_select_poll)  # type: ignore[attr-defined]
    mod.SelectSelector._select = staticmethod(_select_select)  # type: ignore[attr-defined]
    return mod


selectors = _load_selectors()


# -- the clock ---------------------------------------------------------------------------------


def monotonic() -> float:
    return net().now


def sleep(seconds: float) -> None:
    if seconds < 0:
        raise ValueError("sleep length must be non-negative")
    n = net()
    n.run_ns(n.now_ns + round(seconds * 1_000_000_000))


time = types.SimpleNamespace(monotonic=monotonic, sleep=sleep)

reset()  # test_epoll.py creates an epoll at import time, before any fixture runs
