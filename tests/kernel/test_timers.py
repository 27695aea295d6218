"""Behaviours that span long TCP timers, checked in virtual time against the segment log.

The conformance suite runs each scenario on real loopback too, so it can only look a second or
so past a timer boundary. Here the model alone is held to the exact schedule of each timer it
implements (LINUX.md §1, §3, §4, §6 and its sysctl line; include/net/tcp.h constants):

* SYN retransmits to a listener whose accept queue stays full, then ETIMEDOUT (tcp_syn_retries,
  tcp_syn_linear_timeouts -- Linux >= 6.17 keeps the 1 s RTO for the first N timeouts);
* SYN-ACK retransmits for a request whose final ACK was dropped by a full accept queue
  (tcp_synack_retries, exponential: the linear SYN timeouts do not apply to SYN-ACKs);
* TIME_WAIT's fixed 60 s (TCP_TIMEWAIT_LEN), and the orphaned FIN_WAIT2's tcp_fin_timeout;
* the 40 ms delayed ACK (TCP_DELACK_MIN) once quick-ack mode is over;
* zero-window probes on the persist timer, and the window update that ends them.

Times are integer nanoseconds, so the assertions are exact.
"""

from __future__ import annotations

import errno
import select
import socket
from typing import Any

import pytest

from simnet.kernel import LoggedSegment, Network, Sysctl
from simnet.kernel.segment import ACK, FIN, RST, SYN, Segment
from simnet.kernel.tcp import TCP_DELACK_MIN, TCP_RTO_MIN, TCP_TIMEWAIT_LEN

S = 1_000_000_000
MS = 1_000_000
SERVER, CLIENT, CLIENT2 = "10.0.0.1", "10.0.0.2", "10.0.0.3"
PORT = 8080


def segments(net: Network, *, src: str | None = None, dst: str | None = None, flags: str | None = None,
             event: str | None = "sent") -> list[LoggedSegment]:
    """The lines of the segment log that match: src/dst as 'ip:port' or a bare ip."""

    def match(addr: str, want: str | None) -> bool:
        return want is None or addr == want or addr.split(":")[0] == want

    return [
        s for s in net.segment_log
        if match(s.src, src) and match(s.dst, dst) and (flags is None or s.flags == flags)
        and (event is None or s.event == event)
    ]


def times(lines: list[LoggedSegment]) -> list[int]:
    return [s.time_ns for s in lines]


def addr(sock: Any) -> str:
    ip, port = sock.getsockname()
    return f"{ip}:{port}"


def full_listener(net: Network, backlog: int = 0) -> Any:
    """A listener on SERVER whose accept queue is full: backlog+1 connections nobody accepts."""
    L = net.host(SERVER).socket()
    L.bind((SERVER, PORT))
    L.listen(backlog)
    L.setblocking(False)
    for _ in range(backlog + 1):
        c = net.host(CLIENT2).socket()
        c.connect((SERVER, PORT))
    return L


# -- SYN retransmission and ETIMEDOUT -------------------------------------------------------------


@pytest.mark.parametrize(
    "sysctl, syn_times, gives_up_at",
    [
        # The model's default, this machine's kernel (conformance.md): 4 linear timeouts, then
        # doubling; tcp_syn_retries + tcp_syn_linear_timeouts = 10 retransmits, then ETIMEDOUT.
        (Sysctl(), [0, 1, 2, 3, 4, 5, 7, 11, 19, 35, 67], 131),
        # Classic exponential backoff, as LINUX.md §1 states it: 1, 3, 7, 15, 31, 63 -> 127 s.
        (Sysctl(tcp_syn_linear_timeouts=0), [0, 1, 3, 7, 15, 31, 63], 127),
        # tcp_syn_retries is obeyed: two retransmits, then the 4 s wait for the third.
        (Sysctl(tcp_syn_linear_timeouts=0, tcp_syn_retries=2), [0, 1, 3], 7),
    ],
    ids=["linear4", "classic", "retries2"],
)
def test_syn_to_a_full_accept_queue_is_retransmitted_on_the_sysctl_schedule_then_times_out(
    sysctl: Sysctl, syn_times: list[int], gives_up_at: int
) -> None:
    net = Network(seed=1, sysctl=sysctl, log_segments=True)
    L = full_listener(net)
    c = net.host(CLIENT).socket()
    result: list[tuple[int, int]] = []

    def connector() -> Any:
        try:
            yield from c.co.connect((SERVER, PORT))
        except OSError as e:
            result.append((net.now_ns, e.errno))

    net.process(connector())
    net.run()
    me = addr(c)
    assert times(segments(net, src=me, flags="S")) == [t * S for t in syn_times]
    # Every one of them was dropped by the listener (tcp_conn_request: sk_acceptq_is_full).
    assert times(segments(net, src=me, event="dropped: accept queue full")) == [t * S for t in syn_times]
    assert segments(net, dst=me) == []  # not a single SYN-ACK or RST came back
    assert result == [(gives_up_at * S, errno.ETIMEDOUT)]
    assert L.accept()[0] is not None  # the connection that filled the queue is still there


