"""Loss recovery after an RTO, and NewReno's recovery point, as Linux keeps them (issue 5).

After a retransmission timeout Linux enters TCP_CA_Loss with tp->high_seq = snd_nxt (RFC 6582
§3.2 step 4 records the same point in `recover`): until an ACK covers more than that point,
duplicate ACKs start no fast retransmit -- go-back-N resends segments the receiver already
holds, and each draws a duplicate ACK that says nothing about loss. Without SACK, Linux holds
that state (and fast recovery's) while snd_una == high_seq, leaving it only when something
*above* it is acknowledged (tcp_is_non_sack_preventing_reopen). Before the model kept this, a
link held longer than the RTO set off 25 spurious fast retransmits (test_fault_scenarios.py's
hold test now checks there are none).

The first tests script the receiver: the client's direction is cut after the handshake, so
nothing the client sends arrives, and the test hands the client exactly the ACKs a receiver
would have sent -- which shows, segment by segment, what each ACK makes the sender do. The
last ones run whole transfers under faults and check the stream still arrives intact.
"""

from __future__ import annotations

import socket

from simnet.faults import FaultSchedule, LinkFaults, Partition
from simnet.kernel import Network
from simnet.kernel.segment import ACK, Segment

from .test_fault_scenarios import (
    CLIENT,
    LATENCY,
    LATENCY_NS,
    PORT,
    SERVER,
    Transfer,
    a_seed_where,
    bulk_transfer,
    lines,
)

CUT = 0.011  # just after the client's handshake ACK (sent at 10 ms) has gone


class ScriptedReceiver:
    """A connected pair whose client-to-server direction is cut at CUT: the test plays the
    receiver by handing the client the ACKs it chooses, and reads what the client sent back
    from the segment log (each segment is logged as sent, then as lost to the partition)."""

    def __init__(self) -> None:
        cut = Partition(a=CLIENT, b=SERVER, start=CUT, one_way=True)
        self.net = net = Network(seed=1, faults=FaultSchedule(partitions=[cut]), log_segments=True)
        net.link(SERVER, CLIENT, latency=LATENCY)
        listener = net.host(SERVER).socket()
        listener.bind((SERVER, PORT))
        listener.listen(8)
        self.client = client = net.host(CLIENT).socket()
        client.setblocking(False)
        client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        client.connect_ex((SERVER, PORT))
        net.run(until=0.02)
        self.mss = client.getsockopt(socket.IPPROTO_TCP, socket.TCP_MAXSEG)
        self.base = client.snd_nxt  # the sequence number of the first data byte

    def seq(self, n: int) -> int:
        """Where the n-th full-sized data segment (from 0) starts."""
        return self.base + n * self.mss

    def send(self, segments: int) -> list[int]:
        """The application writes `segments` full segments; returns the seqs that went out."""
        mark = len(self.net.segment_log)
        assert self.client.send(b"d" * (segments * self.mss)) == segments * self.mss
        return self.data_sent_since(mark)

    def ack(self, ack: int, times: int = 1) -> list[int]:
        """The client receives `times` ACKs for `ack`, with the window it already knows (so
        repeats are duplicate ACKs); returns the seqs of the data segments it sent in answer."""
        client = self.client
        mark = len(self.net.segment_log)
        for _ in range(times):
            client.segment_arrived(
                Segment(client.remote, client.local, ACK, client.rcv_nxt, ack, client.snd_wnd)  # type: ignore[arg-type]
            )
        return self.data_sent_since(mark)

    def rto(self) -> list[int]:
        """Let the retransmission timer fire once; returns the seqs it resent (go-back-N)."""
        mark = len(self.net.segment_log)
        self.net.run(until=self.net.now + self.client.rto_ns / 1e9 + 0.001)
        sent = self.data_sent_since(mark)
        assert sent and self.net.counters["retransmits"] >= 1
        return sent

    def data_sent_since(self, mark: int) -> list[int]:
        me = "%s:%d" % self.client.getsockname()
        return [s.seq for s in self.net.segment_log[mark:] if s.src == me and s.event == "sent" and s.length]


# -- the scripted receiver ------------------------------------------------------------------------


