"""LINUX.md §4: epoll.

Readiness is tcp_poll(sk) masked by the registered events, plus ERR and HUP which are always
reported. ET works by wake-up callbacks: a wake whose key meets the registered events queues the
item, and epoll_wait re-polls and reports the *whole* current mask. ADD and MOD poll at once.
ONESHOT disables the item after one report until MOD re-arms it. Masks are compared as strings
('IN|OUT|RDHUP') so a failure reads like the LINUX.md table.
"""

from __future__ import annotations

import select
import socket

import pytest

from ._harness import (
    drain,
    drain_all,
    fill,
    listener,
    masks,
    outcome,
    pair,
    pattern,
    raised,
    rst_close,
    so_error,
)

IN, OUT, PRI = select.EPOLLIN, select.EPOLLOUT, select.EPOLLPRI
ERR, HUP, RDHUP = select.EPOLLERR, select.EPOLLHUP, select.EPOLLRDHUP
ET, ONESHOT = select.EPOLLET, select.EPOLLONESHOT
ALL = IN | OUT | RDHUP | PRI  # what LINUX.md's mask table registered


def seen(ep, timeout=0):
    """One epoll_wait as {fd: 'IN|OUT'}; {} when nothing is ready."""
    return {fd: masks(ev) for fd, ev in ep.poll(timeout)}


# ---- the mask table -------------------------------------------------------------------------


def test_fresh_connected_and_accepted_sockets_report_out(backend):
    c, a = pair(backend)
    ep = backend.epoll()
    ep.register(c, ALL)
    ep.register(a, ALL)
    assert seen(ep) == {c.fileno(): "OUT", a.fileno(): "OUT"}


def test_never_connected_socket_reports_out_hup(backend):
    # state TCP_CLOSE -> HUP; not SYN_SENT and not send-shutdown-blocked -> OUT.
    s = backend.socket()
    ep = backend.epoll()
    ep.register(s, ALL)
    assert seen(ep) == {s.fileno(): "OUT|HUP"}


def test_listener_reports_in_only_while_accept_queue_is_nonempty(backend):
    L = listener(backend, 4)
    ep = backend.epoll()
    ep.register(L, ALL)
    assert seen(ep) == {}
    x = backend.socket()
    x.connect(L.getsockname())
    assert seen(ep) == {L.fileno(): "IN"}
    assert seen(ep) == {L.fileno(): "IN"}  # level-triggered: again
    L.accept()
    assert seen(ep) == {}


def test_listener_edge_triggered_reports_once_per_new_connection(backend):
    L = listener(backend, 4)
    ep = backend.epoll()
    ep.register(L, ALL)
    x = backend.socket()
    x.connect(L.getsockname())
    ep.modify(L, IN | ET)  # MOD polls at once: the pending connection is reported once
    assert seen(ep) == {L.fileno(): "IN"}
    assert seen(ep) == {}
    y = backend.socket()
    y.connect(L.getsockname())  # a new arrival wakes the item again
    assert seen(ep) == {L.fileno(): "IN"}
    assert seen(ep) == {}


def test_unread_data_reports_in_on_every_level_triggered_poll(backend):
    c, a = pair(backend)
    ep = backend.epoll()
    ep.register(a, IN)
    c.send(b"12345")
    assert seen(ep) == {a.fileno(): "IN"}
    assert seen(ep) == {a.fileno(): "IN"}
    a.recv(2)
    assert seen(ep) == {a.fileno(): "IN"}
    drain(a, 3, backend)
    assert seen(ep) == {}


@pytest.mark.parametrize("how", ["shut_wr", "close"])
def test_peer_fin_reports_in_out_rdhup(backend, how):
    c, a = pair(backend)
    ep = backend.epoll()
    ep.register(a, ALL)
    if how == "shut_wr":
        c.shutdown(socket.SHUT_WR)
    else:
        c.close()
    assert seen(ep) == {a.fileno(): "IN|OUT|RDHUP"}


def test_own_shut_wr_reports_out_and_peer_sees_rdhup(backend):
    # Our SHUT_WR: SEND_SHUTDOWN makes tcp_poll report OUT (writes will EPIPE, not block).
    c, a = pair(backend)
    ep = backend.epoll()
    ep.register(a, ALL)
    ep.register(c, ALL)
    a.shutdown(socket.SHUT_WR)
    assert seen(ep) == {a.fileno(): "OUT", c.fileno(): "IN|OUT|RDHUP"}


def test_both_directions_shut_report_hup(backend):
    # shutdown == SHUTDOWN_MASK -> HUP: peer FIN + our SHUT_WR, or our own SHUT_RDWR.
    c, a = pair(backend)
    ep = backend.epoll()
    ep.register(a, ALL)
    c.shutdown(socket.SHUT_WR)
    a.shutdown(socket.SHUT_WR)
    assert seen(ep) == {a.fileno(): "IN|OUT|HUP|RDHUP"}
    c2, a2 = pair(backend)
    ep2 = backend.epoll()
    ep2.register(a2, ALL)
    a2.shutdown(socket.SHUT_RDWR)
    assert seen(ep2) == {a2.fileno(): "IN|OUT|HUP|RDHUP"}


