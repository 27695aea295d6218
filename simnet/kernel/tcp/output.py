"""TcpOutput: what a socket sends, and the timers that make it send again.

Windows and sizes (tcp_select_window, tcp_select_initial_window, tcp_current_mss), the
transmit path with Nagle and the send window (tcp_write_xmit -> tcp_transmit_skb, as _output),
ACKs and RSTs (tcp_send_ack, tcp_send_active_reset), the SYN (tcp_connect), and the timers of
net/ipv4/tcp_timer.c: the RTO with exponential backoff and go-back-N (tcp_retransmit_timer),
retransmitting the head (tcp_retransmit_skb, also fast retransmit's), the zero-window probe
(tcp_probe_timer), the delayed ACK (tcp_delack_timer), TIME_WAIT and orphaned FIN_WAIT2
(tcp_time_wait, tcp_fin_timeout). Then the ends of a connection that the timers and both
directions reach: tcp_done, inet_csk_destroy_sock, tcp_write_err, a crash, TIME_WAIT.
"""

from __future__ import annotations

import errno
from typing import TYPE_CHECKING, cast

from simnet.kernel.segment import ACK, FIN, PSH, RST, SYN, Segment
from simnet.kernel.tcp.base import TcpBase
from simnet.kernel.tcp.constants import (
    CLOSED,
    FIN_WAIT2,
    KEY_ALL,
    LISTEN,
    MAX_SYN_WINDOW,
    NO_REQUESTS,
    NO_SEGMENTS,
    SHUTDOWN_MASK,
    SYN_RECV,
    SYN_SENT,
    TCP_ATO_MIN,
    TCP_MSS_DEFAULT,
    TCP_PINGPONG_THRESH,
    TCP_RETRIES2_TIMEOUT,
    TCP_RTO_MAX,
    TCP_RTO_MIN,
    TCP_TIMEWAIT_LEN,
    TIME_WAIT,
)

if TYPE_CHECKING:
    from simnet.kernel.tcp.socket import TcpSocket


