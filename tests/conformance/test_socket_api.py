"""What asyncio's selector loop, `selectors` and frameworks call on sockets besides recv/send.

* proto: Python's `.proto` is the argument socket() was given (0 or IPPROTO_TCP), an accepted
  socket's is its listener's (CPython's accept builds it from the listener's family/type/proto),
  while SO_PROTOCOL reads sk_protocol, which inet_create resolved to IPPROTO_TCP either way.
* select.epoll's argument checks, `closed`, and `fromfd` (the same fd: one epoll file).
* select.select and select.poll on tcp_poll's mask (fs/select.c's POLLIN_SET / POLLOUT_SET
  filters; poll adds ERR and HUP to every mask and says POLLNVAL for a closed fd), with
  CPython's ordering of results and its argument checks.
* sendmsg gathers its buffers into one send (partial counts, EAGAIN, EPIPE as send); on TCP
  Linux's sock_cmsg_send ignores SCM_RIGHTS (the fd is silently not sent) and refuses an unknown
  SOL_SOCKET type with EINVAL; recvmsg gives (data, [], 0, None).
"""

from __future__ import annotations

import array
import select
import socket

from ._harness import drain, fill, outcome, pair, raised, rst_close

IN, PRI, OUT = select.POLLIN, select.POLLPRI, select.POLLOUT
ERR, HUP, NVAL, RDHUP = select.POLLERR, select.POLLHUP, select.POLLNVAL, select.POLLRDHUP


def closed_fd(backend):
    """The number of an fd that was just closed (single-threaded: nothing takes it meanwhile)."""
    s = backend.socket()
    fd = s.fileno()
    s.close()
    return fd


# ---- proto, SO_PROTOCOL, SO_TYPE, SO_DOMAIN, SO_ACCEPTCONN ------------------------------------


def _proto_pair(backend, proto):
    L = backend.socket(proto)
    L.bind((backend.addr, 0))
    L.listen(4)
    c = backend.socket(proto)
    c.connect(L.getsockname())
    a, _ = L.accept()
    return L, c, a


def test_proto_attribute_is_what_socket_was_given_and_accept_inherits_it(backend):
    for proto in (0, socket.IPPROTO_TCP):
        L, c, a = _proto_pair(backend, proto)
        assert (L.proto, c.proto, a.proto) == (proto, proto, proto)
        assert (a.family, a.type) == (socket.AF_INET, socket.SOCK_STREAM)


def test_so_protocol_is_tcp_whatever_proto_was_given(backend):
    for proto in (0, socket.IPPROTO_TCP):
        L, c, a = _proto_pair(backend, proto)
        for s in (L, c, a):
            assert s.getsockopt(socket.SOL_SOCKET, socket.SO_PROTOCOL) == socket.IPPROTO_TCP
            assert s.getsockopt(socket.SOL_SOCKET, socket.SO_TYPE) == socket.SOCK_STREAM
            assert s.getsockopt(socket.SOL_SOCKET, socket.SO_DOMAIN) == socket.AF_INET
        assert [s.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN) for s in (L, c, a)] == [1, 0, 0]


def test_stream_socket_with_udp_proto_is_refused(backend):
    assert raised(backend.socket, socket.IPPROTO_UDP) == ("OSError", "EPROTONOSUPPORT")


# ---- select.epoll: arguments, closed, fromfd --------------------------------------------------


def test_epoll_arguments_are_checked_as_cpython_checks_them(backend):
    def kind(*args):
        r = raised(backend.epoll, *args)
        return "ok" if r[0] == "ok" else r

    assert kind() == "ok"
    assert kind(16) == "ok"
    assert kind(-1, select.EPOLL_CLOEXEC) == "ok"
    assert kind(0) == ("ValueError", None)
    assert kind(-2) == ("ValueError", None)
    assert kind(1.5) == ("TypeError", None)
    assert kind("foo") == ("TypeError", None)
    assert kind(None) == ("TypeError", None)
    # 'invalid flags': an OSError that carries no errno (select_epoll_impl's PyErr_SetString).
    assert kind(-1, 1) == ("OSError", None)
    assert kind(-1, 12356) == ("OSError", None)


def test_closed_epoll_refuses_every_call_with_value_error_and_closes_twice(backend):
    ep = backend.epoll()
    assert ep.closed is False and ep.fileno() > 0
    ep.close()
    assert ep.closed is True
    s = backend.socket()
    assert raised(ep.fileno) == ("ValueError", None)
    assert raised(ep.register, s) == ("ValueError", None)
    assert raised(ep.poll, 0) == ("ValueError", None)
    assert raised(ep.close) == ("ok", None)