def test_rst_reports_err_until_so_error_is_read(backend):
    c, a = pair(backend)
    ep = backend.epoll()
    ep.register(a, ALL)
    rst_close(c)
    assert seen(ep) == {a.fileno(): "IN|OUT|ERR|HUP|RDHUP"}
    assert so_error(a) == 104  # ECONNRESET, consumed by the read
    assert seen(ep) == {a.fileno(): "IN|OUT|HUP|RDHUP"}


def test_err_and_hup_are_reported_even_with_an_empty_mask(backend):
    c, a = pair(backend)
    ep = backend.epoll()
    ep.register(a, 0)
    assert seen(ep) == {}
    rst_close(c)
    assert seen(ep) == {a.fileno(): "ERR|HUP"}


def test_register_without_mask_means_in_pri_out(backend):
    # select.epoll.register's default mask is IN|PRI|OUT -- RDHUP is not in it.
    c, a = pair(backend)
    ep = backend.epoll()
    ep.register(a)
    assert seen(ep) == {a.fileno(): "OUT"}
    c.send(b"x")
    assert seen(ep) == {a.fileno(): "IN|OUT"}
    c.close()
    assert seen(ep) == {a.fileno(): "IN|OUT"}


# ---- edge-triggered -------------------------------------------------------------------------


def test_edge_triggered_in_reports_again_when_new_data_arrives_while_old_is_unread(backend):
    c, a = pair(backend)
    ep = backend.epoll()
    ep.register(a, IN)
    c.send(b"12345")
    ep.modify(a, IN | ET)  # MOD with data present -> reported once
    assert seen(ep) == {a.fileno(): "IN"}
    assert seen(ep) == {}
    assert a.recv(2) == b"12"  # a partial read brings no new edge
    assert seen(ep) == {}
    c.send(b"6")  # new data is a new wake-up, although data was already unread
    assert seen(ep) == {a.fileno(): "IN"}
    assert seen(ep) == {}
    assert drain(a, 4, backend) == b"3456"


def test_edge_triggered_in_out_reports_whole_mask_on_each_data_arrival(backend):
    # LINUX.md §4 Check: the IN wake-up re-polls, and OUT is still true, so each arrival
    # reports IN|OUT; a RST then reports everything.
    c, a = pair(backend)
    ep = backend.epoll()
    mask = IN | OUT | RDHUP
    ep.register(a, mask | ET)
    assert ep.poll(0) == [(a.fileno(), OUT)]
    assert ep.poll(0) == []
    c.send(b"x")
    assert ep.poll(0) == [(a.fileno(), IN | OUT)]
    c.send(b"y")
    assert ep.poll(0) == [(a.fileno(), IN | OUT)]  # unread data, new edge
    assert ep.poll(0) == []
    rst_close(c)
    assert ep.poll(0)[0][1] == mask | HUP | ERR


def test_edge_triggered_out_alone_ignores_data_arrival_and_acked_sends(backend):
    c, a = pair(backend)
    ep = backend.epoll()
    ep.register(a, OUT | ET)
    assert seen(ep) == {a.fileno(): "OUT"}
    assert seen(ep) == {}
    c.send(b"x")  # an IN wake-up does not meet the registered OUT
    assert seen(ep) == {}
    a.send(b"hello")  # ACKed at once; space never ran out, so no write-space wake-up
    backend.settle(0.05)
    assert seen(ep) == {}
    assert drain(c, 5, backend) == b"hello"


# ---- EPOLLONESHOT ---------------------------------------------------------------------------


def test_oneshot_fires_once_until_modify_rearms_it(backend):
    c, a = pair(backend)
    ep = backend.epoll()
    ep.register(a, IN | ONESHOT)
    c.send(b"1")
    assert seen(ep) == {a.fileno(): "IN"}
    assert seen(ep) == {}
    c.send(b"2")  # disabled: more data reports nothing
    assert seen(ep) == {}
    ep.modify(a, IN | ONESHOT)  # re-arm; MOD polls at once and data is pending
    assert seen(ep) == {a.fileno(): "IN"}
    assert seen(ep) == {}
    assert drain(a, 2, backend) == b"12"


def test_add_of_a_disabled_oneshot_fd_raises_eexist(backend):
    c, a = pair(backend)
    ep = backend.epoll()
    ep.register(a, IN | ONESHOT)
    c.send(b"1")
    assert seen(ep) == {a.fileno(): "IN"}
    assert raised(ep.register, a, IN) == ("FileExistsError", "EEXIST")


def test_two_epoll_instances_both_report_the_same_event(backend):
    c, a = pair(backend)
    e1, e2 = backend.epoll(), backend.epoll()
    e1.register(a, IN | ET)
    e2.register(a, IN | ET)
    c.send(b"x")
    assert seen(e1) == {a.fileno(): "IN"}
    assert seen(e2) == {a.fileno(): "IN"}
    assert seen(e1) == {} and seen(e2) == {}


# ---- closed descriptors ---------------------------------------------------------------------


