"""LINUX.md §3: recv/send across FIN, RST, close and shutdown.

tcp_recvmsg copies queued data first; only with nothing queued does it report, in order: FIN seen
-> b''; sk_err -> that error, once; RCV_SHUTDOWN -> b''; never connected -> ENOTCONN; EAGAIN.
tcp_reset maps the RST by state (SYN_SENT -> ECONNREFUSED, CLOSE_WAIT -> EPIPE, else ECONNRESET)
and keeps the receive queue. tcp_sendmsg fails with EPIPE on sk_err or SEND_SHUTDOWN, but a
pending sk_err is reported (and consumed) first. CPython ignores SIGPIPE, so EPIPE is
BrokenPipeError.
"""

from __future__ import annotations

import errno
import socket

from ._harness import drain, drain_all, fill, outcome, pair, pattern, raised, rst_close, so_error


def test_recv_on_empty_nonblocking_socket_raises_eagain(backend):
    c, a = pair(backend)
    assert raised(a.recv, 10) == ("BlockingIOError", "EAGAIN")
    assert errno.EAGAIN == errno.EWOULDBLOCK


def test_recv_with_timeout_raises_timeout_error(backend):
    c, a = pair(backend)
    a.settimeout(0.2)
    t0 = backend.monotonic()
    assert raised(a.recv, 1) == ("TimeoutError", None)
    assert 0.15 <= backend.monotonic() - t0 < 0.8


def test_blocking_recv_returns_queued_data_and_eof_without_waiting(backend):
    # A blocking recv with something to report returns at once: data first, then the FIN.
    c, a = pair(backend)
    a.setblocking(True)
    c.send(b"now")
    c.close()
    t0 = backend.monotonic()
    assert a.recv(10) == b"now"
    assert a.recv(10) == b""
    assert backend.monotonic() - t0 < 0.1


def test_msg_dontwait_on_blocking_socket_raises_eagain(backend):
    c, a = pair(backend)
    a.setblocking(True)
    assert raised(a.recv, 10, socket.MSG_DONTWAIT) == ("BlockingIOError", "EAGAIN")
    c.send(b"x")
    assert a.recv(10, socket.MSG_DONTWAIT) == b"x"


def test_recv_zero_returns_empty_bytes_without_eof(backend):
    # recv(0) is b'' immediately, with or without data and with no FIN: a trap for EOF checks.
    c, a = pair(backend)
    assert outcome(a.recv, 0) == ("ok", b"")
    c.send(b"x")
    assert outcome(a.recv, 0) == ("ok", b"")
    assert a.recv(10) == b"x"
    assert outcome(a.send, b"still-open") == ("ok", 10)


def test_recv_returns_queued_data_then_eof_after_peer_close(backend):
    c, a = pair(backend)
    c.send(b"abc")
    c.close()
    assert a.recv(2) == b"ab"
    assert drain(a, 1, backend) == b"c"
    assert [outcome(a.recv, 10) for _ in range(3)] == [("ok", b"")] * 3


def test_send_to_closed_peer_succeeds_once_then_raises_epipe(backend):
    # The first send reaches the peer's FIN_WAIT2 socket, which answers with a RST; we are in
    # CLOSE_WAIT, so tcp_reset maps it to EPIPE (not ECONNRESET). recv keeps returning b''.
    c, a = pair(backend)
    c.close()
    assert outcome(a.recv, 10) == ("ok", b"")
    assert outcome(a.send, b"1") == ("ok", 1)
    assert raised(a.send, b"2") == ("BrokenPipeError", "EPIPE")
    assert outcome(a.send, b"3") == ("err", "EPIPE")
    assert [outcome(a.recv, 10) for _ in range(2)] == [("ok", b"")] * 2


def test_close_with_unread_data_sends_rst(backend):
    # tcp_close: unread data in the receive queue -> RST instead of FIN (RFC 2525 §2.17).
    c, a = pair(backend)
    c.send(b"unread")
    a.close()
    assert raised(c.recv, 10) == ("ConnectionResetError", "ECONNRESET")
    assert outcome(c.recv, 10) == ("ok", b"")
    assert raised(c.send, b"x") == ("BrokenPipeError", "EPIPE")


