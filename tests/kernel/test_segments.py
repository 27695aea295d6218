"""Segment-level rules the socket API alone cannot show, checked against the segment log.

Conformance scenarios see only what a syscall returns; these look at the wire: how data is cut
into segments (MSS, LINUX.md §2's 32741), which RST rule fires when, and tcp_abort_on_overflow
(LINUX.md §1), which needs a changed sysctl that the real backend cannot set.
"""

from __future__ import annotations

import errno
import socket
from typing import Any

import pytest

from simnet.kernel import Network, Sysctl
from simnet.kernel.segment import ACK, RST, Segment

SERVER, CLIENT, PORT = "10.0.0.1", "10.0.0.2", 8080


def connected(net: Network, *, loopback: bool = False, latency: float = 0.001) -> tuple[Any, Any]:
    server = net.host(SERVER)
    client = server if loopback else net.host(CLIENT)
    if not loopback:
        net.link(SERVER, CLIENT, latency=latency)
    ip = "127.0.0.1" if loopback else SERVER
    L = server.socket()
    L.bind((ip, PORT))
    L.listen(8)
    c = client.socket()
    c.connect((ip, PORT))
    net.run(until=net.now + 0.1)
    a, _ = L.accept()
    for s in (c, a):
        s.setblocking(False)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return c, a


def data_lengths(net: Network, src: Any, start: int = 0) -> list[int]:
    me = "%s:%d" % src.getsockname()
    return [s.length for s in net.segment_log[start:] if s.src == me and s.length]


@pytest.mark.parametrize("mtu, mss", [(1500, 1448), (576, 524), (9000, 8948)])
def test_data_is_cut_into_mss_sized_segments(mtu: int, mss: int) -> None:
    # MSS = MTU - 40 (IP + TCP headers) - 12 (the timestamp option Linux puts in every segment).
    net = Network(seed=1, mtu=mtu, log_segments=True)
    c, a = connected(net)
    assert c.getsockopt(socket.IPPROTO_TCP, socket.TCP_MAXSEG) == mss
    mark = len(net.segment_log)
    assert c.send(b"m" * (3 * mss + 100)) == 3 * mss + 100
    net.run(until=net.now + 0.1)
    assert data_lengths(net, c, mark) == [mss, mss, mss, 100]


def test_loopback_segments_are_bounded_by_half_the_largest_window() -> None:
    # tcp_bound_to_half_wnd: MSS 65483 on lo, but never more than half the 65483-byte SYN window
    # -- which is why LINUX.md §2's first partial send on loopback returned 32741.
    net = Network(seed=2, log_segments=True)
    c, a = connected(net, loopback=True)
    assert c.getsockopt(socket.IPPROTO_TCP, socket.TCP_MAXSEG) == 32741
    mark = len(net.segment_log)
    c.send(b"l" * 70000)
    assert data_lengths(net, c, mark)[:2] == [32741, 32741]


def test_a_segment_for_no_socket_is_answered_with_a_reset_but_a_reset_never_is() -> None:
    net = Network(seed=3, log_segments=True)
    net.host(SERVER)
    client = net.host(CLIENT)
    # tcp_v4_send_reset: an ACK-bearing segment gets RST with seq = its ack; anything else gets
    # RST|ACK acknowledging it (a SYN counts one). A RST is never answered (RFC 793).
    client.net.transmit(client, Segment((CLIENT, 40000), (SERVER, 9), ACK, 100, 5000, 1000, b"xy"))
    client.net.transmit(client, Segment((CLIENT, 40001), (SERVER, 9), 0x02, 700, 0, 1000))
    client.net.transmit(client, Segment((CLIENT, 40002), (SERVER, 9), RST, 1, 0, 0))
    net.drain()  # zero latency: delivered as a syscall's return would deliver them
    replies = [(s.dst, s.flags, s.seq, s.ack) for s in net.segment_log if s.src.startswith(SERVER)]
    assert replies == [(f"{CLIENT}:40000", "R", 5000, 0), (f"{CLIENT}:40001", "R.", 0, 701)]


def test_syn_sent_answers_an_ack_for_something_it_never_sent_with_a_reset() -> None:
    # tcp_rcv_synsent_state_process: an unacceptable ACK in SYN_SENT gets a RST (seq = its
    # ack), and the connection attempt goes on -- how a stale TIME_WAIT's ACK is cleared away.
    net = Network(seed=4, log_segments=True)
    net.link(SERVER, CLIENT, latency=0.001)
    net.host(SERVER)
    c = net.host(CLIENT).socket()
    c.setblocking(False)
    c.connect_ex((SERVER, PORT))  # no listener yet: the SYN will be refused later, not now
    local, remote = c.getsockname(), (SERVER, PORT)
    net.host(CLIENT).receive(Segment(remote, local, ACK, 9999, 12345, 1000))
    rst = net.segment_log[-1]
    assert (rst.src, rst.flags, rst.seq) == ("%s:%d" % local, "R", 12345)
    assert c.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0 and c.state == "SYN-SENT"


def test_abort_on_overflow_resets_a_client_whose_final_ack_finds_the_queue_full() -> None:
    # LINUX.md §1: with tcp_abort_on_overflow=1 the listener answers that ACK with a RST; the
    # client, already ESTABLISHED, gets ECONNRESET once (SO_ERROR 104), then EPIPE.
    net = Network(seed=5, sysctl=Sysctl(tcp_abort_on_overflow=True), log_segments=True)
    net.link(SERVER, CLIENT, latency=0.010)
    L = net.host(SERVER).socket()
    L.bind((SERVER, PORT))
    L.listen(0)
    first, second = net.host(CLIENT).socket(), net.host(CLIENT).socket()
    for c in (first, second):
        c.setblocking(False)
        assert c.connect_ex((SERVER, PORT)) == errno.EINPROGRESS
    net.run(until=1)
    assert first.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0
    assert second.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == errno.ECONNRESET
    with pytest.raises(BrokenPipeError):
        second.send(b"x")
    rst, = [s for s in net.segment_log if s.flags == "R"]
    assert rst.src == f"{SERVER}:{PORT}" and rst.time_ns == 30_000_000  # the ACK's arrival
    assert net.counters["listen_overflows"] == 1 and [r[0] for _, r in net.sockets() if _ == SERVER] == [
        "LISTEN",
        "ESTAB",
    ]


def test_data_after_our_receive_side_is_shut_and_our_fin_sent_is_answered_with_a_reset() -> None:
    # tcp_rcv_state_process step 7 (LINUX.md §3): close() with the peer still sending -> RST.
    net = Network(seed=6, log_segments=True)
    c, a = connected(net)
    a.close()  # FIN; a is an orphan in FIN_WAIT
    net.run(until=net.now + 0.1)
    assert c.send(b"late") == 4
    net.run(until=net.now + 0.1)
    assert net.segment_log[-1].flags == "R." and net.segment_log[-1].src == f"{SERVER}:{PORT}"
    with pytest.raises(BrokenPipeError):  # we were in CLOSE_WAIT: tcp_reset maps it to EPIPE
        c.send(b"again")
