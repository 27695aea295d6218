"""LINUX.md §2: SO_RCVBUF / SO_SNDBUF, filling a send buffer, partial writes.

Exact values are compared only for what getsockopt reads back after an explicit setsockopt
(val = min(val, r/wmem_max); buf = max(2*val, SOCK_MIN_*)), and for the untouched defaults of a
fresh socket. Byte counts before EAGAIN are bounds plus conservation (LINUX.md "avoid" rule 1).
"""

from __future__ import annotations

import socket

import pytest

from ._harness import (
    drain,
    drain_all,
    fill,
    fill_settled,
    getbuf,
    listener,
    outcome,
    pair,
    pattern,
)

# SOCK_MIN_RCVBUF = 2048 + SKB_DATA_ALIGN(sizeof(struct sk_buff)) = 2304 on this machine (it
# depends on sizeof(sk_buff), which /proc does not show); SOCK_MIN_SNDBUF is twice that.
SOCK_MIN_RCVBUF = 2304
SOCK_MIN_SNDBUF = 2 * SOCK_MIN_RCVBUF

# The measured table (LINUX.md §2, t2_bufsizes.py); values at or above r/wmem_max are derived
# from the sysctl in the test so that the table holds on any host.
RCVBUF_TABLE = [(0, 2304), (1, 2304), (100, 2304), (1000, 2304), (1152, 2304), (2048, 4096),
                (2304, 4608), (2305, 4610), (4096, 8192), (8192, 16384), (65536, 131072)]
SNDBUF_TABLE = [(0, 4608), (1, 4608), (100, 4608), (1000, 4608), (1152, 4608), (2048, 4608),
                (2304, 4608), (2305, 4610), (4096, 8192), (8192, 16384), (65536, 131072)]


def _readback(backend, opt, value):
    s = backend.socket()
    s.setsockopt(socket.SOL_SOCKET, opt, value)
    got = s.getsockopt(socket.SOL_SOCKET, opt)
    s.close()
    return got


def test_so_rcvbuf_reads_back_doubled_with_minimum(backend):
    got = [(v, _readback(backend, socket.SO_RCVBUF, v)) for v, _ in RCVBUF_TABLE]
    assert got == RCVBUF_TABLE


def test_so_sndbuf_reads_back_doubled_with_minimum(backend):
    got = [(v, _readback(backend, socket.SO_SNDBUF, v)) for v, _ in SNDBUF_TABLE]
    assert got == SNDBUF_TABLE