def test_nonblocking_connect_reports_etimedout_through_epoll_and_so_error() -> None:
    net = Network(seed=2, log_segments=True)
    full_listener(net)
    c = net.host(CLIENT).socket()
    c.setblocking(False)
    assert c.connect_ex((SERVER, PORT)) == errno.EINPROGRESS
    ep = net.host(CLIENT).epoll()
    ep.register(c, select.EPOLLOUT)
    net.run(until=131 - 1e-9)
    assert ep.poll(0) == [] and c.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0
    net.run(until=131)
    (fd, mask), = ep.poll(0)
    assert mask & select.EPOLLERR and mask & select.EPOLLHUP and mask & select.EPOLLOUT
    assert c.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == errno.ETIMEDOUT
    assert c.connect_ex((SERVER, PORT)) == errno.ECONNABORTED  # the error was consumed
    assert net.counters["syn_retransmits"] == 10


# -- SYN-ACK retransmission for a request whose ACK the full queue dropped -------------------------


def _overflowing_handshakes(net: Network) -> tuple[Any, Any, Any]:
    """Two clients 10 ms away connect at once to a listen(0) socket. Both SYNs find an empty
    queue and get SYN-ACKs; the first final ACK makes the child that fills the queue, the second
    is dropped (tcp_check_req's listen_overflow, tcp_abort_on_overflow=0): that client is
    ESTABLISHED while the server holds only a SYN_RECV request (LINUX.md §1)."""
    net.link(SERVER, CLIENT, latency=0.010)
    L = net.host(SERVER).socket()
    L.bind((SERVER, PORT))
    L.listen(0)
    L.setblocking(False)
    first, second = net.host(CLIENT).socket(), net.host(CLIENT).socket()
    for c in (first, second):
        c.setblocking(False)
        assert c.connect_ex((SERVER, PORT)) == errno.EINPROGRESS
    net.run(until=0.5)
    assert [s.state for s in (first, second)] == ["ESTAB", "ESTAB"]
    return L, first, second


def test_synack_is_retransmitted_exponentially_for_a_request_whose_ack_was_dropped() -> None:
    net = Network(seed=3, log_segments=True)
    L, first, second = _overflowing_handshakes(net)
    me = addr(second)
    net.run(until=200)
    synacks = times(segments(net, dst=me, flags="S."))
    # Sent at 10 ms when the SYN arrived, then at +1, +3, +7, +15, +31 s (TCP_TIMEOUT_INIT <<
    # retries); tcp_synack_retries=5, so at +63 s the request is dropped (reqsk_timer_handler).
    assert synacks == [10 * MS + t * S for t in (0, 1, 3, 7, 15, 31)]
    # The client answers each one with an ACK (it is ESTABLISHED), which the full queue drops.
    acks_dropped = times(segments(net, src=me, event="dropped: accept queue full"))
    assert acks_dropped == [t + 20 * MS for t in synacks]
    assert net.counters["synack_retransmits"] == 5 and net.counters["synack_expired"] == 1
    server_states = [row[0] for ip, row in net.sockets() if ip == SERVER]
    assert server_states == ["LISTEN", "ESTAB"]  # the SYN-RECV row is gone after 63 s
    assert second.state == "ESTAB"  # ... and the client never heard of it
    # Its first data reaches a server that has forgotten it: no request, so a RST.
    second.send(b"late")
    net.run(until=net.now + 1)
    rst, = segments(net, src=SERVER, dst=me, flags="R")
    assert rst.time_ns == net.now_ns - 1 * S + 10 * MS
    assert second.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == errno.ECONNRESET