def test_epoll_fromfd_shares_the_interest_set_and_dies_with_the_fd(backend):
    c, a = pair(backend)
    ep = backend.epoll()
    ep2 = backend.epoll_fromfd(ep.fileno())
    assert ep2.fileno() == ep.fileno()
    ep2.register(a, select.EPOLLOUT)
    assert raised(ep.register, a, select.EPOLLOUT) == ("FileExistsError", "EEXIST")
    assert ep.poll(0) == [(a.fileno(), select.EPOLLOUT)]
    ep2.close()
    # CPython knows only its own close: ep is not 'closed', but its fd is gone.
    assert ep.closed is False
    assert raised(ep.poll, 0) == ("OSError", "EBADF")
    assert raised(ep.register, c) == ("OSError", "EBADF")


# ---- select.select --------------------------------------------------------------------------


def test_select_reports_ready_items_in_the_order_given(backend):
    c, a = pair(backend)
    assert backend.select([c, a], [a, c.fileno(), c], [c, a], 0) == ([], [a, c.fileno(), c], [])
    c.send(b"x")
    # duplicates are reported as often as given; an int comes back as the int
    r, w, x = backend.select([c, a, a.fileno(), a], [], [], 0)
    assert (r, w, x) == ([a, a.fileno(), a], [], [])


def test_select_counts_hup_as_readable_and_err_as_both(backend):
    s = backend.socket()  # never connected: OUT|HUP
    assert backend.select([s], [s], [s], 0) == ([s], [s], [])
    c, a = pair(backend)
    rst_close(c)  # a: IN|OUT|ERR|HUP|RDHUP
    assert backend.select([a], [a], [a], 0) == ([a], [a], [])


def test_select_on_a_listener_is_readable_once_a_connection_is_queued(backend):
    L = backend.socket()
    L.bind((backend.addr, 0))
    L.listen(4)
    assert backend.select([L], [L], [L], 0) == ([], [], [])
    c = backend.socket()
    c.connect(L.getsockname())
    assert backend.select([L], [], [], 0) == ([L], [], [])


def test_select_waits_out_its_timeout_when_nothing_is_ready(backend):
    c, a = pair(backend)
    t0 = backend.monotonic()
    assert backend.select([a], [], [], 0.05) == ([], [], [])
    assert backend.monotonic() - t0 >= 0.049


def test_select_checks_its_arguments_as_cpython(backend):
    c, a = pair(backend)
    assert raised(backend.select, [a], [], [], -1) == ("ValueError", None)
    assert raised(backend.select, [a], [], [], "1") == ("TypeError", None)
    assert raised(backend.select, [object()], [], [], 0) == ("TypeError", None)
    assert raised(backend.select, [-1], [], [], 0) == ("ValueError", None)
    assert raised(backend.select, [5000], [], [], 0) == ("ValueError", None)  # >= FD_SETSIZE
    assert raised(backend.select, [closed_fd(backend)], [], [], 0) == ("OSError", "EBADF")
    s = backend.socket()
    s.close()  # a closed socket object's fileno() is -1
    assert raised(backend.select, [s], [], [], 0) == ("ValueError", None)


# ---- select.poll ----------------------------------------------------------------------------


def test_poll_masks_follow_tcp_poll_with_err_and_hup_always_reported(backend):
    c, a = pair(backend)
    p = backend.poll()
    p.register(a)  # IN|PRI|OUT
    p.register(c, IN)
    assert p.poll(0) == [(a.fileno(), OUT)]
    c.send(b"x")
    assert p.poll(0) == [(a.fileno(), IN | OUT)]
    p.modify(a, IN | RDHUP)
    c.shutdown(socket.SHUT_WR)
    assert p.poll(0) == [(a.fileno(), IN | RDHUP)]
    p.modify(a, 0)
    assert p.poll(0) == []
    assert drain(a, 1, backend) == b"x"
    rst_close(a)  # c: IN|OUT|ERR|HUP|RDHUP, registered for IN only
    assert dict(p.poll(0))[c.fileno()] == IN | ERR | HUP


def test_poll_reports_in_registration_order_and_nval_for_a_closed_fd(backend):
    c, a = pair(backend)
    s = backend.socket()
    gone = closed_fd(backend)
    p = backend.poll()
    p.register(a, OUT)
    p.register(gone)
    p.register(s)
    p.register(c, OUT)
    p.modify(a, OUT)  # modify keeps the place
    assert p.poll(0) == [(a.fileno(), OUT), (gone, NVAL), (s.fileno(), OUT | HUP), (c.fileno(), OUT)]
    p.unregister(a)
    p.register(a, OUT)  # re-registering moves it to the end
    assert [fd for fd, _ in p.poll(0)] == [gone, s.fileno(), c.fileno(), a.fileno()]