def test_buffer_sizes_are_capped_at_rmem_max_and_wmem_max(backend):
    rmax, wmax = backend.sysctl["rmem_max"], backend.sysctl["wmem_max"]
    assert _readback(backend, socket.SO_RCVBUF, rmax) == 2 * rmax
    assert _readback(backend, socket.SO_RCVBUF, 2 * rmax) == 2 * rmax
    assert _readback(backend, socket.SO_RCVBUF, rmax // 2) == rmax
    assert _readback(backend, socket.SO_SNDBUF, wmax) == 2 * wmax
    assert _readback(backend, socket.SO_SNDBUF, 2 * wmax) == 2 * wmax
    assert _readback(backend, socket.SO_SNDBUF, wmax // 2) == wmax


def test_fresh_socket_buffers_default_to_tcp_rmem_and_tcp_wmem(backend):
    # TCP defaults come from tcp_rmem[1] / tcp_wmem[1], not net.core.r/wmem_default.
    s = backend.socket()
    assert getbuf(s) == (backend.sysctl["tcp_rmem"][1], backend.sysctl["tcp_wmem"][1])


def test_unlocked_sndbuf_grows_when_connection_is_established(backend):
    # tcp_init_buffer_space -> tcp_sndbuf_expand: an unlocked SO_SNDBUF is enlarged at
    # establishment (3939840 measured), capped at tcp_wmem[2]. Autotuning values vary, so this
    # is a bound; an explicitly set (locked) size does not move.
    wmem = backend.sysctl["tcp_wmem"]
    c, a = pair(backend)
    for s in (c, a):
        rcv, snd = getbuf(s)
        assert wmem[1] < snd <= wmem[2]
        assert rcv >= backend.sysctl["tcp_rmem"][1]
    c2, a2 = pair(backend, snd=8192)
    assert getbuf(c2)[1] == 16384


def test_accepted_socket_inherits_listener_buffer_sizes(backend):
    # A child accepted from a listener that set 8192/8192 reads 16384/16384 (sizes and locks
    # are copied from the listener, so no expansion at establishment either).
    L = listener(backend, 4, rcv=8192, snd=8192)
    c = backend.socket()
    c.connect(L.getsockname())
    a, _ = L.accept()
    assert getbuf(a) == (16384, 16384)
    assert getbuf(L) == (16384, 16384)


# (SO_SNDBUF set on the sender, SO_RCVBUF set on the receiver); None = left to autotuning.
FILL_CASES = [(4096, 4096), (16384, 16384), (65536, 65536), (4096, None), (None, 4096)]


@pytest.mark.parametrize("snd,rcv", FILL_CASES, ids=lambda v: f"{v}")
def test_fill_until_eagain_is_bounded_and_loses_no_bytes(backend, snd, rcv):
    # LINUX.md §2 Check (robust): a non-blocking send loop against a peer that never reads
    # ends in EAGAIN after a bounded number of bytes; more room may open after pauses; every
    # byte accepted is delivered, in order, once the peer reads.
    c, a = pair(backend, snd=snd, rcv=rcv)
    if snd:
        assert getbuf(c)[1] == 2 * snd
    if rcv:
        assert getbuf(a)[0] == 2 * rcv
    first, last = fill(c, 1024)
    assert last == ("err", "EAGAIN")
    total = first + fill_settled(c, backend, 1024, offset=first)
    # The sender holds ~its SO_SNDBUF (overshooting a small one by up to one ~64 KB skb), the
    # receiver 60-100 % of its SO_RCVBUF: bound both ends generously.
    sndbuf, rcvbuf = getbuf(c)[1], getbuf(a)[0]
    assert first > 0
    assert first >= min(sndbuf, rcvbuf) // 2
    assert total <= sndbuf + rcvbuf + 65536
    assert drain(a, total, backend) == pattern(0, total)
    assert drain_all(a, backend, quiet=0.05) == b""


def test_nonblocking_send_returns_partial_count_before_eagain(backend):
    # A non-blocking send that runs out of room returns how much it queued; EAGAIN comes only
    # when nothing at all could be queued (measured: 32741, then 47616, then EAGAIN).
    c, a = pair(backend, snd=4096, rcv=4096)
    data = pattern(0, 1_000_000)
    sent = 0
    results = []
    for _ in range(100):
        r = outcome(c.send, data[sent:sent + 100_000])
        results.append(r)
        if r[0] != "ok":
            break
        sent += r[1]
    assert results[-1] == ("err", "EAGAIN")
    counts = [n for kind, n in results[:-1]]
    assert counts and all(0 < n for n in counts)
    assert 0 < counts[0] < 100_000
    assert drain(a, sent, backend) == data[:sent]


def test_send_with_timeout_returns_partial_count_when_buffer_fills(backend):
    # Python's settimeout() sockets poll for POLLOUT and then send non-blocking, so a large
    # send() returns a partial count instead of waiting for all of it.
    c, a = pair(backend, snd=4096)
    c.settimeout(0.2)
    n = c.send(pattern(0, 1_000_000))
    assert 0 < n < 1_000_000
    assert drain(a, n, backend) == pattern(0, n)


def test_sendall_with_timeout_raises_timeout_when_peer_never_reads(backend):
    # sendall under settimeout(0.3) against a stalled reader -> socket.timeout after ~0.3 s
    # (without reporting how much was queued). The bytes that did go are still delivered.
    c, a = pair(backend, snd=4096, rcv=4096)
    c.settimeout(0.3)
    t0 = backend.monotonic()
    assert outcome(c.sendall, pattern(0, 1_000_000)) == ("err", "TimeoutError")
    assert 0.25 <= backend.monotonic() - t0 < 1.0
    got = drain_all(a, backend, quiet=0.1)
    assert 0 < len(got) < 1_000_000 and got == pattern(0, len(got))


def test_client_can_fill_buffers_before_server_accepts(backend):
    # LINUX.md extras: data sent before accept() sits in the child's receive queue and the
    # client's send queue (~3.9 MB measured); it is all there after accept().
    L = listener(backend, 1)
    c = backend.socket()
    c.connect(L.getsockname())
    c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    c.setblocking(False)
    total, last = fill(c, 65536)
    assert last == ("err", "EAGAIN")
    assert total >= backend.sysctl["tcp_rmem"][1] // 2
    assert total <= getbuf(c)[1] + backend.sysctl["tcp_rmem"][2] + 65536
    a, _ = L.accept()
    assert a.getpeername() == c.getsockname()
    a.setblocking(False)
    assert drain(a, total, backend, timeout=10) == pattern(0, total)