def test_three_duplicate_acks_resend_the_hole_and_a_partial_ack_resends_the_next_one() -> None:
    # Fast recovery proper, unchanged: RFC 5681 3.2 on the third duplicate ACK, then RFC 6582
    # §3.2 step 3 on a partial ACK (segments 0 and 3 were lost; 1, 2 and 4-9 arrived).
    r = ScriptedReceiver()
    assert r.send(10) == [r.seq(n) for n in range(10)]
    assert r.ack(r.seq(0), times=2) == []
    assert r.ack(r.seq(0)) == [r.seq(0)]
    assert r.ack(r.seq(0), times=5) == []  # the rest of the 8 duplicates: recovery is under way
    assert r.ack(r.seq(3)) == [r.seq(3)]  # partial ACK: the next hole is resent at once
    assert r.ack(r.seq(10)) == []  # all of it, up to the recovery point
    assert r.net.counters["fast_retransmits"] == 2 and r.net.counters["retransmits"] == 0


def test_after_an_rto_duplicate_acks_below_the_recovery_point_start_no_fast_retransmit() -> None:
    # Segment 0 was lost and only two segments followed it, so no fast retransmit: the RTO
    # resends all three (go-back-N). The receiver had 1 and 2, so the resend fills the hole and
    # draws duplicate ACKs for its copies of them -- while new data is in flight.
    r = ScriptedReceiver()
    r.send(3)
    assert r.ack(r.seq(0), times=2) == []
    assert r.rto() == [r.seq(0), r.seq(1), r.seq(2)]
    assert r.send(4) == [r.seq(n) for n in range(3, 7)]  # new data beyond the recovery point
    assert r.ack(r.seq(3)) == []  # the hole is filled: everything up to the recovery point
    # The copies of 1 and 2, and a third duplicate: Linux's TCP_CA_Loss holds until something
    # above high_seq is acknowledged, so these resend nothing (before: segment 3, spuriously).
    assert r.ack(r.seq(3), times=3) == []
    assert r.net.counters["fast_retransmits"] == 0
    # Once an ACK covers more than the recovery point, three duplicates mean loss again.
    assert r.ack(r.seq(4)) == []
    assert r.ack(r.seq(4), times=3) == [r.seq(4)]
    assert r.net.counters["fast_retransmits"] == 1


def test_after_an_rto_a_partial_ack_resends_nothing_more_than_go_back_n_did() -> None:
    # Segments 0 and 5 were lost. In TCP_CA_Loss an ACK that advances snd_una but stays below
    # the recovery point is not NewReno's partial ACK: go-back-N has resent segment 5 already.
    r = ScriptedReceiver()
    r.send(8)
    assert r.ack(r.seq(0), times=2) == []
    assert r.rto() == [r.seq(n) for n in range(8)]
    assert r.ack(r.seq(5)) == []  # the resent 0 filled the first hole; 5 is on its way again
    assert r.ack(r.seq(5), times=3) == []  # the copies of 6 and 7, and one more
    assert r.ack(r.seq(8)) == []
    assert r.net.counters["fast_retransmits"] == 0 and r.net.counters["retransmits"] == 1


def test_an_rto_during_fast_recovery_moves_the_recovery_point_up_to_what_was_sent() -> None:
    # Segment 0 and its fast retransmission were both lost; new data (10, 11) went out during
    # fast recovery. tcp_enter_loss sets high_seq = snd_nxt again, so the recovery point moves
    # from the end of 9 to the end of 11, and duplicate ACKs below it resend nothing.
    r = ScriptedReceiver()
    r.send(10)
    assert r.ack(r.seq(0), times=3) == [r.seq(0)]
    assert r.send(2) == [r.seq(10), r.seq(11)]
    assert r.rto()[0] == r.seq(0)
    # Everything up to and including 10 arrived (11 was lost), which is above the old recovery
    # point but below the new one: the copies of 1-9 draw duplicate ACKs for 11.
    assert r.ack(r.seq(11)) == []
    assert r.ack(r.seq(11), times=9) == []
    assert r.net.counters["fast_retransmits"] == 1  # the first one, before the RTO
    assert r.ack(r.seq(12)) == []