def test_closing_the_only_fd_removes_it_from_the_interest_set(backend):
    c, a = pair(backend)
    ep = backend.epoll()
    ep.register(a, IN)
    a.close()
    c.send(b"x")  # whatever the peer does now (the RST answering it, too) is not reported
    assert seen(ep) == {}


def test_events_keep_coming_for_a_closed_fd_while_a_dup_is_alive(backend):
    # epoll(7) Q6: the interest key is (fd, open file description); a dup keeps the description
    # alive, so events go on under the *old* fd number, which unregister can no longer name.
    c, a = pair(backend)
    ep = backend.epoll()
    ep.register(a, IN)
    afd = a.fileno()
    d = backend.track(a.dup())
    a.close()
    c.send(b"x")
    assert seen(ep) == {afd: "IN"}
    assert raised(ep.unregister, afd) == ("OSError", "EBADF")
    assert d.recv(10) == b"x"


# ---- write space ----------------------------------------------------------------------------


def test_epollout_returns_after_a_full_send_buffer_drains(backend):
    # LINUX.md §4 robust form: after EAGAIN no OUT (LT or ET); once the peer has read
    # everything and things settled, OUT is back on both. Not checked: the byte position at
    # which it comes back (it moves in skb-sized jumps).
    c, a = pair(backend, snd=16384, rcv=16384)
    total, last = fill(c, 1024)
    assert last == ("err", "EAGAIN")
    lt, et = backend.epoll(), backend.epoll()
    lt.register(c, OUT)
    et.register(c, OUT | ET)
    assert seen(lt) == {} and seen(et) == {}
    got = drain(a, total, backend)
    assert got == pattern(0, total)
    backend.settle(0.05)
    assert seen(lt) == {c.fileno(): "OUT"}
    assert seen(et) == {c.fileno(): "OUT"}
    assert seen(et) == {}


def test_epollout_is_withheld_once_two_thirds_of_the_send_buffer_is_queued(backend):
    # Writable <=> sk_sndbuf - wmem_queued >= wmem_queued/2, i.e. queued <= 2/3 of SO_SNDBUF,
    # while send() itself works until the buffer is full. Against a reader that never reads (and
    # a tiny receive buffer), every step below is a quiescent point: send one chunk, poll(0).
    # OUT must vanish strictly before the first EAGAIN, at about 2/3 of the bytes that fit.
    # wmem_queued counts skb truesize, but with equal chunks truesize is proportional to the
    # payload, so the ratio of payload counts is checked with a tolerance.
    c, a = pair(backend, snd=65536, rcv=2048)
    ep = backend.epoll()
    ep.register(c, OUT)
    total, lost_at = 0, None
    for _ in range(10_000):
        r = outcome(c.send, pattern(total, 1024))
        if r[0] != "ok":
            break
        total += r[1]
        writable = bool(ep.poll(0))
        if lost_at is None and not writable:
            lost_at = total
        if lost_at is not None:
            assert not writable, "OUT came back while nothing was drained"
    assert r == ("err", "EAGAIN")
    assert lost_at is not None and lost_at < total
    assert 0.55 <= lost_at / total <= 0.8, (lost_at, total)
    assert drain(a, total, backend) == pattern(0, total)
    backend.settle(0.05)
    assert seen(ep) == {c.fileno(): "OUT"}


# ---- epoll_wait itself ----------------------------------------------------------------------


def test_poll_with_timeout_waits_and_returns_nothing_when_idle(backend):
    c, a = pair(backend)
    ep = backend.epoll()
    ep.register(a, IN)
    t0 = backend.monotonic()
    assert ep.poll(0.1) == []
    assert 0.08 <= backend.monotonic() - t0 < 0.5


def test_poll_returns_at_most_maxevents(backend):
    ep = backend.epoll()
    socks = [pair(backend)[1] for _ in range(3)]
    for s in socks:
        ep.register(s, OUT)
    assert len(ep.poll(0, 1)) == 1
    assert len(ep.poll(0, 2)) == 2
    assert sorted(fd for fd, _ in ep.poll(0)) == sorted(s.fileno() for s in socks)


def test_level_triggered_poll_with_maxevents_takes_turns_among_ready_fds(backend):
    # ep_send_events re-queues a reported LT item at the tail of the ready list, so polling one
    # event at a time cycles through every ready fd instead of starving the later ones.
    ep = backend.epoll()
    socks = [pair(backend)[1] for _ in range(3)]
    for s in socks:
        ep.register(s, OUT)
    turns = [ep.poll(0, 1)[0][0] for _ in range(6)]
    fds = [s.fileno() for s in socks]
    assert sorted(turns[:3]) == sorted(fds)
    assert turns[3:] == turns[:3]


def test_modify_and_unregister_take_effect_at_once(backend):
    c, a = pair(backend)
    ep = backend.epoll()
    ep.register(a, IN)
    c.send(b"x")
    assert seen(ep) == {a.fileno(): "IN"}
    ep.modify(a, OUT)
    assert seen(ep) == {a.fileno(): "OUT"}
    ep.unregister(a)
    assert seen(ep) == {}
    assert drain_all(a, backend, quiet=0.01) == b"x"