def test_request_becomes_a_connection_at_the_first_synack_retransmit_after_a_slot_frees() -> None:
    net = Network(seed=4, log_segments=True)
    L, first, second = _overflowing_handshakes(net)
    second.send(b"hello")  # accepted by send(): the client is ESTABLISHED (LINUX.md §1)
    me = addr(second)
    net.run(until=5)
    s1, _ = L.accept()  # frees the slot at 5 s
    assert s1.getpeername() == first.getsockname()
    ep = net.host(SERVER).epoll()
    ep.register(L, select.EPOLLIN)
    net.run(until=10)
    # Both ends keep knocking: the server retransmits its SYN-ACK (1, 3, 7 s after 10 ms), the
    # client its data on its own RTO (0.22 s from the SYN's RTT sample, doubling from 0.5 s).
    assert times(segments(net, dst=me, flags="S.")) == [10 * MS + t * S for t in (0, 1, 3, 7)]
    assert times(segments(net, src=me, flags="P.")) == [
        500 * MS, 720 * MS, 1160 * MS, 2040 * MS, 3800 * MS, 7320 * MS
    ]
    # The first to reach the listener after the slot freed is the ACK answering the 7.01 s
    # SYN-ACK; it arrives at 7.03 s and makes the child. Nothing is dropped from then on.
    assert times(segments(net, event="dropped: accept queue full"))[-1] < 7 * S
    assert ep.poll(0) == [(L.fileno(), select.EPOLLIN)]
    s2, peer = L.accept()
    assert peer == second.getsockname()
    # The child was created from the request (irs from the SYN), so the data retransmitted
    # at 7.32 s is in order: it is delivered and ACKed when it arrives at 7.33 s.
    s2.setblocking(False)
    assert s2.recv(100) == b"hello"
    ack = segments(net, src=SERVER, dst=me)[-1]
    data_seq = segments(net, src=me, flags="P.")[-1].seq
    assert (ack.time_ns, ack.flags, ack.ack) == (7330 * MS, ".", data_seq + 5)


def test_request_becomes_a_child_exactly_when_the_synack_answer_arrives() -> None:
    net = Network(seed=4, log_segments=True)
    L, first, second = _overflowing_handshakes(net)
    net.run(until=5)
    L.accept()
    net.run(until=7.03 - 1e-9)
    assert outcome_accept(L) == "EAGAIN"
    net.run(until=7.03)  # SYN-ACK retransmitted at 7.01 s, answered at 7.02 s, here at 7.03 s
    assert outcome_accept(L) == "ok"


def outcome_accept(L: Any) -> str:
    try:
        L.accept()
    except BlockingIOError:
        return "EAGAIN"
    return "ok"


# -- TIME_WAIT and FIN_WAIT2 ----------------------------------------------------------------------


def _server_closes_first(net: Network, reuse: bool) -> tuple[int, int]:
    """A connection on a 5 ms link where the server closes first; returns (the moment the server
    entered TIME_WAIT, i.e. the client's FIN arrived, in ns; the port)."""
    net.link(SERVER, CLIENT, latency=0.005)
    L = net.host(SERVER).socket()
    L.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, int(reuse))
    L.bind((SERVER, PORT))
    L.listen(1)
    c = net.host(CLIENT).socket()
    c.connect((SERVER, PORT))
    me = addr(c)
    a, _ = L.accept()
    a.close()
    L.close()
    net.run(until=net.now + 0.1)
    c.close()
    net.run(until=net.now + 0.1)
    fin, = segments(net, src=me, flags="F.")
    return fin.time_ns + 5 * MS, PORT


