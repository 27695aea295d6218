"""Network.wait_any (an event loop's selector waiting on several hosts' epolls until a
deadline), per-host fd ranges, and the order-keeping delivery jitter of schedule exploration."""

from __future__ import annotations

import select

import pytest

from simnet.kernel.network import DISTINCT_FD_BASE, FDS_PER_HOST, Network, SimulationDeadlock


def _pair(net: Network, server_ip: str, client_ip: str, port: int = 80) -> tuple[object, object]:
    server, client = net.host(server_ip), net.host(client_ip)
    listener = server.socket()
    listener.bind((server_ip, port))
    listener.listen()
    listener.setblocking(False)
    c = client.socket()
    c.setblocking(False)
    c.connect_ex((server_ip, port))
    net.run()
    s, _ = listener.accept()
    s.setblocking(False)
    return s, c


def test_wait_any_wakes_on_the_first_ready_epoll_of_several_hosts() -> None:
    net = Network(seed=1, latency=0.01)
    s, c = _pair(net, "10.0.0.1", "10.0.0.2")
    ep_server, ep_client = net.host("10.0.0.1").epoll(), net.host("10.0.0.2").epoll()
    ep_server.register(s.fileno(), select.EPOLLIN)
    ep_client.register(c.fileno(), select.EPOLLIN)
    assert net.wait_any([ep_server, ep_client], 0) is False  # only looks
    c.send(b"ping")
    t0 = net.now_ns
    assert net.wait_any([ep_server, ep_client], None) is True
    assert net.now_ns - t0 == 10_000_000  # one link latency later
    assert ep_server.poll(0) == [(s.fileno(), select.EPOLLIN)]
    assert ep_client.poll(0) == []


def test_wait_any_times_out_at_the_deadline_and_reports_a_deadlock() -> None:
    net = Network(seed=1, latency=0.01)
    s, _c = _pair(net, "10.0.0.1", "10.0.0.2")
    ep = net.host("10.0.0.1").epoll()
    ep.register(s.fileno(), select.EPOLLIN)
    net.run()  # let every timer of the handshake go
    t0 = net.now_ns
    assert net.wait_any([ep], 5_000_000_000) is False
    assert net.now_ns == t0 + 5_000_000_000
    with pytest.raises(SimulationDeadlock, match="nothing is pending"):
        net.wait_any([ep], None)


def test_distinct_fds_give_each_host_its_own_range_above_real_fds() -> None:
    net = Network(seed=1, distinct_fds=True)
    a, b = net.host("10.0.0.1"), net.host("10.0.0.2")
    sa, sb = a.socket(), b.socket()
    assert sa.fileno() == DISTINCT_FD_BASE
    assert sb.fileno() == DISTINCT_FD_BASE + FDS_PER_HOST
    sa.close()
    assert a.socket().fileno() == DISTINCT_FD_BASE  # still the lowest free fd of its host
    plain = Network(seed=1).host("10.0.0.1").socket()
    assert plain.fileno() == 3  # without the option, a host numbers fds as a process does


def test_an_fd_range_is_a_limit_emfile() -> None:
    net = Network(seed=1)
    host = net.host("10.0.0.1")
    host.fd_limit = host.first_fd + 2
    host.socket(), host.socket()
    with pytest.raises(OSError) as info:
        host.socket()
    assert info.value.errno == 24


def test_delivery_jitter_reorders_links_never_one_link() -> None:
    orders = set()
    for seed in range(12):
        net = Network(seed=seed, latency=0.001, delivery_jitter=1e-6)
        s1, c1 = _pair(net, "10.0.0.1", "10.0.0.2", 80)
        s2, c2 = _pair(net, "10.0.0.1", "10.0.0.3", 81)
        for sock in (c1, c2):
            sock.setsockopt(6, 1, 1)
        net.run(until=net.now + 1)
        c1.send(b"a")
        net.run(until=net.now + 0.3e-6)
        c2.send(b"b")
        for i in range(5):
            c1.send(b"%d" % i)
        net.run(until=net.now + 0.01)
        assert s1.recv(100) == b"a01234"  # one link: FIFO, whatever the jitter
        orders.add(s2.recv(100))
    assert orders == {b"b"}


def test_delivery_jitter_varies_which_host_arrives_first() -> None:
    firsts = set()
    for seed in range(16):
        net = Network(seed=seed, latency=0.001, delivery_jitter=1e-6)
        s1, c1 = _pair(net, "10.0.0.1", "10.0.0.2", 80)
        s2, c2 = _pair(net, "10.0.0.1", "10.0.0.3", 81)
        net.run(until=net.now + 1)
        ep = net.host("10.0.0.1").epoll()
        ep.register(s1.fileno(), select.EPOLLIN)
        ep.register(s2.fileno(), select.EPOLLIN)
        c1.send(b"a")
        net.run(until=net.now + 0.3e-6)
        c2.send(b"b")
        assert net.wait_any([ep], None)
        firsts.add(tuple(fd for fd, _ in ep.poll(0)))
    assert (s1.fileno(),) in firsts and (s2.fileno(),) in firsts


def test_wake_waiter_ends_a_wait_like_a_self_pipe_write() -> None:
    net = Network(seed=1, latency=0.01)
    s, _c = _pair(net, "10.0.0.1", "10.0.0.2")
    ep = net.host("10.0.0.1").epoll()
    ep.register(s.fileno(), select.EPOLLIN)
    t0 = net.now_ns
    net.call_later(2_000_000_000, net.wake_waiter)  # a timer hands the waiting loop work
    assert net.wait_any([ep], 10_000_000_000) is True
    assert net.now_ns == t0 + 2_000_000_000
    assert ep.poll(0) == []  # no epoll event: the caller looks at its own work
