"""TcpListen and RequestSock: the listener's side of the handshake.

A SYN makes a request sock in the SYN queue (struct request_sock, inet_csk_reqsk_queue_hash_add)
and a SYN-ACK, retransmitted until tcp_synack_retries (tcp_v4_send_synack, reqsk_timer_handler);
the final ACK makes a child socket (tcp_check_req, tcp_create_openreq_child,
tcp_v4_syn_recv_sock) unless the accept queue is full (sk_acceptq_is_full,
tcp_abort_on_overflow). A listener that closes resets its unaccepted children
(inet_csk_listen_stop).
"""

from __future__ import annotations

import collections
from typing import TYPE_CHECKING, cast

from simnet.kernel.clock import Timer
from simnet.kernel.segment import ACK, FIN, RST, SYN, Address, Segment
from simnet.kernel.tcp.constants import (
    CLOSED,
    KEY_IN,
    NEED_RESET,
    NO_REQUESTS,
    SS_CONNECTED,
    TCP_TIMEOUT_INIT,
)
from simnet.kernel.tcp.input import TcpInput

if TYPE_CHECKING:
    from simnet.kernel.tcp.socket import TcpSocket


class RequestSock:
    """A half-open connection on a listener (SYN received, SYN-ACK sent): struct request_sock."""

    __slots__ = ("listener", "local", "remote", "iss", "irs", "window", "peer_window", "retries", "timer", "acked")

    def __init__(
        self, listener: TcpSocket, local: Address, remote: Address, iss: int, irs: int, window: int, peer_window: int
    ) -> None:
        self.peer_window = peer_window
        self.listener = listener
        self.local = local
        self.remote = remote
        self.iss = iss
        self.irs = irs
        self.window = window
        self.retries = 0
        self.timer: Timer | None = None
        # inet_rsk(req)->acked: the final ACK came while the accept queue was full (LINUX.md §1).
        self.acked = False