def test_time_wait_lasts_exactly_sixty_seconds_and_holds_the_port_without_reuseaddr() -> None:
    net = Network(seed=5, log_segments=True)
    entered, port = _server_closes_first(net, reuse=False)
    rows = [row for ip, row in net.sockets() if ip == SERVER]
    assert [row[0] for row in rows] == ["TIME-WAIT"]
    # The last ACK (for the client's FIN) left as TIME_WAIT began.
    assert segments(net, src=SERVER)[-1].time_ns == entered
    N = net.host(SERVER).socket()
    net.run(until=(entered + TCP_TIMEWAIT_LEN - 1) / S)
    with pytest.raises(OSError) as e:
        N.bind((SERVER, port))
    assert e.value.errno == errno.EADDRINUSE
    net.run(until=(entered + TCP_TIMEWAIT_LEN) / S)
    assert [row for ip, row in net.sockets() if ip == SERVER] == []
    N.bind((SERVER, port))  # free now, without SO_REUSEADDR
    N.listen(1)


def test_time_wait_port_can_be_rebound_at_once_when_both_sockets_set_reuseaddr() -> None:
    net = Network(seed=6, log_segments=True)
    entered, port = _server_closes_first(net, reuse=True)
    N = net.host(SERVER).socket()
    N.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    N.bind((SERVER, port))
    N.listen(1)
    assert any(row[0] == "TIME-WAIT" for ip, row in net.sockets() if ip == SERVER)


def test_time_wait_answers_a_retransmitted_fin_and_is_ended_by_a_reset() -> None:
    net = Network(seed=7, log_segments=True)
    entered, port = _server_closes_first(net, reuse=False)
    tw = net.host(SERVER).connections[next(iter(net.host(SERVER).connections))]
    assert tw.state == "TIME-WAIT"
    n_before = len(segments(net, src=SERVER))
    # A FIN retransmitted by the peer (its ACK was lost) is ACKed again (tcp_timewait_state_process).
    net.host(SERVER).receive(Segment(tw.remote, tw.local, FIN | ACK, tw.rcv_nxt - 1, tw.snd_nxt, 1000))
    assert len(segments(net, src=SERVER)) == n_before + 1
    net.host(SERVER).receive(Segment(tw.remote, tw.local, RST, tw.rcv_nxt, 0, 0))
    assert tw.state == "UNCONN" and [row for ip, row in net.sockets() if ip == SERVER] == []


def _reconnect_from(net: Network, port: int) -> Any:
    c = net.host(CLIENT).socket()
    c.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    c.bind((CLIENT, port))
    c.setblocking(False)
    assert c.connect_ex((SERVER, PORT)) == errno.EINPROGRESS
    return c


def test_a_new_syn_on_a_time_wait_4_tuple_reopens_it_at_once() -> None:
    # A server that closes first keeps one TIME_WAIT per client port; a client whose next
    # connection comes from the same port must not wait for a SYN retransmit. Linux accepts a
    # SYN whose sequence number is after the old connection's (tcp_timewait_state_process,
    # TCP_TW_SYN), and ISNs grow with the clock for a given 4-tuple (secure_tcp_seq), so it is.
    net = Network(seed=14, log_segments=True)
    net.link(SERVER, CLIENT, latency=0.005)
    L = net.host(SERVER).socket()
    L.bind((SERVER, PORT))
    L.listen(8)
    L.setblocking(False)
    c = net.host(CLIENT).socket()
    c.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    c.connect((SERVER, PORT))
    port = c.getsockname()[1]
    net.run(until=net.now + 0.1)  # the final ACK reaches the server 5 ms after connect returns
    a, _ = L.accept()
    a.close()
    net.run(until=net.now + 0.1)
    c.close()
    net.run(until=net.now + 1)
    tw, = net.host(SERVER).connections.values()
    assert tw.state == "TIME-WAIT"
    old_snd_nxt = tw.snd_nxt
    c2 = _reconnect_from(net, port)
    net.run(until=net.now + 0.1)
    synack = segments(net, dst=f"{CLIENT}:{port}", flags="S.")[-1]
    assert synack.seq == (old_snd_nxt + 65537) & 0xFFFFFFFF  # tcp_tw_isn
    assert c2.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0 and c2.getpeername() == (SERVER, PORT)
    assert L.accept()[1] == (CLIENT, port)
    assert net.counters["syn_retransmits"] == 0 and net.counters["time_wait_reopened"] == 1


