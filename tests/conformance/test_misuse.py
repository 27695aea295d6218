"""Misuse: what Python raises on a real socket/epoll, exception class and errno, for the model
to match (DESIGN.md: "a caller's bug raises at once"; the class and errno are Python's own).

Each expectation below was read off this machine's real backend; ``raised`` records
(exception class name, errno name or None) or ('ok', value).
"""

from __future__ import annotations

import select
import socket

import pytest

from ._harness import listener, pair, raised

# ---- state errors ---------------------------------------------------------------------------


def test_bind_to_an_address_in_use_raises_eaddrinuse(backend):
    L = listener(backend, 1)
    s = backend.socket()
    assert raised(s.bind, L.getsockname()) == ("OSError", "EADDRINUSE")


def test_bind_twice_raises_einval(backend):
    s = backend.socket()
    s.bind((backend.addr, 0))
    assert raised(s.bind, (backend.addr, 0)) == ("OSError", "EINVAL")


def test_listen_on_a_connected_socket_raises_einval(backend):
    c, a = pair(backend)
    assert raised(c.listen, 1) == ("OSError", "EINVAL")
    assert raised(a.listen, 1) == ("OSError", "EINVAL")


def test_accept_on_a_socket_that_is_not_listening_raises_einval(backend):
    s = backend.socket()
    assert raised(s.accept) == ("OSError", "EINVAL")
    c, a = pair(backend)
    assert raised(c.accept) == ("OSError", "EINVAL")


def test_connect_on_a_connected_or_listening_socket_raises_eisconn(backend):
    L = listener(backend, 4)
    c, a = pair(backend)
    assert raised(c.connect, L.getsockname()) == ("OSError", "EISCONN")
    assert raised(L.connect, L.getsockname()) == ("OSError", "EISCONN")
    assert raised(c.connect_ex, L.getsockname()) == ("ok", 106)  # EISCONN, returned


def test_bind_on_a_connected_socket_raises_einval(backend):
    c, a = pair(backend)
    assert raised(c.bind, (backend.addr, 0)) == ("OSError", "EINVAL")


def test_getpeername_of_an_unconnected_socket_raises_enotconn(backend):
    s = backend.socket()
    assert raised(s.getpeername) == ("OSError", "ENOTCONN")


def test_bad_shutdown_how_and_bad_linger_raise_einval(backend):
    c, a = pair(backend)
    assert raised(c.shutdown, 7) == ("OSError", "EINVAL")
    assert raised(c.setsockopt, socket.SOL_SOCKET, socket.SO_LINGER, b"x") == ("OSError", "EINVAL")


def test_unknown_socket_option_raises_enoprotoopt(backend):
    s = backend.socket()
    assert raised(s.getsockopt, socket.SOL_SOCKET, 9999) == ("OSError", "ENOPROTOOPT")


# ---- a closed socket ------------------------------------------------------------------------

EBADF_OPS = [
    ("recv", (1,)), ("send", (b"x",)), ("sendall", (b"x",)), ("shutdown", (socket.SHUT_RDWR,)),
    ("bind", (("127.0.0.1", 0),)), ("listen", (1,)), ("accept", ()), ("getpeername", ()),
    ("getsockname", ()), ("setblocking", (False,)), ("settimeout", (1.0,)),
    ("getsockopt", (socket.SOL_SOCKET, socket.SO_ERROR)),
    ("setsockopt", (socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)),
]


@pytest.mark.parametrize("op,args", EBADF_OPS, ids=[op for op, _ in EBADF_OPS])
def test_operations_on_a_closed_socket_raise_ebadf(backend, op, args):
    c, a = pair(backend)
    c.close()
    assert raised(getattr(c, op), *args) == ("OSError", "EBADF")


def test_closed_socket_fileno_is_minus_one_and_close_is_idempotent(backend):
    L = listener(backend, 1)
    c, a = pair(backend)
    c.close()
    assert c.fileno() == -1
    assert raised(c.close) == ("ok", None)
    assert raised(c.connect, L.getsockname()) == ("OSError", "EBADF")
    assert raised(c.connect_ex, L.getsockname()) == ("ok", 9)  # EBADF, returned


# ---- bad arguments --------------------------------------------------------------------------


def test_bad_arguments_raise_what_python_raises(backend):
    # All cases are collected before comparing, so a failure lists every mismatch at once.
    s = backend.socket()
    got = {
        "recv(-1)": raised(s.recv, -1),
        "send(str)": raised(s.send, "text"),
        "bind(port 70000)": raised(s.bind, ("127.0.0.1", 70000)),
        "bind(port -1)": raised(s.bind, ("127.0.0.1", -1)),
        "bind(str)": raised(s.bind, "127.0.0.1"),
        "connect(1-tuple)": raised(s.connect, ("127.0.0.1",)),
        "settimeout(-1)": raised(s.settimeout, -1),
        "listen(2**31)": raised(s.listen, 2**31),
        "setsockopt(str)": raised(s.setsockopt, socket.SOL_SOCKET, socket.SO_RCVBUF, "x"),
    }
    assert got == {
        "recv(-1)": ("ValueError", None),
        "send(str)": ("TypeError", None),
        "bind(port 70000)": ("OverflowError", None),
        "bind(port -1)": ("OverflowError", None),
        "bind(str)": ("TypeError", None),
        "connect(1-tuple)": ("TypeError", None),
        "settimeout(-1)": ("ValueError", None),
        "listen(2**31)": ("OverflowError", None),
        "setsockopt(str)": ("TypeError", None),
    }


# ---- epoll misuse ---------------------------------------------------------------------------


def test_epoll_register_twice_raises_eexist_and_unknown_fd_raises_enoent(backend):
    c, a = pair(backend)
    ep = backend.epoll()
    ep.register(a, select.EPOLLIN)
    assert raised(ep.register, a, select.EPOLLIN) == ("FileExistsError", "EEXIST")
    assert raised(ep.modify, c, select.EPOLLIN) == ("FileNotFoundError", "ENOENT")
    assert raised(ep.unregister, c) == ("FileNotFoundError", "ENOENT")


def test_epoll_register_of_a_closed_socket_raises_valueerror(backend):
    c, a = pair(backend)
    ep = backend.epoll()
    c.close()
    assert raised(ep.register, c, select.EPOLLIN) == ("ValueError", None)
    assert raised(ep.register, -1, select.EPOLLIN) == ("ValueError", None)


def test_epoll_bad_arguments_raise_what_python_raises(backend):
    ep = backend.epoll()
    got = {
        "poll(maxevents=0)": raised(ep.poll, 0, 0),
        "poll(maxevents=-2)": raised(ep.poll, 0, -2),
        "register(str)": raised(ep.register, "x", select.EPOLLIN),
    }
    assert got == {
        "poll(maxevents=0)": ("ValueError", None),
        "poll(maxevents=-2)": ("ValueError", None),
        "register(str)": ("TypeError", None),
    }


def test_closed_epoll_raises_valueerror_and_close_is_idempotent(backend):
    c, a = pair(backend)
    ep = backend.epoll()
    ep.close()
    assert raised(ep.poll, 0) == ("ValueError", None)
    assert raised(ep.register, a, select.EPOLLIN) == ("ValueError", None)
    assert raised(ep.fileno) == ("ValueError", None)
    assert raised(ep.close) == ("ok", None)