def test_reset_is_reported_by_whichever_call_comes_first(backend):
    # The RST's sk_err is consumed by the first call that sees it: here send -> ECONNRESET, then
    # EPIPE (SEND_SHUTDOWN), and recv finds no error left -> b''.
    c, a = pair(backend)
    c.send(b"unread")
    a.close()
    assert outcome(c.send, b"x") == ("err", "ECONNRESET")
    assert outcome(c.send, b"x") == ("err", "EPIPE")
    assert outcome(c.recv, 10) == ("ok", b"")


def test_so_error_reports_reset_once(backend):
    c, a = pair(backend)
    c.send(b"unread")
    a.close()
    assert so_error(c) == errno.ECONNRESET
    assert so_error(c) == 0
    assert outcome(c.recv, 10) == ("ok", b"")
    assert outcome(c.send, b"x") == ("err", "EPIPE")


def test_rst_keeps_queued_data_readable_before_reporting_reset(backend):
    # tcp_reset purges the write queue, not the receive queue (LINUX.md §3 Check).
    c, a = pair(backend)
    a.send(b"before-rst")
    rst_close(a)
    assert outcome(c.recv, 64) == ("ok", b"before-rst")
    assert outcome(c.recv, 64) == ("err", "ECONNRESET")
    assert outcome(c.recv, 64) == ("ok", b"")


def test_abortive_close_of_idle_peer_gives_econnreset_then_eof_and_epipe(backend):
    c, a = pair(backend)
    rst_close(a)
    assert outcome(c.recv, 10) == ("err", "ECONNRESET")
    assert outcome(c.recv, 10) == ("ok", b"")
    assert outcome(c.send, b"x") == ("err", "EPIPE")
    assert outcome(c.send, b"x") == ("err", "EPIPE")


def test_after_a_reset_the_socket_is_unconnected_but_the_error_waits_for_recv(backend):
    # The RST moves the socket to CLOSE: getpeername and shutdown say ENOTCONN (neither consumes
    # sk_err), and recv still reports ECONNRESET once. (Measured here, beyond LINUX.md's table.)
    c, a = pair(backend)
    rst_close(c)
    assert outcome(a.getpeername) == ("err", "ENOTCONN")
    assert outcome(a.shutdown, socket.SHUT_WR) == ("err", "ENOTCONN")
    assert outcome(a.recv, 1) == ("err", "ECONNRESET")
    assert outcome(a.recv, 1) == ("ok", b"")


def test_close_delivers_queued_send_data_before_the_fin(backend):
    # A normal close() of a socket with unsent data (and nothing unread) sends a FIN *after* the
    # data: the orphaned socket keeps sending as the peer reads, and the peer sees every byte,
    # in order, then EOF.
    c, a = pair(backend, snd=4096, rcv=4096)
    total, last = fill(c, 1024)
    assert last == ("err", "EAGAIN")
    c.close()
    assert drain(a, total, backend) == pattern(0, total)
    assert drain_all(a, backend, quiet=0.05) == b""
    assert outcome(a.recv, 10) == ("ok", b"")


def test_abortive_close_discards_queued_send_data(backend):
    # SO_LINGER {1,0} with unsent data: tcp_disconnect drops the send queue and sends a RST.
    # The peer keeps what it had already received (a strict prefix), then ECONNRESET, then b''.
    c, a = pair(backend, snd=4096, rcv=4096)
    total, last = fill(c, 1024)
    assert last == ("err", "EAGAIN")
    rst_close(c)
    got = bytearray()
    results = []
    for _ in range(10_000):
        r = outcome(a.recv, 65536)
        if r[0] == "ok" and r[1]:
            got += r[1]
            continue
        results.append(r)
        if len(results) == 2:
            break
    assert results == [("err", "ECONNRESET"), ("ok", b"")]
    assert len(got) < total and bytes(got) == pattern(0, len(got))