def test_an_old_syn_on_a_time_wait_4_tuple_is_answered_with_an_ack() -> None:
    net = Network(seed=15, log_segments=True)
    entered, port = _server_closes_first(net, reuse=False)
    tw, = net.host(SERVER).connections.values()
    n = len(segments(net, src=SERVER))
    # A SYN at or before the old connection's rcv_nxt may be an old duplicate: TCP_TW_ACK.
    net.host(SERVER).receive(Segment(tw.remote, tw.local, SYN, tw.rcv_nxt - 1, 0, 1000))
    reply = segments(net, src=SERVER)[n:]
    assert [(r.flags, r.seq, r.ack) for r in reply] == [(".", tw.snd_nxt, tw.rcv_nxt)]
    assert tw.state == "TIME-WAIT"


def test_orphaned_fin_wait2_lasts_tcp_fin_timeout_then_the_peer_is_reset() -> None:
    net = Network(seed=8, log_segments=True)
    net.link(SERVER, CLIENT, latency=0.005)
    L = net.host(SERVER).socket()
    L.bind((SERVER, PORT))
    L.listen(1)
    c = net.host(CLIENT).socket()
    c.connect((SERVER, PORT))
    a, _ = L.accept()
    a.setblocking(False)
    me = addr(c)
    c.close()  # FIN; the server never closes: the client is an orphan in FIN_WAIT2
    net.run(until=1)
    fin, = segments(net, src=me, flags="F.")
    fin_acked = fin.time_ns + 10 * MS  # the server's ACK of the FIN is back after a round trip
    assert [row[0] for ip, row in net.sockets() if ip == CLIENT] == ["FIN-WAIT-2"]
    net.run(until=(fin_acked + 60 * S - 1) / S)
    assert [row[0] for ip, row in net.sockets() if ip == CLIENT] == ["FIN-WAIT-2"]
    net.run(until=(fin_acked + 60 * S) / S)  # tcp_fin_timeout = 60
    assert [row for ip, row in net.sockets() if ip == CLIENT] == []
    # The server, in CLOSE_WAIT, writes: nothing matches on the client host, which answers RST;
    # a RST in CLOSE_WAIT is EPIPE (tcp_reset, LINUX.md §3).
    assert a.recv(10) == b""
    assert a.send(b"x") == 1
    net.run(until=net.now + 1)
    assert segments(net, src=CLIENT, flags="R")[-1].time_ns == net.now_ns - 1 * S + 5 * MS
    with pytest.raises(BrokenPipeError):
        a.send(b"y")


# -- delayed ACK ----------------------------------------------------------------------------------


def _pair_on_a_link(net: Network, latency: float = 0.001, **listener_opts: int) -> tuple[Any, Any]:
    net.link(SERVER, CLIENT, latency=latency)
    L = net.host(SERVER).socket()
    for opt, value in listener_opts.items():
        L.setsockopt(socket.SOL_SOCKET, getattr(socket, opt), value)
    L.bind((SERVER, PORT))
    L.listen(1)
    c = net.host(CLIENT).socket()
    c.connect((SERVER, PORT))
    a, _ = L.accept()
    for s in (c, a):
        s.setblocking(False)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    net.run(until=net.now + 0.1)
    return c, a


def test_quickack_mode_acks_the_first_sixteen_segments_then_acks_are_delayed_forty_ms() -> None:
    net = Network(seed=9, log_segments=True)
    c, a = _pair_on_a_link(net)
    me = addr(c)
    start = net.now_ns
    # One small segment every 100 ms: less than the RTO apart, so quick-ack mode is not
    # re-entered (tcp_event_data_recv), and more than 40 ms, so each is ACKed on its own.
    for i in range(20):
        net.run(until=(start + i * 100 * MS) / S)
        assert c.send(b"x") == 1
    net.run(until=net.now + 1)
    arrivals = [t + 1 * MS for t in times(segments(net, src=me, flags="P."))]
    acks = times(segments(net, src=addr(a), dst=me, flags="."))[-20:]
    delays = [ack - arrival for ack, arrival in zip(acks, arrivals)]
    # TCP_MAX_QUICKACKS = 16 immediate ACKs, then the delayed-ACK timer (TCP_DELACK_MIN = 40 ms).
    assert delays == [0] * 16 + [TCP_DELACK_MIN] * 4