class TcpListen(TcpInput):
    """The SYN queue, the SYN-ACK and the child a final ACK makes."""

    __slots__ = ()

    # -- the listener's side of the handshake -------------------------------------------------

    def listener_segment(self, seg: Segment, isn: int | None = None) -> None:
        """tcp_v4_do_rcv on a LISTEN socket: SYNs make requests; the final ACK makes a child."""
        flags = seg.flags
        remote = seg.src
        req = self.syn_queue.get(remote)
        if flags & RST:
            if req is not None:
                self._drop_request(req)
            return
        if flags & SYN:
            if flags & ACK:
                self.host.send_reset_for(seg)
                return
            if req is not None:
                self._send_synack(req)  # the client retransmitted its SYN
                return
            if len(self.accept_queue) > self.backlog:
                # sk_acceptq_is_full (strict >, so backlog+1 fit): the SYN is silently dropped and
                # the client retransmits it at 1, 3, 7 ... s (LINUX.md §1).
                self.net.counters["listen_overflows"] += 1
                if self.net.log_segments:
                    self.net.log(seg, "dropped: accept queue full")
                return
            iss = self.net.isn(seg.dst, remote) if isn is None else isn
            from simnet.kernel.settings import mss_for_mtu

            window = self._syn_window(mss_for_mtu(self.net.path(self.host.ip, remote[0]).mtu))
            req = RequestSock(cast("TcpSocket", self), seg.dst, remote, iss, seg.seq, window, seg.window)
            syn_queue = self.syn_queue
            assert isinstance(syn_queue, dict), "a listener has its own syn queue (listen())"
            syn_queue[remote] = req
            self._send_synack(req)
            return
        if not flags & ACK or req is None or seg.ack != req.iss + 1:
            self.host.send_reset_for(seg)
            return
        if len(self.accept_queue) > self.backlog:
            # tcp_check_req's listen_overflow: with tcp_abort_on_overflow=0 the ACK is dropped and
            # the request stays, so the client is ESTABLISHED while we hold only a SYN_RECV.
            self.net.counters["listen_overflows"] += 1
            if self.net.sysctl.tcp_abort_on_overflow:
                self._drop_request(req)
                self.host.send_reset_for(seg)
                return
            req.acked = True
            if self.net.log_segments:
                self.net.log(seg, "dropped: accept queue full")
            return
        child = self._make_child(req, seg)
        accept_queue = self.accept_queue
        assert isinstance(accept_queue, collections.deque), "a listener has its own accept queue (listen())"
        accept_queue.append(child)
        if self.net.queue_watch is not None:
            self.net.queue_watch(cast("TcpSocket", self))
        self.wake(KEY_IN)  # sk_data_ready on the listener
        if seg.data or flags & FIN:
            child.segment_arrived(seg)

    def _send_synack(self, req: RequestSock) -> None:
        self._transmit(Segment(req.local, req.remote, SYN | ACK, req.iss, req.irs + 1, req.window))
        if req.timer is not None:
            req.timer.cancel()
        req.timer = self.net.call_later(TCP_TIMEOUT_INIT << req.retries, lambda: self._synack_timeout(req))

    def _synack_timeout(self, req: RequestSock) -> None:
        if self.syn_queue.get(req.remote) is not req:
            return
        if req.retries >= self.net.sysctl.tcp_synack_retries:
            # reqsk_timer_handler gives up even on an acked request: a client that is already
            # ESTABLISHED and never sends keeps a connection the server has forgotten.
            self.net.counters["synack_expired"] += 1
            self._drop_request(req)
            return
        req.retries += 1
        self.net.counters["synack_retransmits"] += 1
        self._send_synack(req)

    def _drop_request(self, req: RequestSock) -> None:
        if req.timer is not None:
            req.timer.cancel()
        syn_queue = self.syn_queue
        if syn_queue.get(req.remote) is req:
            assert isinstance(syn_queue, dict)  # it holds `req`, so it is a listener's own
            del syn_queue[req.remote]

    def _make_child(self, req: RequestSock, seg: Segment) -> TcpSocket:
        """tcp_create_openreq_child: a clone of the listener's settings, ESTABLISHED."""
        self._drop_request(req)
        # The listener's own class: TcpSocket, which this module cannot import (it builds on it).
        child = cast("TcpSocket", type(self)(self.host))
        child.parent = cast("TcpSocket", self)
        child.local = req.local
        child.remote = req.remote
        child.conn_id = self.net.new_conn_id()
        child.host_conn_no = self.host.next_conn_no()
        child.reuseaddr = self.reuseaddr
        child.nodelay = self.nodelay
        child.rcvbuf, child.rcvbuf_locked = self.rcvbuf, self.rcvbuf_locked
        child.sndbuf, child.sndbuf_locked = self.sndbuf, self.sndbuf_locked
        child.linger = self.linger
        child.iss = req.iss
        child.snd_una = child.snd_nxt = child.snd_max = req.iss + 1
        child.irs = req.irs
        child.rcv_nxt = req.irs + 1
        child.rcv_wnd_edge = child.rcv_nxt + req.window
        child.rcv_wup = child.rcv_nxt
        child.snd_wnd = seg.window
        child.max_window = max(seg.window, req.peer_window)
        child.mss = child._path_mss()
        child.ss_state = SS_CONNECTED
        child._establish()
        self.host.connections[(child.local, child.remote)] = child
        child.port_held = True
        self.host.take_port(child, req.local[1])
        return child

    def _stop_listening(self) -> None:
        """inet_csk_listen_stop: un-accepted children are reset; half-open requests dropped."""
        host = self.host
        if host.listeners.get(self.local) is self:  # type: ignore[arg-type]
            del host.listeners[self.local]  # type: ignore[arg-type]
        self.state = CLOSED
        for req in list(self.syn_queue.values()):
            if req.timer:
                req.timer.cancel()
        self.syn_queue = NO_REQUESTS
        while self.accept_queue:
            child = self.accept_queue.popleft()
            child.orphan = True
            child.closed_fd = True
            if child.state in NEED_RESET:
                child._send_rst()
            child._destroy()