def test_shutdown_wr_twice_is_fine_but_shutdown_after_full_close_is_enotconn(backend):
    c, a = pair(backend)
    assert outcome(c.shutdown, socket.SHUT_WR) == ("ok", None)
    assert outcome(c.shutdown, socket.SHUT_WR) == ("ok", None)
    # peer closes; c was FIN_WAIT2 -> TIME_WAIT (still owned by the fd), a LAST_ACK -> CLOSE
    a2, c2 = pair(backend)
    c2.close()
    assert outcome(a2.getpeername)[0] == "ok"  # CLOSE_WAIT is still connected
    assert so_error(a2) == 0
    assert outcome(a2.shutdown, socket.SHUT_WR) == ("ok", None)  # our FIN; ACKed at once
    assert outcome(a2.shutdown, socket.SHUT_RDWR) == ("err", "ENOTCONN")


def test_peer_shut_wr_gives_eof_while_other_direction_keeps_working(backend):
    c, a = pair(backend)
    c.send(b"req")
    c.shutdown(socket.SHUT_WR)
    assert drain(a, 3, backend) == b"req"
    assert outcome(a.recv, 10) == ("ok", b"")
    assert outcome(a.send, b"resp") == ("ok", 4)
    assert drain(c, 4, backend) == b"resp"
    # the half-closed side's own sends fail: SEND_SHUTDOWN -> EPIPE, every time
    assert outcome(c.send, b"x") == ("err", "EPIPE")
    assert outcome(c.send, b"x") == ("err", "EPIPE")
    a.close()
    assert outcome(c.recv, 10) == ("ok", b"")


def test_peer_shut_rdwr_with_fd_open_gives_eof_then_one_send_then_epipe(backend):
    # The peer's receive side is shut: our first data makes it answer with a RST (RFC 1122), and
    # as we are in CLOSE_WAIT that RST becomes EPIPE.
    c, a = pair(backend)
    c.shutdown(socket.SHUT_RDWR)
    assert outcome(a.recv, 10) == ("ok", b"")
    assert outcome(a.send, b"1") == ("ok", 1)
    assert outcome(a.send, b"2") == ("err", "EPIPE")


def test_shut_rd_returns_queued_data_then_eof_and_still_accepts_later_data(backend):
    # Linux neither discards data arriving after SHUT_RD nor answers it with a RST; recv returns
    # it, and returns b'' (not EAGAIN) when nothing is queued.
    c, a = pair(backend)
    c.send(b"q1")
    a.shutdown(socket.SHUT_RD)
    assert outcome(a.recv, 10) == ("ok", b"q1")
    assert outcome(a.recv, 10) == ("ok", b"")
    assert outcome(c.send, b"q2") == ("ok", 2)
    assert outcome(a.recv, 10) == ("ok", b"q2")
    assert outcome(a.recv, 10) == ("ok", b"")
    assert outcome(a.send, b"z") == ("ok", 1)
    assert drain(c, 1, backend) == b"z"


def test_never_connected_socket_recv_enotconn_send_epipe(backend):
    s = backend.socket()
    assert raised(s.recv, 1) == ("OSError", "ENOTCONN")
    assert raised(s.send, b"x") == ("BrokenPipeError", "EPIPE")
    assert raised(s.getpeername) == ("OSError", "ENOTCONN")
    s.setblocking(False)
    assert outcome(s.recv, 1) == ("err", "ENOTCONN")
    assert so_error(s) == 0


def test_shutdown_of_never_connected_socket_raises_enotconn_but_sets_flags(backend):
    # inet_shutdown returns ENOTCONN yet still records the shutdown, so recv then returns b''.
    s = backend.socket()
    assert outcome(s.shutdown, socket.SHUT_RDWR) == ("err", "ENOTCONN")
    assert outcome(s.recv, 1) == ("ok", b"")
    assert outcome(s.send, b"x") == ("err", "EPIPE")


def test_listening_socket_recv_enotconn_send_epipe_accept_eagain(backend):
    L = backend.socket()
    L.bind((backend.addr, 0))
    L.listen(1)
    L.setblocking(False)
    assert raised(L.recv, 1) == ("OSError", "ENOTCONN")
    assert raised(L.send, b"x") == ("BrokenPipeError", "EPIPE")
    assert raised(L.accept) == ("BlockingIOError", "EAGAIN")