def _leave_quickack_mode(net: Network, c: Any, a: Any) -> None:
    for _ in range(16):
        c.send(b"q")
        net.run(until=net.now + 0.1)
    assert a.recv(100) == b"q" * 16


def test_a_second_full_segment_is_acked_at_once_without_waiting_for_the_timer() -> None:
    net = Network(seed=10, log_segments=True)
    c, a = _pair_on_a_link(net)
    _leave_quickack_mode(net, c, a)
    mark = len(net.segment_log)
    t0 = net.now_ns
    assert c.send(b"y" * 1448 * 2) == 2896  # two full segments (MSS 1448 on a 1500 MTU link)
    net.run(until=net.now + 0.2)
    acks = [s for s in net.segment_log[mark:] if s.src == addr(a) and s.flags == "."]
    # __tcp_ack_snd_check: more than one full frame unacknowledged -> ACK now.
    assert times(acks) == [t0 + 1 * MS]
    assert acks[0].ack == segments(net, src=addr(c), flags="P.")[-1].seq + 1448


def test_a_delayed_ack_rides_on_the_reply_instead_of_a_pure_ack() -> None:
    net = Network(seed=11, log_segments=True)
    c, a = _pair_on_a_link(net)
    _leave_quickack_mode(net, c, a)
    mark = len(net.segment_log)
    c.send(b"request")
    net.run(until=net.now + 0.010)  # well inside the 40 ms
    assert a.recv(100) == b"request"
    a.send(b"response")
    net.run(until=net.now + 0.2)
    from_server = [s for s in net.segment_log[mark:] if s.src == addr(a)]
    assert [(s.flags, s.length) for s in from_server] == [("P.", 8)]  # no separate ACK


def _ack_delays(net: Network, c: Any, a: Any, mark: int) -> list[int]:
    """For each data segment the client sent after log line `mark`, how long after its arrival
    (1 ms link) the server's first segment acknowledging it left."""
    me, peer = addr(c), addr(a)
    lines = net.segment_log[mark:]
    delays = []
    for data in [s for s in lines if s.src == me and s.event == "sent" and s.length]:
        end = data.seq + data.length
        ack = next(s for s in lines if s.src == peer and s.event == "sent" and s.ack >= end)
        delays.append(ack.time_ns - (data.time_ns + 1 * MS))
    return delays


def test_replies_that_carry_delayed_acks_use_up_quick_ack_mode() -> None:
    # tcp_event_ack_sent -> tcp_dec_quickack_mode: every ACK sent while one was scheduled counts,
    # whether it went alone, on a reply, or when the delayed-ACK timer fired.
    net = Network(seed=13, log_segments=True)
    c, a = _pair_on_a_link(net)
    for _ in range(3):  # three prompt exchanges: the server turns interactive (pingpong) mode on
        c.send(b"request")
        net.run(until=net.now + 0.010)
        assert a.recv(100) == b"request"
        a.send(b"reply")
        net.run(until=net.now + 0.090)
        assert c.recv(100) == b"reply"
    c.send(b"unanswered")  # no reply: the delayed-ACK timer fires and leaves interactive mode
    net.run(until=net.now + 0.100)
    assert a.recv(100) == b"unanswered"
    mark = len(net.segment_log)
    for _ in range(14):
        c.send(b"x")
        net.run(until=net.now + 0.100)
    # Quick ACKs used: the first exchange's (16 -> 15), two carried by replies (-> 13) and the
    # timer's (-> 12); so 12 more immediate ACKs, then the 40 ms timer.
    assert _ack_delays(net, c, a, mark) == [0] * 12 + [TCP_DELACK_MIN] * 2


