"""TcpInput: a segment arriving on a connection (tcp_v4_rcv -> tcp_rcv_state_process).

A SYN that reopens a TIME_WAIT (tcp_timewait_state_process), the reply to our SYN
(tcp_rcv_synsent_state_process), ACK processing with RTT samples, duplicate ACKs and NewReno
recovery (tcp_ack, tcp_clean_rtx_queue, tcp_rtt_estimator, tcp_fastretrans_alert), data in
order and out of order (tcp_data_queue, tcp_ofo_queue), when to ACK (__tcp_ack_snd_check,
quick ACKs, the delayed ACK), FIN (tcp_fin) and RST (tcp_reset).
"""

from __future__ import annotations

import bisect
import errno
from typing import TYPE_CHECKING, cast

from simnet.kernel.segment import ACK, FIN, RST, SYN, Segment
from simnet.kernel.tcp.constants import (
    CLOSE_WAIT,
    CLOSED,
    CLOSING,
    ERR_BY_STATE,
    ESTABLISHED,
    FIN_WAIT1,
    FIN_WAIT2,
    KEY_ALL,
    KEY_IN,
    LAST_ACK,
    MS,
    RCV_SHUTDOWN,
    SYN_RECV,
    SYN_SENT,
    TCP_ATO_MIN,
    TCP_DELACK_MIN,
    TCP_MAX_QUICKACKS,
    TCP_PINGPONG_THRESH,
    TCP_RTO_MAX,
    TCP_RTO_MIN,
    TIME_WAIT,
)
from simnet.kernel.tcp.output import TcpOutput

if TYPE_CHECKING:
    from simnet.kernel.tcp.socket import TcpSocket


