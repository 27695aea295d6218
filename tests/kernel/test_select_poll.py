"""select, poll, epoll_fromfd and socketpair in the model, where virtual time is exact.

The conformance scenarios in tests/conformance/test_socket_api.py check the masks, orders and
argument checks against Linux; these check what only the model can pin down: a blocked select
or poll wakes at the very instant the segment that makes a socket ready arrives (across a link
with latency), waits out its timeout exactly, and says so when nothing can ever wake it.
"""

from __future__ import annotations

import select
import socket
from typing import Any

import pytest

from simnet.kernel import Network, SimulationDeadlock

MS = 1_000_000


def linked_pair(latency: float = 0.010) -> tuple[Network, Any, Any, Any, Any]:
    """A connection between two hosts `latency` apart: (net, server host, client host, c, a)."""
    net = Network(seed=1, latency=latency)
    server, client = net.host("10.0.0.1"), net.host("10.0.0.2")
    L = server.socket()
    L.bind(("10.0.0.1", 80))
    L.listen(4)
    c = client.socket()
    c.connect(("10.0.0.1", 80))
    a, _ = L.accept()
    L.close()
    c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return net, server, client, c, a


def test_blocked_select_wakes_when_the_data_arrives() -> None:
    net, server, client, c, a = linked_pair(0.010)
    c.setblocking(False)
    c.send(b"x")
    sent_at = net.now_ns
    assert server.select([a], [], [], None) == ([a], [], [])
    assert net.now_ns - sent_at == 10 * MS  # one-way latency, not a polling interval


def test_blocked_poll_wakes_when_the_data_arrives_and_times_out_exactly() -> None:
    net, server, client, c, a = linked_pair(0.010)
    p = server.poll()
    p.register(a, select.POLLIN)
    start = net.now_ns
    assert p.poll(25) == []
    assert net.now_ns - start == 25 * MS
    c.send(b"x")
    sent_at = net.now_ns
    assert p.poll(1000) == [(a.fileno(), select.POLLIN)]
    assert net.now_ns - sent_at == 10 * MS


def test_select_timeout_rounds_up_to_microseconds() -> None:
    net, server, client, c, a = linked_pair(0.010)
    start = net.now_ns
    assert server.select([a], [], [], 0.0000015) == ([], [], [])
    assert net.now_ns - start == 2000  # 1.5 us -> 2 us, as a timeval rounded up


def test_select_that_nothing_can_wake_is_a_deadlock_not_a_hang() -> None:
    net = Network(seed=0)
    host = net.host("10.0.0.1")
    a, b = host.socketpair()
    with pytest.raises(SimulationDeadlock):
        host.select([a], [], [], None)
    p = host.poll()
    p.register(b, select.POLLIN)
    with pytest.raises(SimulationDeadlock):
        p.poll()


def test_socketpair_is_a_connected_loopback_tcp_pair() -> None:
    net = Network(seed=0)
    host = net.host("10.0.0.1")
    a, b = host.socketpair()
    assert a.getblocking() and b.getblocking()
    assert a.getpeername() == b.getsockname() and b.getpeername() == a.getsockname()
    assert a.getsockname()[0] == "127.0.0.1"
    assert a.getsockopt(socket.SOL_SOCKET, socket.SO_PROTOCOL) == socket.IPPROTO_TCP
    a.sendall(b"ping")
    assert b.recv(10) == b"ping"
    assert a.connect_ex(b.getsockname()) == 106  # EISCONN: connected, as a blocking connect leaves it
    n1, n2 = host.socketpair(type=socket.SOCK_STREAM | socket.SOCK_NONBLOCK)
    assert not n1.getblocking() and not n2.getblocking()
    assert net.now_ns == 0  # loopback: no virtual time passed
    with pytest.raises(OSError) as info:
        host.socketpair(socket.AF_UNIX)
    assert info.value.errno == 97  # EAFNOSUPPORT: simnet models AF_INET only


def test_socketpair_works_inside_a_simulated_process() -> None:
    net = Network(seed=0)
    host = net.host("10.0.0.1")
    got: list[bytes] = []

    def proc() -> Any:
        a, b = host.socketpair()
        a.send(b"hi")
        got.append((yield from b.co.recv(10)))

    host.process(proc())
    net.run()
    assert got == [b"hi"]


def test_fromfd_epoll_shares_registrations_and_closing_the_original_kills_both() -> None:
    net = Network(seed=0)
    host = net.host("10.0.0.1")
    a, b = host.socketpair()
    ep = host.epoll()
    ep2 = host.epoll_fromfd(ep.fileno())
    ep.register(a, select.EPOLLOUT)
    assert ep2.poll(0) == [(a.fileno(), select.EPOLLOUT)]
    ep2.unregister(a)
    assert ep.poll(0) == []
    ep.close()
    assert ep.closed and not ep2.closed
    with pytest.raises(OSError) as info:
        ep2.register(b)
    assert info.value.errno == 9
    ep2.close()  # the fd is gone already: nothing to close, no error
    assert ep2.closed


def test_fromfd_of_an_fd_a_socket_took_reports_einval() -> None:
    net = Network(seed=0)
    host = net.host("10.0.0.1")
    a, b = host.socketpair()
    ep = host.epoll_fromfd(a.fileno())  # CPython checks nothing at fromfd
    with pytest.raises(OSError) as info:
        ep.poll(0)
    assert info.value.errno == 22
    ep.close()
    # simnet's choice, not Linux's: close(2) of that number would close the socket; a wrapper
    # closes only an epoll (simnet/kernel/epoll.py), so a stale epoll object is harmless here.
    assert a.send(b"still open") == 10


def test_select_on_an_epoll_fd_reports_it_readable_while_it_has_events() -> None:
    net = Network(seed=0)
    host = net.host("10.0.0.1")
    a, b = host.socketpair()
    ep = host.epoll()
    ep.register(b, select.EPOLLIN)
    assert host.select([ep], [], [], 0) == ([], [], [])
    a.send(b"x")
    assert host.select([ep], [], [], 0) == ([ep], [], [])


def test_select_and_poll_have_coroutine_forms_for_simulated_processes() -> None:
    from simnet.kernel.poll import co_select

    net, server, client, c, a = linked_pair(0.010)
    seen: list[Any] = []

    def reader() -> Any:
        r, _, _ = yield from co_select(server, [a], [], [], None)
        seen.append((net.now_ns, r == [a]))
        p = server.poll()
        p.register(a, select.POLLIN)
        a.recv(10)
        seen.append((yield from p.co_poll(5)))  # times out: 5 ms, nothing more comes

    def writer() -> Any:
        yield net.env.timeout(3 * MS)
        c.send(b"x")

    server.process(reader())
    client.process(writer())
    start = net.now_ns
    net.run()
    assert seen == [(start + 13 * MS, True), []]