def test_a_fired_delayed_ack_timer_widens_the_window_in_which_a_reply_counts_as_interactive() -> None:
    # tcp_delack_timer_handler on a connection that is not interactive doubles `ato` (up to the
    # RTO); a reply sent within `ato` of the data turns on interactive mode (tcp_event_data_sent),
    # and an interactive connection coming back from idle delays its ACKs even in quick-ack mode.
    def ack_delay_after_idle(reply_after: float) -> int:
        net = Network(seed=14, log_segments=True)
        c, a = _pair_on_a_link(net)
        _leave_quickack_mode(net, c, a)
        c.send(b"request")  # its ACK is delayed; the timer fires at 40 ms: ato 40 -> 80 ms
        net.run(until=net.now + reply_after)
        assert a.recv(100) == b"request"
        a.send(b"reply")
        net.run(until=net.now + 0.5)  # idle for longer than the RTO: quick-ack mode again
        mark = len(net.segment_log)
        c.send(b"after idle")
        net.run(until=net.now + 0.1)
        return _ack_delays(net, c, a, mark)[0]

    assert ack_delay_after_idle(0.060) == TCP_DELACK_MIN  # within the doubled ato: interactive
    assert ack_delay_after_idle(0.100) == 0  # past it: not interactive, so the ACK goes at once


# -- zero window: persist timer and window update -------------------------------------------------


def test_zero_window_is_probed_with_doubling_intervals_until_the_reader_drains() -> None:
    net = Network(seed=12, log_segments=True)
    c, a = _pair_on_a_link(net, SO_RCVBUF=4096)  # the child's buffer: 8192, 6144 of it for data
    me, peer = addr(c), addr(a)
    payload = bytes(range(256)) * 100
    sent = c.send(payload)
    assert sent == len(payload)  # the send buffer takes it all; the window is the limit
    net.run(until=net.now + 30)
    zero_acks = [s for s in segments(net, src=peer, dst=me) if s.window == 0]
    assert zero_acks, "the receiver never advertised a zero window"
    # tcp_probe_timer sends snd_una - 1 (an old byte) so the receiver must answer with an ACK.
    final = zero_acks[-1].ack
    probes = [s for s in segments(net, src=me, dst=peer) if s.length == 0 and s.seq == final - 1]
    assert len(probes) >= 5
    # The persist timer starts when the zero-window ACK for the last byte in flight arrives.
    closing = [z for z in zero_acks if z.ack == final][0]
    closed_at = closing.time_ns + 1 * MS
    rto = c.rto_ns
    assert rto >= TCP_RTO_MIN
    gaps = [b - a_ for a_, b in zip([closed_at] + times(probes), times(probes))]
    assert gaps == [rto << i for i in range(len(gaps))]  # tcp_probe0_when: base << backoff
    # Each probe is answered at once, with the window still 0.
    answers = [s for s in segments(net, src=peer, dst=me) if s.time_ns > closed_at]
    assert [(s.time_ns, s.window) for s in answers] == [(t + 1 * MS, 0) for t in times(probes)]
    got = bytearray(a.recv(100_000))
    assert len(got) == 6144  # capacity: 3/4 of 8192 (payload bytes, no skb truesize)
    # The read opened the window from 0: tcp_cleanup_rbuf sends a window update at once and
    # the sender resumes one link latency later, without waiting for the next probe.
    drained = net.now_ns
    net.run(until=net.now + 0.0015)
    update = segments(net, src=peer, dst=me)[-1]
    assert (update.time_ns, update.window) == (drained, 6144)
    resumed = [s for s in segments(net, src=me, dst=peer) if s.time_ns > drained]
    assert resumed and resumed[0].time_ns == drained + 1 * MS and resumed[0].length > 0
    for _ in range(100):
        if len(got) >= sent:
            break
        net.run(until=net.now + 0.05)
        try:
            got += a.recv(100_000)
        except BlockingIOError:
            pass
    assert bytes(got) == payload


def test_a_read_that_frees_less_than_a_segment_sends_no_window_update() -> None:
    net = Network(seed=13, log_segments=True)
    c, a = _pair_on_a_link(net, SO_RCVBUF=4096)
    c.send(b"z" * 20000)
    net.run(until=net.now + 0.1)
    assert segments(net, src=addr(a))[-1].window == 0
    mark = len(net.segment_log)
    assert len(a.recv(1000)) == 1000  # 1000 free < MSS: receiver SWS avoidance keeps it shut
    net.run(until=net.now + 0.0001)
    assert net.segment_log[mark:] == []
    assert len(a.recv(2072)) == 2072  # half the space free: now the window opens
    update = net.segment_log[mark]
    assert (update.src, update.window) == (addr(a), 3072)