def test_a_full_ack_of_exactly_the_recovery_point_holds_recovery_until_more_is_acked() -> None:
    # Fast recovery's end, without SACK: an ACK of exactly the recovery point leaves recovery
    # on (tcp_try_undo_recovery holds it while snd_una == high_seq), so duplicates of that ACK
    # -- here from copies of segments the fast retransmission raced -- start nothing.
    r = ScriptedReceiver()
    r.send(10)
    assert r.ack(r.seq(0), times=3) == [r.seq(0)]
    assert r.send(3) == [r.seq(10), r.seq(11), r.seq(12)]
    assert r.ack(r.seq(10)) == []  # exactly the recovery point (the end of segment 9)
    assert r.ack(r.seq(10), times=3) == []
    assert r.ack(r.seq(11)) == []  # above it: recovery is over
    assert r.ack(r.seq(11), times=3) == [r.seq(11)]
    assert r.net.counters["fast_retransmits"] == 2


# -- whole transfers ------------------------------------------------------------------------------


def resends(t: Transfer) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
    """The client's resent data segments as (time, seq), split by what sent them: those sent
    at an instant when no segment from the server arrived (the retransmission timer's
    go-back-N), and those sent as an ACK arrived (fast retransmits, partial ACKs' resends)."""
    arrivals = {s.time_ns + LATENCY_NS for s in lines(t.net, src=SERVER)}
    by_timer, by_ack = [], []
    seen: set[int] = set()
    for s in lines(t.net, src=CLIENT, data=True):
        if s.seq in seen:
            (by_ack if s.time_ns in arrivals else by_timer).append((s.time_ns, s.seq))
        seen.add(s.seq)
    return by_timer, by_ack


def lost_seqs(t: Transfer) -> set[int]:
    return {s.seq for s in lines(t.net, event="lost", data=True)}


def test_a_go_back_n_resend_past_a_hole_sets_off_no_fast_retransmit_storm() -> None:
    one_way_loss = FaultSchedule(links=[LinkFaults(src=CLIENT, dst=SERVER, both_ways=False, loss=0.03)])

    def rto_past_a_hole_mid_transfer(t: Transfer) -> bool:
        # One RTO, while the receiver held segments beyond a hole (its out-of-order queue), and
        # new data sent after it: the copies the go-back-N resend carries then draw duplicate
        # ACKs while data beyond the recovery point is in flight.
        by_timer, _ = resends(t)
        if t.net.counters["retransmits"] != 1 or not by_timer or not t.net.counters["out_of_order"]:
            return False
        rto_at = by_timer[0][0]
        data = lines(t.net, src=CLIENT, data=True)
        recover = max(s.seq + s.length for s in data if s.time_ns < rto_at)
        return any(s.seq >= recover for s in data if s.time_ns > rto_at)

    t = a_seed_where(lambda seed: bulk_transfer(one_way_loss, seed=seed), rto_past_a_hole_mid_transfer)
    net = t.net
    by_timer, by_ack = resends(t)
    rto_at = by_timer[0][0]
    assert len(by_timer) >= 3 and {time for time, _ in by_timer} == {rto_at}  # one go-back-N burst
    # The resend drew duplicate ACKs: at least three alike after it ...
    acks = [s.ack for s in lines(net, src=SERVER) if s.time_ns > rto_at]
    assert max(acks.count(ack) for ack in acks) >= 3
    # ... and no resend of a segment that was never lost came of them (before the fix the
    # copies' duplicate ACKs resent in-flight data): every fast retransmit repaired a loss.
    assert all(seq in lost_seqs(t) for _, seq in by_ack), by_ack
    assert net.counters["fast_retransmits"] == len(by_ack) <= len(lines(net, event="lost", data=True))
    assert t.intact and t.server_outcome == t.client_outcome == "eof"


def test_a_single_loss_is_still_repaired_by_fast_retransmit() -> None:
    one_way_loss = FaultSchedule(links=[LinkFaults(src=CLIENT, dst=SERVER, both_ways=False, loss=0.01)])
    t = a_seed_where(
        lambda seed: bulk_transfer(one_way_loss, seed=seed), lambda t: len(lines(t.net, event="lost")) == 1
    )
    assert t.net.counters["fast_retransmits"] == 1 and t.net.counters["retransmits"] == 0
    by_timer, by_ack = resends(t)
    assert by_timer == [] and [seq for _, seq in by_ack] == [lines(t.net, event="lost")[0].seq]
    assert t.intact and t.server_outcome == "eof"