def test_poll_checks_its_arguments_as_cpython(backend):
    c, a = pair(backend)
    p = backend.poll()
    assert raised(p.modify, a, IN) == ("FileNotFoundError", "ENOENT")
    assert raised(p.unregister, a) == ("KeyError", None)
    assert raised(p.register, -1) == ("ValueError", None)
    assert raised(p.register, object()) == ("TypeError", None)
    assert raised(p.register, a, -1) == ("ValueError", None)
    assert raised(p.register, a, 1 << 16) == ("OverflowError", None)
    assert raised(p.poll, "1") == ("TypeError", None)


def test_poll_waits_out_its_timeout_in_milliseconds(backend):
    c, a = pair(backend)
    p = backend.poll()
    p.register(a, IN)
    t0 = backend.monotonic()
    assert p.poll(50) == []
    assert backend.monotonic() - t0 >= 0.049
    c.send(b"x")
    assert p.poll(None) == [(a.fileno(), IN)]


# ---- sendmsg / recvmsg ----------------------------------------------------------------------


def test_sendmsg_gathers_its_buffers_into_one_stream_write(backend):
    c, a = pair(backend)
    assert c.sendmsg([b"ab", bytearray(b"cd"), memoryview(b"ef")]) == 6
    assert c.sendmsg([]) == 0
    assert drain(a, 6, backend) == b"abcdef"


def test_sendmsg_fills_the_buffer_like_send_then_eagain(backend):
    c, a = pair(backend, snd=4096, rcv=4096)
    total, last = fill(c, chunk=1024)
    assert last == ("err", "EAGAIN") and total > 0
    assert outcome(c.sendmsg, [b"x" * 512, b"y" * 512]) == ("err", "EAGAIN")


def test_sendmsg_to_a_closed_peer_fails_as_send(backend):
    c, a = pair(backend)
    c.close()  # FIN: a is in CLOSE_WAIT
    assert outcome(a.sendmsg, [b"1"]) == ("ok", 1)  # reaches c's orphan, which answers RST
    assert outcome(a.sendmsg, [b"2"]) == ("err", "EPIPE")
    s = backend.socket()
    assert outcome(s.sendmsg, [b"x"]) == ("err", "EPIPE")  # never connected


def test_sendmsg_ignores_scm_rights_on_tcp_and_refuses_unknown_sol_socket_types(backend):
    c, a = pair(backend)
    fds = array.array("i", [c.fileno()])
    # sock_cmsg_send: SCM_RIGHTS is "semantically in SOL_UNIX" -- skipped, the byte goes alone
    assert outcome(c.sendmsg, [b"x"], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, fds)]) == ("ok", 1)
    assert outcome(a.recvmsg, 10, 64) == ("ok", (b"x", [], 0, None))
    # other levels are not looked at
    assert outcome(c.sendmsg, [b"y"], [(socket.IPPROTO_IP, socket.IP_TTL, b"\x05\0\0\0")]) == ("ok", 1)
    # an unknown SOL_SOCKET type fails the whole call (tcp_sendmsg: EINVAL), nothing is sent
    assert outcome(c.sendmsg, [b"z"], [(socket.SOL_SOCKET, 999, b"\0\0\0\0")]) == ("err", "EINVAL")
    # ... but a socket that cannot send says so first
    s = backend.socket()
    assert outcome(s.sendmsg, [b"z"], [(socket.SOL_SOCKET, 999, b"\0\0\0\0")]) == ("err", "EPIPE")
    assert drain(a, 1, backend) == b"y"
    assert outcome(a.recv, 10) == ("err", "EAGAIN")


def test_recvmsg_returns_data_no_ancdata_no_flags_no_address(backend):
    c, a = pair(backend)
    assert outcome(a.recvmsg, 10) == ("err", "EAGAIN")
    c.send(b"hello")
    assert drain(a, 0, backend) == b""
    assert outcome(a.recvmsg, 3) == ("ok", (b"hel", [], 0, None))
    buf1, buf2 = bytearray(1), bytearray(8)
    assert outcome(a.recvmsg_into, [buf1, buf2]) == ("ok", (2, [], 0, None))
    assert (bytes(buf1), bytes(buf2[:1])) == (b"l", b"o")
    c.close()
    assert outcome(a.recvmsg, 10) == ("ok", (b"", [], 0, None))
