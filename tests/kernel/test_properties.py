"""Properties of the kernel model that must hold for every interleaving hypothesis can find.

Each test draws a configuration (seed, loopback or a link with latency and MTU, SO_SNDBUF and
SO_RCVBUF from unset through the Linux minimum to large, Nagle on or off) and a bounded list of
socket operations, and runs them through tests/kernel/_exchange.py, which checks the stream and
buffer invariants after every call and every simpy event. A failure shrinks to a short list of
operations that replays exactly: the model is deterministic for a given seed.

The properties:
* every byte send() accepted arrives exactly once and in order, and EOF comes only after the
  last one -- or, when one side resets mid-stream (SO_LINGER 0), each side has received a prefix
  of what the other sent (LINUX.md §3);
* buffers never exceed their bounds: len(rcvq) <= _rcv_capacity(), len(sndq) <= sndbuf;
* a listener's accept queue never holds more than backlog + 1 (LINUX.md §1), and every client
  gets in once the server keeps accepting;
* level-triggered EPOLLIN is reported iff recv would not raise EAGAIN (LINUX.md §4: tcp_poll);
* level-triggered EPOLLOUT is reported iff the 2/3 write-space rule holds or the sending side
  is shut down (LINUX.md §4: __sk_stream_is_writeable, SEND_SHUTDOWN).
"""

from __future__ import annotations

import errno
import select
import socket
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ._exchange import CLIENT, SERVER, Config, Exchange, InvariantBroken, Path, advance, apply, make_network