class TcpInput(TcpOutput):
    """Segments in: ACKs, data, FIN and RST on a connection."""

    __slots__ = ()


    def segment_arrived(self, seg: Segment) -> None:
        """tcp_rcv_state_process / tcp_rcv_established for a socket found by its 4-tuple."""
        state = self.state
        flags = seg.flags
        if state == SYN_SENT:
            self._syn_sent_segment(seg)
            return
        if flags & RST:
            self._reset_received()
            return
        if flags & SYN:
            if state == TIME_WAIT and self._time_wait_reopens(seg):
                return
            # A retransmitted SYN-ACK for a connection we think is ESTABLISHED (the server lost
            # our ACK to a full accept queue): answer with an ACK, which lets it finish.
            self._send_ack()
            return
        if state == TIME_WAIT:
            if seg.data or flags & FIN:
                self._send_ack()
            return
        if flags & ACK:
            self._ack_received(seg)
            if self.state == CLOSED:
                return
        data = seg.data
        if data:
            self._data_received(seg, data)
        elif flags & FIN:
            if seg.seq == self.rcv_nxt:
                self._fin_received()
            elif seg.seq > self.rcv_nxt and state not in (CLOSE_WAIT, CLOSING, LAST_ACK):
                self._queue_out_of_order(seg.seq, b"", FIN)  # a FIN beyond a hole waits for it
        elif seg.seq == self.rcv_nxt - 1:
            # A zero-window probe (tcp_xmit_probe_skb sends snd_una - 1): the old sequence number
            # is out of window, and tcp_validate_incoming answers it with an ACK carrying our
            # current window.
            self._send_ack()

    def _time_wait_reopens(self, seg: Segment) -> bool:
        """tcp_timewait_state_process's TCP_TW_SYN: a new SYN whose sequence number is after
        everything the old connection used reopens the 4-tuple. The TIME_WAIT sock is killed
        and the listener takes the SYN, answering with ISN tw_snd_nxt + 65535 + 2 so the new
        connection's numbers follow the old ones. This is what lets a client's new connection
        from a port whose old connection the server still holds in TIME_WAIT succeed at once
        (a server that closes first leaves one TIME_WAIT per client port). Otherwise -- an old
        sequence number, or no listener -- the SYN is answered with an ACK (TCP_TW_ACK), the
        client resets it, and retransmits its SYN a second later."""
        if seg.flags & (ACK | RST) or not 0 < (seg.seq - self.rcv_nxt) & 0xFFFFFFFF < 0x80000000:
            return False
        listener = self.host.listener_for(seg.dst)
        if listener is None:
            return False
        isn = (self.snd_nxt + 65537) & 0xFFFFFFFF
        self.net.counters["time_wait_reopened"] += 1
        self._destroy()
        listener.listener_segment(seg, isn)
        return True

    def _syn_sent_segment(self, seg: Segment) -> None:
        flags = seg.flags
        if flags & ACK and seg.ack != self.iss + 1:
            if not flags & RST:
                self._transmit(Segment(seg.dst, seg.src, RST, seg.ack, 0, 0))
            return
        if flags & RST:
            if flags & ACK:
                self._reset_received()  # ECONNREFUSED
            return
        if flags & SYN and flags & ACK:
            self.irs = seg.seq
            self.rcv_nxt = seg.seq + 1
            self.snd_una = self.snd_nxt = seg.ack
            self.snd_max = max(self.snd_max, seg.ack)
            self.snd_wnd = seg.window
            self.max_window = seg.window
            if self.retries == 0:
                self._rtt_sample(self.net.env.now - self.rtt_start)  # Karn: not after a retransmit
            self.retries = 0
            self._establish()
            self._send_ack()
            self.wake(KEY_ALL)  # tcp_finish_connect -> sk_state_change: EPOLLOUT for the connector

    def _establish(self) -> None:
        self._cancel_timers()
        # The handshake's timer is not kept for re-arming (Network.rearm): the first data may be
        # long in coming, and an idle connection then holds no timer (docs/benchmarks.md, P6).
        self._rto_entry = None
        self.state = ESTABLISHED
        if not self.sndbuf_locked:
            # tcp_sndbuf_expand at establishment; Linux reads 3939840, later tcp_wmem[2].
            self.sndbuf = max(self.sndbuf, self.net.sysctl.tcp_wmem[2])

    def _rtt_sample(self, rtt: int) -> None:
        """RFC 6298 estimator; the RTO never goes below TCP_RTO_MIN (Linux's rttvar floor)."""
        if rtt < 0:
            return
        if self.srtt == 0 and self.rttvar == 0:
            self.srtt = rtt
            self.rttvar = rtt >> 1
        else:
            self.rttvar = (3 * self.rttvar + abs(self.srtt - rtt)) >> 2
            self.srtt = (7 * self.srtt + rtt) >> 3
        self.rto_ns = min(self.srtt + max(4 * self.rttvar, TCP_RTO_MIN), TCP_RTO_MAX)

    def _ack_received(self, seg: Segment) -> None:
        ack = seg.ack
        if ack > self.snd_una and ack <= self.snd_max:
            acked = ack - self.snd_una
            sndq = self.sndq
            data_acked = acked if acked <= len(sndq) else len(sndq)
            if data_acked:
                del sndq[:data_acked]
                if self.net.queue_watch is not None:
                    self.net.queue_watch(cast("TcpSocket", self))
            self.snd_una = ack
            if self.snd_nxt < ack:
                self.snd_nxt = ack
            if self.rtt_seq >= 0 and ack >= self.rtt_seq:
                self._rtt_sample(self.net.env.now - self.rtt_start)
                self.rtt_seq = -1
            self.retries = 0
            self.persist_backoff = 0
            self.dupacks = 0
            if self.rto_timer is not None:
                self.rto_timer.cancel()
                self.rto_timer = None
            if ack < self.snd_max:
                self._arm_rto(self.rto_ns)
            recover = self.recover
            if recover >= 0:
                if ack > recover:
                    # Recovery ends only when an ACK covers more than the recovery point: without
                    # SACK, an ACK of exactly `recover` may still have duplicates coming (drawn by
                    # our own resends), which must not start a fast retransmit. Linux holds
                    # TCP_CA_Recovery and TCP_CA_Loss "until something *above* high_seq is ACKed"
                    # (tcp_is_non_sack_preventing_reopen); RFC 6582 §3.2 step 2 gates fast
                    # retransmit on the same test.
                    self.recover = -1
                    self.loss_recovery = False
                elif ack < recover and not self.loss_recovery:
                    # NewReno's partial ACK (RFC 6582 §3.2 step 3; tcp_newreno_mark_lost in
                    # TCP_CA_Recovery): the next hole is known lost too; resend it now. After an
                    # RTO (TCP_CA_Loss) go-back-N is already resending it.
                    self.net.counters["fast_retransmits"] += 1
                    self._retransmit_head()
            if self.fin_sent and ack > self.fin_seq:
                self._our_fin_acked()
                if self.state in (CLOSED, TIME_WAIT):
                    return
            self._check_write_space()
        elif (
            ack == self.snd_una
            and ack < self.snd_max
            and not seg.data
            and not seg.flags & FIN
            and seg.window == self.snd_wnd
        ):
            # A duplicate ACK (tcp_ack's "dup ack" test: nothing new acknowledged, no data, the
            # same window): the third one means the segment at snd_una was lost (RFC 5681 3.2) --
            # unless a recovery is under way, whose point this ACK does not pass (RFC 6582 §3.2
            # step 2; Linux counts it, but tcp_fastretrans_alert enters recovery only from
            # TCP_CA_Open or TCP_CA_Disorder).
            self.dupacks += 1
            if self.dupacks == 3 and self.recover < 0:
                self.recover = self.snd_max
                self.net.counters["fast_retransmits"] += 1
                self._retransmit_head()
        window = seg.window
        self.snd_wnd = window
        if window > self.max_window:
            self.max_window = window
        if window and self.persist_timer is not None:
            self.persist_timer.cancel()
            self.persist_timer = None
        if self.snd_una + len(self.sndq) > self.snd_nxt or (self.fin_pending and not self.fin_sent):
            self._output()

    def _our_fin_acked(self) -> None:
        state = self.state
        if state == FIN_WAIT1:
            self.state = FIN_WAIT2
            if self.orphan:
                self._arm_state_timer(self.net.sysctl.tcp_fin_timeout * 1000 * MS)
            self.wake(KEY_ALL)
        elif state == CLOSING:
            self._enter_time_wait()
            self.wake(KEY_ALL)
        elif state == LAST_ACK:
            self._destroy()

    def _data_received(self, seg: Segment, data: bytes) -> None:
        """In-order data is queued up to the free space; anything else is re-ACKed."""
        state = self.state
        seq = seg.seq
        rcv_nxt = self.rcv_nxt
        if seq < rcv_nxt:
            overlap = rcv_nxt - seq
            if overlap >= len(data):
                # An old duplicate (a retransmission we already have): the sender has lost our
                # ACK, so re-ACK at once and leave interactive mode (tcp_data_queue ->
                # tcp_enter_quickack_mode).
                self._enter_quickack_mode()
                self._send_ack()
                return
            data = data[overlap:]
            seq = rcv_nxt
        if self.shutdown_flags & RCV_SHUTDOWN and state in (FIN_WAIT1, FIN_WAIT2) and not self.done:
            # tcp_rcv_state_process step 7: new data after our receive side was shut down and our
            # FIN sent -- "RFC 1122 says we MUST send a reset" (LINUX.md §3).
            self._send_rst()
            self._fail(errno.ECONNRESET)
            return
        if state in (CLOSE_WAIT, CLOSING, LAST_ACK):
            self._send_ack()  # data after the peer's own FIN: impossible from an honest peer
            return
        if seq != rcv_nxt:
            self._queue_out_of_order(seq, data, seg.flags & FIN)
            return
        free = self._rcv_capacity() - len(self.rcvq)
        take = len(data) if len(data) <= free else (free if free > 0 else 0)
        now = self.net.env.now
        if take:
            self.rcvq += data if take == len(data) else data[:take]
            self.rcv_nxt = seq + take
            if self.net.queue_watch is not None:
                self.net.queue_watch(cast("TcpSocket", self))
            if len(data) > self.rcv_mss:
                self.rcv_mss = min(len(data), self.mss)
            self._event_data_recv(now)
        if take < len(data):
            # Beyond the window (a probe, or more than we offered): drop the rest, ACK now.
            self._send_ack()
            if take:
                self.wake(KEY_IN)
            return
        if self.ooo:
            if self._drain_out_of_order(seg.flags & FIN):
                self._fin_received()  # ACKs at once
            else:
                self._send_ack()  # a filled hole is ACKed at once (tcp_data_queue: ICSK_ACK_NOW)
        elif seg.flags & FIN:
            self._fin_received()  # ACKs at once
        else:
            self._ack_policy()
        self.wake(KEY_IN)

    def _queue_out_of_order(self, seq: int, data: bytes, fin: int) -> None:
        """tcp_data_queue_ofo: keep a segment that lies beyond a hole (what fits in the buffer
        once the hole is filled), and send a duplicate ACK at once so the sender learns of the
        hole (__tcp_ack_snd_check acks at once while the out-of-order queue is not empty)."""
        room = self._rcv_capacity() - len(self.rcvq) - (seq - self.rcv_nxt)
        if len(data) > room:
            data = data[: room if room > 0 else 0]
            fin = 0
        if data or fin:
            ooo = self.ooo
            if isinstance(ooo, tuple):
                ooo = self.ooo = []
            i = bisect.bisect_left(ooo, seq, key=lambda entry: entry[0])
            if not (i < len(ooo) and ooo[i][0] == seq and len(ooo[i][1]) >= len(data) and (ooo[i][2] or not fin)):
                ooo.insert(i, (seq, data, fin))
            self.net.counters["out_of_order"] += 1
        self._send_ack()

    def _drain_out_of_order(self, fin: int) -> int:
        """tcp_ofo_queue: move what the new in-order data made contiguous to the receive queue;
        returns whether a FIN was reached."""
        ooo = self.ooo
        if isinstance(ooo, tuple):  # the shared empty tuple: nothing is queued
            return fin
        while ooo and ooo[0][0] <= self.rcv_nxt:
            seq, data, entry_fin = ooo.pop(0)
            end = seq + len(data)
            if end < self.rcv_nxt or (end == self.rcv_nxt and not entry_fin):
                continue  # wholly old: a duplicate of what is already queued
            part = data[self.rcv_nxt - seq :]
            if part:
                self.rcvq += part
                self.rcv_nxt += len(part)
                if self.net.queue_watch is not None:
                    self.net.queue_watch(cast("TcpSocket", self))
            if entry_fin:
                fin = entry_fin
                ooo.clear()
                break
        return fin

    def _event_data_recv(self, now: int) -> None:
        """tcp_event_data_recv: the delayed-ACK engine's estimate of the gap between data
        arrivals (`ato`), started at the first data; after an idle gap longer than the RTO,
        quick-ack again."""
        ato = self.ato
        if ato == 0:
            self.ato = TCP_ATO_MIN
        else:
            gap = now - self.last_data_time
            if gap <= TCP_ATO_MIN // 2:
                self.ato = (ato >> 1) + TCP_ATO_MIN // 2
            elif gap < ato:
                ato = (ato >> 1) + gap
                self.ato = ato if ato <= self.rto_ns else self.rto_ns
            elif gap > self.rto_ns:
                self.quickacks = TCP_MAX_QUICKACKS
        self.last_data_time = now

    def _enter_quickack_mode(self) -> None:
        """tcp_enter_quickack_mode: ACK every segment again, and stop counting as interactive."""
        self.quickacks = TCP_MAX_QUICKACKS
        self.pingpong = 0
        self.ato = TCP_ATO_MIN

    def _ack_policy(self) -> None:
        """__tcp_ack_snd_check: ACK at once in quick-ack mode (not while interactive: then the
        reply carries the ACK) or after more than one full segment; otherwise let the
        delayed-ACK timer (40 ms) or outgoing data carry the ACK."""
        if self.quickacks > 0 and self.pingpong < TCP_PINGPONG_THRESH:
            self._dec_quickack_mode()
            self._send_ack()
        elif self.rcv_nxt - self.rcv_wup > self.rcv_mss and self._select_window() >= self.rcv_wnd_edge - self.rcv_nxt:
            self._send_ack()
        elif self.delack_timer is None:
            self.delack_timer = self._delack_entry = self.net.rearm(
                self._delack_entry, TCP_DELACK_MIN, self._on_delack
            )

    def _fin_received(self) -> None:
        """tcp_fin: SOCK_DONE, RCV_SHUTDOWN, and the state moves on; ACK at once."""
        if self.done:
            self._send_ack()
            return
        self.rcv_nxt += 1
        self.done = True
        self.shutdown_flags |= RCV_SHUTDOWN
        state = self.state
        if state in (ESTABLISHED, SYN_RECV):
            self.state = CLOSE_WAIT
        elif state == FIN_WAIT1:
            self.state = CLOSING  # our FIN is not yet acknowledged
        elif state == FIN_WAIT2:
            self._send_ack()
            self._enter_time_wait()
            self.wake(KEY_ALL)
            return
        self._send_ack()
        self.wake(KEY_ALL)

    def _reset_received(self) -> None:
        """tcp_reset: the error depends on the state; the write queue is purged, the receive
        queue is NOT (queued data is still read first, LINUX.md §3)."""
        state = self.state
        if state == TIME_WAIT:
            self._destroy()  # a RST kills a TIME_WAIT socket (tcp_timewait_state_process)
            return
        self.err = ERR_BY_STATE.get(state, errno.ECONNRESET)
        self.net.counters["resets_received"] += 1
        self.sndq.clear()
        if self.net.queue_watch is not None:
            self.net.queue_watch(cast("TcpSocket", self))
        self._done()
        self.wake(KEY_ALL)