class TcpOutput(TcpBase):
    """Segments out: windows, _output, ACK/RST/SYN, retransmission and the other timers."""

    __slots__ = ()


    def _rcv_capacity(self) -> int:
        return self.rcvbuf * 3 >> 2

    def _select_window(self) -> int:
        """__tcp_select_window: the free receive space, but no silly small windows.

        Once less than half the buffer is free, Linux advertises 0 rather than a window smaller
        than one segment, so a sender does not dribble tiny segments (receiver-side SWS avoidance).
        """
        capacity = self._rcv_capacity()
        free = capacity - len(self.rcvq)
        if free < capacity >> 1 and free < min(self.rcv_mss, capacity >> 1):
            return 0
        return free if free > 0 else 0

    def _eff_mss(self) -> int:
        # tcp_bound_to_half_wnd: never a segment larger than half the biggest window seen. This is
        # why Linux's first partial send on loopback is 32741 bytes, half of the 65483 SYN window.
        mss = self.mss
        max_window = self.max_window
        if max_window > TCP_MSS_DEFAULT:
            half = max_window >> 1
            if mss > half:
                return max(half, 68)
        return mss

    def _transmit(self, seg: Segment) -> None:
        if seg.data and self.ato and self.net.env.now - self.last_data_time < self.ato:
            # tcp_event_data_sent: a reply within `ato` of the last data received counts
            # towards interactive (pingpong) mode.
            self.pingpong += 1
        self.net.transmit(self.host, seg)

    def _send_ack(self) -> None:
        if self.remote is None:
            return
        self._transmit(Segment(self.local, self.remote, ACK, self.snd_nxt, self.rcv_nxt, self._advertise()))  # type: ignore[arg-type]

    def _advertise(self) -> int:
        """The window to put in an outgoing segment; every ACK we send goes through here."""
        window = self._select_window()
        self.rcv_wnd_edge = self.rcv_nxt + window
        self.rcv_wup = self.rcv_nxt
        timer = self.delack_timer
        if timer is not None:
            # A delayed ACK rides on this segment (tcp_event_ack_sent -> tcp_dec_quickack_mode:
            # it counts against quick-ack mode as a pure ACK would).
            timer.cancel()
            self.delack_timer = None
            self._dec_quickack_mode()
        return window

    def _dec_quickack_mode(self) -> None:
        """tcp_dec_quickack_mode: one quick ACK fewer; leaving quick-ack mode deflates `ato`."""
        if self.quickacks > 0:
            self.quickacks -= 1
            if self.quickacks == 0:
                self.ato = TCP_ATO_MIN

    def _send_rst(self) -> None:
        if self.remote is None:
            return
        self.net.counters["resets_sent"] += 1
        self._transmit(Segment(self.local, self.remote, RST | ACK, self.snd_nxt, self.rcv_nxt, 0))  # type: ignore[arg-type]

    def _output(self) -> None:
        """tcp_write_xmit: send what the window, Nagle and the MSS allow; then a pending FIN."""
        if self.remote is None or self.state in (SYN_SENT, SYN_RECV, CLOSED, LISTEN):
            return
        mss = self._eff_mss()
        sndq = self.sndq
        queued_end = self.snd_una + len(sndq)
        while True:
            unsent = queued_end - self.snd_nxt
            if unsent <= 0:
                break
            room = self.snd_una + self.snd_wnd - self.snd_nxt
            n = unsent if unsent < mss else mss
            if room < n:
                n = room
            if n <= 0:
                # Zero window with nothing in flight: only the persist timer can learn more.
                if self.snd_nxt == self.snd_una:
                    self._arm_persist()
                break
            in_flight = self.snd_nxt != self.snd_una
            if n < mss and n == unsent and in_flight and not self.nodelay and not self.fin_pending:
                # Nagle (RFC 896): hold a small segment while data is unacknowledged.
                break
            offset = self.snd_nxt - self.snd_una
            data = bytes(sndq[offset : offset + n])
            flags = ACK
            last = n == unsent
            if last:
                flags |= PSH
                if self.fin_pending and not self.fin_sent:
                    flags |= FIN  # tcp_send_fin piggybacks on the last unsent data
            seq = self.snd_nxt
            self.snd_nxt = seq + n
            if flags & FIN:
                self.fin_sent = True
                self.fin_seq = self.snd_nxt
                self.snd_nxt += 1
            if self.snd_nxt > self.snd_max:
                if self.rtt_seq < 0:
                    self.rtt_seq, self.rtt_start = self.snd_nxt, self.net.env.now
                self.snd_max = self.snd_nxt
            self._transmit(Segment(self.local, self.remote, flags, seq, self.rcv_nxt, self._advertise(), data))  # type: ignore[arg-type]
            if self.rto_timer is None:
                self._arm_rto(self.rto_ns)
        if self.fin_pending and not self.fin_sent and queued_end == self.snd_nxt:
            # A FIN occupies one sequence number and needs no window.
            self.fin_sent = True
            self.fin_seq = self.snd_nxt
            seq = self.snd_nxt
            self.snd_nxt += 1
            if self.snd_nxt > self.snd_max:
                self.snd_max = self.snd_nxt
            self._transmit(Segment(self.local, self.remote, FIN | ACK, seq, self.rcv_nxt, self._advertise()))  # type: ignore[arg-type]
            if self.rto_timer is None:
                self._arm_rto(self.rto_ns)

    def _syn_window(self, mss: int) -> int:
        """tcp_select_initial_window: the free space, at most 65535 (a SYN's window is never
        scaled), rounded down to a multiple of the MSS. So Linux's SYN on Ethernet offers 64240
        (44 x 1460) and its SYN-ACK 65160 (45 x 1448, timestamps counted); on loopback 65495 and
        65483 -- half of which is the 32741-byte segment of LINUX.md §2 and the TCP_MAXSEG its
        machine line reports. (Linux rounds before capping at 65535, from a space of about half
        the buffer; the model's space is 3/4 of it, and capping first lands on Linux's numbers.)"""
        window = min(self._rcv_capacity(), MAX_SYN_WINDOW)
        if window > mss:
            window -= window % mss
        return window

    def _path_mss(self) -> int:
        assert self.remote is not None
        from simnet.kernel.settings import mss_for_mtu

        return mss_for_mtu(self.net.path(self.host.ip, self.remote[0]).mtu)

    def _send_syn(self) -> None:
        if self.retries == 0:
            self.rtt_start = self.net.env.now
        # The connector quantizes by its advertised MSS without the timestamp option, which it
        # cannot count on yet (tcp_connect_init: ts_recent_stamp is 0).
        window = self._syn_window(self.mss + 12)
        self._transmit(Segment(self.local, self.remote, SYN, self.iss, 0, window))  # type: ignore[arg-type]
        linear = self.net.sysctl.tcp_syn_linear_timeouts
        backoff = self.retries - linear if self.retries > linear else 0
        self._arm_rto(self.rto_ns << backoff)

    # -- timers -------------------------------------------------------------------------------

    def _arm_rto(self, delay: int) -> None:
        self.rto_timer = self._rto_entry = self.net.rearm(self._rto_entry, min(delay, TCP_RTO_MAX), self._on_rto)

    def _cancel_timers(self) -> None:
        for name in ("rto_timer", "delack_timer", "persist_timer", "state_timer"):
            timer = getattr(self, name)
            if timer is not None:
                timer.cancel()
                setattr(self, name, None)

    def _on_rto(self) -> None:
        self.rto_timer = None
        state = self.state
        if state == SYN_SENT:
            # SYN retransmits on the schedule of Sysctl.tcp_syn_linear_timeouts, then ETIMEDOUT.
            sysctl = self.net.sysctl
            if self.retries >= sysctl.tcp_syn_retries + sysctl.tcp_syn_linear_timeouts:
                self._fail(errno.ETIMEDOUT)
                return
            self.retries += 1
            self.net.counters["syn_retransmits"] += 1
            self._send_syn()
            return
        if self.snd_una >= self.snd_max or state in (CLOSED, LISTEN, TIME_WAIT):
            return
        if self.snd_wnd == 0 and not self.fin_sent:
            self._arm_persist()
            return
        now = self.net.env.now
        if self.retries == 0:
            # tp->retrans_stamp: Linux stamps the head segment's original send. The model keeps
            # no send time per segment; the timer that just fired was armed at or after that
            # send, one RTO ago, which is within one RTO of Linux's stamp.
            self.retrans_stamp = now - min(self.rto_ns, TCP_RTO_MAX)
        if now - self.retrans_stamp >= TCP_RETRIES2_TIMEOUT:
            # retransmits_timed_out: tcp_retries2 as a time budget, not a count -- with a long
            # RTO Linux gives up after fewer than 15 retransmissions.
            self._fail(errno.ETIMEDOUT)
            return
        self.retries += 1
        # tcp_enter_loss: the duplicate-ACK count starts again (tcp_timeout_mark_lost ->
        # tcp_reset_reno_sack), the state becomes TCP_CA_Loss and tp->high_seq = snd_nxt, the
        # end of what was sent (our snd_max) -- what RFC 6582 §3.2 step 4 records in `recover`
        # after a timeout. Until an ACK covers more than that, duplicate ACKs start no fast
        # retransmit: the go-back-N resend below draws one for each segment the receiver
        # already holds, and those say nothing about loss. An RTO during fast recovery does the
        # same, moving the recovery point up to what has been sent since recovery began.
        self.dupacks = 0
        self.recover = self.snd_max
        self.loss_recovery = True
        self.net.counters["retransmits"] += 1
        # Go back N: resend from the oldest unacknowledged byte (Karn: no RTT sample from it).
        self.snd_nxt = self.snd_una
        if self.fin_sent and self.fin_seq >= self.snd_una:
            self.fin_sent = False
        self.rtt_seq = -1
        self._arm_rto(self.rto_ns << self.retries)
        self._output()

    def _retransmit_head(self) -> None:
        """Resend the first unacknowledged segment only (tcp_retransmit_skb of the head)."""
        if self.remote is None or self.state in (SYN_SENT, SYN_RECV, CLOSED, LISTEN, TIME_WAIT):
            return
        sndq = self.sndq
        n = min(self._eff_mss(), len(sndq), self.snd_max - self.snd_una)
        seq = self.snd_una
        flags = ACK | PSH if n else ACK
        if self.fin_sent and seq + n == self.fin_seq:
            flags |= FIN
        elif not n:
            return
        self.rtt_seq = -1  # Karn: no RTT sample from a retransmitted segment
        self._transmit(Segment(self.local, self.remote, flags, seq, self.rcv_nxt, self._advertise(), bytes(sndq[:n])))  # type: ignore[arg-type]

    def _arm_persist(self) -> None:
        if self.persist_timer is None:
            delay = min(max(self.rto_ns, TCP_RTO_MIN) << self.persist_backoff, TCP_RTO_MAX)
            self.persist_timer = self.net.call_later(delay, self._on_persist)

    def _on_persist(self) -> None:
        """tcp_probe_timer: a zero-window probe (an old sequence number) makes the peer re-ACK."""
        self.persist_timer = None
        if self.state in (CLOSED, LISTEN, TIME_WAIT) or self.snd_wnd > 0 or self.remote is None:
            return
        if self.snd_una + len(self.sndq) == self.snd_nxt:
            return
        self.net.counters["window_probes"] += 1
        self.persist_backoff = min(self.persist_backoff + 1, 10)
        self._transmit(Segment(self.local, self.remote, ACK, self.snd_una - 1, self.rcv_nxt, self._advertise()))  # type: ignore[arg-type]
        self._arm_persist()

    def _arm_state_timer(self, delay: int) -> None:
        if self.state_timer is not None:
            self.state_timer.cancel()
        self.state_timer = self.net.call_later(delay, self._on_state_timer)

    def _on_state_timer(self) -> None:
        # TIME_WAIT's 60 s (TCP_TIMEWAIT_LEN), or an orphaned FIN_WAIT2 after tcp_fin_timeout.
        self.state_timer = None
        if self.state in (TIME_WAIT, FIN_WAIT2):
            self._destroy()

    def _on_delack(self) -> None:
        """tcp_delack_timer_handler: the ACK was not carried by a reply in time. An interactive
        connection stops being one; another lengthens its estimate of the gap."""
        self.delack_timer = None
        if self.state not in (CLOSED, LISTEN, SYN_SENT) and self.rcv_wup != self.rcv_nxt:
            if self.pingpong >= TCP_PINGPONG_THRESH:
                self.pingpong = 0
                self.ato = TCP_ATO_MIN
            else:
                ato = self.ato << 1
                self.ato = ato if ato <= self.rto_ns else self.rto_ns
            # The ACK was scheduled, so tcp_send_ack's tcp_event_ack_sent counts it against
            # quick-ack mode like any other.
            self._dec_quickack_mode()
            self._send_ack()

    # -- ends of a connection -----------------------------------------------------------------

    def _done(self) -> None:
        """tcp_done: state CLOSE, both directions shut; the port goes unless bind() pinned it."""
        self._cancel_timers()
        host = self.host
        local, remote = self.local, self.remote
        if local is not None and remote is not None and host.connections.get((local, remote)) is self:
            del host.connections[(local, remote)]
        self.state = CLOSED
        self.shutdown_flags = SHUTDOWN_MASK
        self.ooo = NO_SEGMENTS
        if self.orphan or not self.user_bound:
            self._release_port()

    def _destroy(self) -> None:
        self._done()
        self._release_port()
        self.wake(KEY_ALL)

    def _fail(self, code: int) -> None:
        self.err = code
        self.sndq.clear()
        if self.net.queue_watch is not None:
            self.net.queue_watch(cast("TcpSocket", self))
        self._done()
        self.wake(KEY_ALL)

    def _vanish(self) -> None:
        """Its host crashed: gone at once, no segment sent, nothing left to wake (faults.Crash)."""
        self._cancel_timers()
        for req in self.syn_queue.values():
            if req.timer is not None:
                req.timer.cancel()
        self.syn_queue = NO_REQUESTS
        while self.accept_queue:
            self.accept_queue.popleft()._vanish()
        self.state = CLOSED
        self.shutdown_flags = SHUTDOWN_MASK
        self.sndq.clear()
        self.rcvq.clear()
        if self.net.queue_watch is not None:
            self.net.queue_watch(cast("TcpSocket", self))
        self.ooo = NO_SEGMENTS
        self.watchers = ()
        self.port_held = False
        self.orphan = True
        self.closed_fd = True
        self.fd = -1

    def _enter_time_wait(self) -> None:
        self._cancel_timers()
        self.state = TIME_WAIT
        self.shutdown_flags = SHUTDOWN_MASK
        self._arm_state_timer(TCP_TIMEWAIT_LEN)