SETTINGS = settings(
    deadline=None,
    max_examples=150,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

# -- strategies -------------------------------------------------------------------------------

seeds = st.integers(0, 2**32 - 1)
paths = st.one_of(
    st.just(Path(latency=None)),  # 127.0.0.1 inside one host: synchronous delivery, MTU 65536
    st.builds(
        Path,
        latency=st.sampled_from([0.0, 0.0001, 0.001, 0.02]),
        mtu=st.sampled_from([576, 1500, 9000]),
    ),
)
# What setsockopt is given: None leaves the buffer unlocked (autotuned); 1..1152 hit the Linux
# minimum (SOCK_MIN_RCVBUF 2304, SOCK_MIN_SNDBUF 4608, LINUX.md §2).
buffer_sizes = st.sampled_from([None, 1, 1152, 2048, 4096, 16384, 65536, 1 << 20])
configs = st.builds(
    Config,
    seed=seeds,
    path=paths,
    client_snd=buffer_sizes,
    client_rcv=buffer_sizes,
    server_snd=buffer_sizes,
    server_rcv=buffer_sizes,
    client_nodelay=st.booleans(),
    server_nodelay=st.booleans(),
)
sides = st.sampled_from([CLIENT, SERVER])
sizes = st.one_of(st.integers(1, 64), st.integers(1, 4096), st.integers(4096, 70000))
# 40 ms is the delayed-ACK timer, 0.2 s the minimum RTO and persist timer.
dts = st.sampled_from([0.0, 1e-5, 1e-4, 1e-3, 0.01, 0.041, 0.2, 1.0])
sends = st.tuples(st.just("send"), sides, sizes)
recvs = st.tuples(st.just("recv"), sides, sizes)
advances = st.tuples(st.just("advance"), dts)
shut_wrs = st.tuples(st.just("shut_wr"), sides)
stream_ops = st.lists(st.one_of(sends, recvs, advances, shut_wrs), max_size=40)


@st.composite
def with_one_reset(draw: Any, ops: st.SearchStrategy[list[tuple[Any, ...]]]) -> list[tuple[Any, ...]]:
    """The ops with an abortive close (SO_LINGER 0) of one side inserted somewhere."""
    drawn = draw(ops)
    at = draw(st.integers(0, len(drawn)))
    return drawn[:at] + [("reset", draw(sides))] + drawn[at:]


# -- streams and buffers ----------------------------------------------------------------------


@SETTINGS
@given(config=configs, ops=stream_ops)
def test_every_byte_sent_arrives_exactly_once_and_in_order_then_eof(config: Config, ops: list[Any]) -> None:
    ex = Exchange(config)
    for op in ops:
        apply(ex, op)
    ex.finish()  # both sides SHUT_WR, read to EOF: received == sent, exactly


@SETTINGS
@given(config=configs, ops=with_one_reset(stream_ops))
def test_after_a_reset_mid_stream_each_side_has_received_a_prefix_of_what_was_sent(
    config: Config, ops: list[Any]
) -> None:
    ex = Exchange(config)
    for op in ops:
        apply(ex, op)
    ex.finish()  # prefix checked at every step; the survivor ends with one error at most, then b''
    survivor = ex.peer(ex.reset_by)  # type: ignore[arg-type]
    assert survivor.eof
    # After the RST nothing more arrives and the error has been consumed: recv is b'' for good.
    assert survivor.sock.recv(10) == b""


@settings(SETTINGS, max_examples=60)
@given(
    config=configs,
    ops=st.lists(st.one_of(sends, advances), max_size=30),
    reads=st.lists(st.tuples(sizes, dts), max_size=30),
)
def test_buffers_never_exceed_their_bounds_while_a_reader_lags(
    config: Config, ops: list[Any], reads: list[tuple[int, float]]
) -> None:
    """Both sides push as hard as they can first (the check runs after every event), then the
    reader works through the backlog in drawn bites, still checked at every step."""
    ex = Exchange(config)
    for op in ops:
        apply(ex, op)
        apply(ex, ("send", CLIENT, 70000))
        apply(ex, ("send", SERVER, 70000))
    for n, dt in reads:
        ex.recv(SERVER, n)
        ex.recv(CLIENT, n)
        ex.advance(dt)
    ex.finish()


# -- the accept queue -------------------------------------------------------------------------

LISTENER_IP = "10.0.0.1"


@settings(SETTINGS, max_examples=80)
@given(
    seed=seeds,
    backlog=st.integers(0, 8),
    latency=st.sampled_from([0.0, 0.0005, 0.01]),
    clients=st.integers(1, 16),
    # (seconds until this client connects); drawn per client, truncated to `clients`
    starts=st.lists(st.sampled_from([0.0, 0.0001, 0.001, 0.01, 0.5, 1.0, 2.5]), min_size=16, max_size=16),
    accepts=st.lists(st.tuples(st.integers(0, 4), dts), max_size=20),
)
def test_accept_queue_never_exceeds_backlog_plus_one(
    seed: int, backlog: int, latency: float, clients: int, starts: list[float], accepts: list[tuple[int, float]]
) -> None:
    net = make_network(seed)
    server = net.host(LISTENER_IP)
    listener = server.socket()
    listener.bind((LISTENER_IP, 80))
    listener.listen(backlog)
    listener.setblocking(False)
    hosts = []
    for i in range(4):  # four client hosts, so several SYNs travel at once
        ip = f"10.0.1.{i + 1}"
        net.link(ip, LISTENER_IP, latency=latency)
        hosts.append(net.host(ip))
    pending: list[tuple[float, int]] = sorted((starts[i], i) for i in range(clients))
    conns: dict[int, Any] = {}
    accepted: list[Any] = []
    t0 = net.now

    def check() -> None:
        assert len(listener.accept_queue) <= listener.backlog + 1, (
            f"accept queue {len(listener.accept_queue)} > backlog {listener.backlog} + 1 at t={net.now}"
        )

    def start_due() -> None:
        while pending and pending[0][0] <= net.now - t0:
            _, i = pending.pop(0)
            c = hosts[i % 4].socket()
            c.setblocking(False)
            assert c.connect_ex((LISTENER_IP, 80)) == errno.EINPROGRESS
            conns[i] = c
            check()

    def timed_out() -> set[int]:
        # Clients whose connect failed: SO_ERROR is read once, so look at the socket's own error.
        return {i for i, c in conns.items() if c.state == "UNCONN" and c.err == errno.ETIMEDOUT}

    def accept(n: int) -> None:
        for _ in range(n):
            try:
                child, _ = listener.accept()
            except BlockingIOError:
                break
            accepted.append(child)
            check()

    for n, dt in accepts:
        start_due()
        accept(n)
        advance(net, dt, check)
    # Now keep accepting: every client gets in by its next SYN (or its data/ACK) retransmit.
    for _ in range(400):
        start_due()
        accept(64)
        if not pending and len(accepted) + net.counters.get("synack_expired", 0) + len(timed_out()) == clients:
            break
        advance(net, 0.5, check)
    # A client whose final ACK met a full queue every time the server retransmitted its SYN-ACK
    # is ESTABLISHED against a request the server dropped after tcp_synack_retries (LINUX.md §1):
    # it is never accepted. A client whose every SYN met a full queue -- clients that start
    # together retry together, and each retry lets backlog+1 of them in -- gives up with
    # ETIMEDOUT after tcp_syn_retries (LINUX.md §1). Every other client is accepted.
    expired = net.counters.get("synack_expired", 0)
    gave_up = timed_out()
    assert len(accepted) + expired + len(gave_up) == clients, (
        f"{len(accepted)} of {clients} accepted by t={net.now}\n{net.ss()}"
    )
    sysctl = net.sysctl
    syns_per_client = 1 + sysctl.tcp_syn_retries + sysctl.tcp_syn_linear_timeouts
    # Each of those clients had every one of its SYNs dropped by the full queue.
    assert net.counters.get("listen_overflows", 0) >= len(gave_up) * syns_per_client
    assert all(c.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0 for i, c in conns.items() if i not in gave_up)
    assert {a.getpeername() for a in accepted} <= {c.getsockname() for c in conns.values()}
    assert len({a.getpeername() for a in accepted}) == len(accepted)


# -- level-triggered epoll readiness ----------------------------------------------------------

epoll_ops = st.lists(
    st.one_of(
        sends,
        recvs,
        advances,
        shut_wrs,
        st.tuples(st.just("shut_rd"), sides),
        st.tuples(st.just("reset"), sides),
    ),
    max_size=40,
)
LT_MASK = select.EPOLLIN | select.EPOLLOUT | select.EPOLLRDHUP


def _lt_epolls(ex: Exchange) -> list[tuple[Any, Any]]:
    """One level-triggered epoll per side, on the side's own host (the two may share a host)."""
    out = []
    for side in ex.sides:
        ep = side.sock.host.epoll()
        ep.register(side.sock.fileno(), LT_MASK)
        out.append((ep, side.sock.fileno()))
    return out


def _reported(ep: Any, fd: int) -> int:
    return dict(ep.poll(0)).get(fd, 0)


@settings(SETTINGS, max_examples=120)
@given(config=configs, ops=epoll_ops, when=st.lists(st.booleans(), min_size=40, max_size=40))
def test_level_triggered_epollin_is_reported_iff_recv_would_not_raise_eagain(
    config: Config, ops: list[Any], when: list[bool]
) -> None:
    ex = Exchange(config, strict=False)
    epolls = _lt_epolls(ex)

    def check_in() -> None:
        for side, (ep, fd) in zip(ex.sides, epolls):
            if side.closed:
                continue
            reported = bool(_reported(ep, fd) & select.EPOLLIN)
            try:
                # MSG_PEEK leaves the data queued; a pending error is consumed as Linux does.
                side.sock.recv(1, socket.MSG_DONTWAIT | socket.MSG_PEEK)
                readable = True
            except BlockingIOError:
                readable = False
            except OSError:
                readable = True  # an error to report: recv does not block, and tcp_poll says IN
            assert reported == readable, (
                f"{side.name}: EPOLLIN {'reported' if reported else 'not reported'} but recv "
                f"{'would not block' if readable else 'raises EAGAIN'}; state {side.sock.state}, "
                f"rcvq {len(side.sock.rcvq)}, t={ex.net.now}"
            )

    for op, check_here in zip(ops, when):
        apply(ex, op)
        if check_here:
            check_in()
    ex.advance(1.0)
    check_in()


@settings(SETTINGS, max_examples=120)
@given(config=configs, ops=epoll_ops, when=st.lists(st.booleans(), min_size=40, max_size=40))
def test_level_triggered_epollout_is_reported_iff_two_thirds_rule_or_send_shutdown(
    config: Config, ops: list[Any], when: list[bool]
) -> None:
    ex = Exchange(config, strict=False)
    epolls = _lt_epolls(ex)

    def check_out() -> None:
        for side, (ep, fd) in zip(ex.sides, epolls):
            if side.closed:
                continue
            sock = side.sock
            reported = bool(_reported(ep, fd) & select.EPOLLOUT)
            queued = len(sock.sndq)
            # __sk_stream_is_writeable: sk_sndbuf - wmem_queued >= wmem_queued / 2, i.e. at most
            # 2/3 queued. SEND_SHUTDOWN: our SHUT_WR, or the connection is gone (tcp_done).
            two_thirds = sock.sndbuf - queued >= queued >> 1
            send_shut = side.shut_wr or sock.state == "UNCONN"
            assert reported == (two_thirds or send_shut), (
                f"{side.name}: EPOLLOUT {'reported' if reported else 'not reported'} with "
                f"{queued} of sndbuf {sock.sndbuf} queued, shut_wr={side.shut_wr}, "
                f"state {sock.state}, t={ex.net.now}"
            )

    for op, check_here in zip(ops, when):
        apply(ex, op)
        if check_here:
            check_out()
    ex.advance(1.0)
    check_out()


def test_invariant_checker_catches_a_wrong_byte() -> None:
    """The checker itself: a corrupted receive buffer is reported, not waved through."""
    ex = Exchange(Config(seed=1, path=Path(latency=None)))
    ex.send(CLIENT, 10)
    ex.sides[SERVER].sock.rcvq[3] ^= 0xFF
    try:
        ex.recv(SERVER, 10)
    except InvariantBroken as e:
        assert "wrong byte at offset 3" in str(e)
    else:
        raise AssertionError("a corrupted byte went unnoticed")
