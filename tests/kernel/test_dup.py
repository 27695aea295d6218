"""dup(): several fds for one open file (LINUX.md §4 "Closed fds", epoll(7) Q6).

The conformance scenario test_events_keep_coming_for_a_closed_fd_while_a_dup_is_alive checks
the headline on both backends. These check the rest in the model, where fd numbers are
deterministic: the socket lives until its last fd closes, each fd is checked on its own, and
epoll keys its interest by (fd, file), so a reused fd number can be registered beside the stale
item that a dup keeps alive.
"""

from __future__ import annotations

import errno
import select
import socket
from typing import Any

import pytest

from simnet.kernel import Network

IN, OUT, RDHUP = select.EPOLLIN, select.EPOLLOUT, select.EPOLLRDHUP


def pair(net: Network) -> tuple[Any, Any, Any]:
    host = net.host("10.0.0.1")
    L = host.socket()
    L.bind(("127.0.0.1", 8080))
    L.listen(8)
    c = host.socket()
    c.connect(("127.0.0.1", 8080))
    a, _ = L.accept()
    for s in (c, a):
        s.setblocking(False)
    return host, c, a


def state(net: Network, port: int) -> list[str]:
    return [row[0] for _, row in net.sockets() if row[3].endswith(f":{port}")]


def test_dup_gives_the_lowest_free_fd_for_the_same_socket() -> None:
    net = Network(log_segments=True)
    host, c, a = pair(net)
    d = a.dup()
    assert d.fileno() not in (a.fileno(), c.fileno()) and d.fileno() == max(host.fds)
    c.send(b"ping")
    assert d.recv(10) == b"ping"  # one receive queue behind both fds
    d.send(b"pong")
    assert c.recv(10) == b"pong"
    assert d.getpeername() == a.getpeername() and d.getsockname() == a.getsockname()
    assert d.gettimeout() == 0.0  # the blocking mode belongs to the open file (O_NONBLOCK)


def test_the_socket_lives_until_its_last_fd_is_closed() -> None:
    net = Network(log_segments=True)
    host, c, a = pair(net)
    d = a.dup()
    n = len(net.segment_log)
    a.close()
    assert len(net.segment_log) == n  # no FIN: the file is still open through d
    assert a.fileno() == -1
    with pytest.raises(OSError) as e:
        a.recv(10)
    assert e.value.errno == errno.EBADF
    assert a.connect_ex(("127.0.0.1", 8080)) == errno.EBADF
    d.send(b"still here")
    assert c.recv(100) == b"still here"
    d.close()  # the last reference: now tcp_close sends the FIN
    assert net.segment_log[-2].flags == "F." and c.recv(10) == b""
    with pytest.raises(OSError) as e:
        d.send(b"x")
    assert e.value.errno == errno.EBADF


def test_closing_the_dup_first_leaves_the_original_working() -> None:
    net = Network()
    host, c, a = pair(net)
    with a.dup() as d:
        dfd = d.fileno()
    assert dfd not in host.fds and a.fileno() in host.fds
    c.send(b"x")
    assert a.recv(10) == b"x"
    a.close()
    assert c.recv(10) == b""


def test_a_dup_of_a_dup_is_one_more_reference() -> None:
    net = Network()
    host, c, a = pair(net)
    d1 = a.dup()
    d2 = d1.dup()
    a.close()
    d1.close()
    c.send(b"x")
    assert d2.recv(10) == b"x"
    d2.close()
    assert c.recv(10) == b""


def test_registrations_survive_the_fd_close_and_go_with_the_last_reference() -> None:
    net = Network()
    host, c, a = pair(net)
    ep = host.epoll()
    ep.register(a, IN | RDHUP)
    afd = a.fileno()
    d = a.dup()
    a.close()
    c.send(b"x")
    assert ep.poll(0) == [(afd, IN)]  # under the old fd number
    with pytest.raises(OSError) as e:
        ep.modify(afd, IN)
    assert e.value.errno == errno.EBADF
    ep.register(d, IN)  # the dup is a different key: (dfd, same file)
    assert sorted(ep.poll(0)) == sorted([(afd, IN), (d.fileno(), IN)])
    assert d.recv(10) == b"x"
    d.close()  # last reference: eventpoll_release drops both items
    c.send(b"y")  # reaches a closed socket, which answers with a RST: nobody is told
    assert ep.poll(0) == []


def test_a_reused_fd_number_registers_beside_the_stale_item() -> None:
    net = Network()
    host, c, a = pair(net)
    ep = host.epoll()
    ep.register(a, IN)
    afd = a.fileno()
    d = a.dup()
    a.close()
    s = host.socket()  # Linux hands out the lowest free fd: the one a had
    assert s.fileno() == afd
    ep.register(s, OUT)  # (afd, new file) is a new key: no EEXIST
    c.send(b"x")
    assert sorted(ep.poll(0)) == [(afd, IN), (afd, OUT | select.EPOLLHUP)]
    ep.unregister(afd)  # names (afd, the file afd now refers to): the new socket's item
    assert ep.poll(0) == [(afd, IN)]  # the stale item, still level-triggered
    with pytest.raises(FileNotFoundError):
        ep.unregister(afd)
    assert d.recv(10) == b"x"


def test_accept_through_a_dup_of_a_listener_and_close_in_either_order() -> None:
    net = Network()
    host = net.host("10.0.0.1")
    L = host.socket()
    L.bind(("127.0.0.1", 8080))
    L.listen(1)
    L2 = L.dup()
    L.close()
    assert state(net, 8080) == ["LISTEN"]
    c = host.socket()
    c.connect(("127.0.0.1", 8080))
    a, _ = L2.accept()
    assert a.getpeername() == c.getsockname()
    L2.close()
    assert state(net, 8080) == ["ESTAB"]  # only the accepted child holds the port now
    r = host.socket()
    r.setblocking(False)
    assert r.connect_ex(("127.0.0.1", 8080)) == errno.EINPROGRESS
    assert r.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == errno.ECONNREFUSED


def test_blocking_calls_through_a_dup_in_a_simulated_process() -> None:
    net = Network()
    host, c, a = pair(net)
    a.setblocking(True)
    d = a.dup()
    a.close()
    got: list[bytes] = []

    def reader() -> Any:
        got.append((yield from d.co.recv(100)))

    net.process(reader())
    net.run(until=1)
    assert got == []
    c.send(b"late")
    net.run(until=2)
    assert got == [b"late"]
    d.close()
    proc_err: list[int] = []

    def closed_reader() -> Any:
        try:
            yield from d.co.recv(10)
        except OSError as e:
            proc_err.append(e.errno)

    net.process(closed_reader())
    net.run(until=3)
    assert proc_err == [errno.EBADF]
