"""What a fault schedule does to a network (docs/faults.md): partitions, holds, lossy,
duplicating, reordering and jittery links, and the timed events -- injected RSTs, crashes and
restarts -- that the Network carries out.

A FaultInjector exists only when a Network has a non-empty schedule, so a fault-free run pays
one `is None` test per segment. Every decision draws from the injector's own RNG, derived from
the seed without drawing from the Network's: a run without faults is byte-identical to one
made before faults existed, and a run with them is the same every time.
"""

from __future__ import annotations

import functools
import hashlib
import random
from typing import TYPE_CHECKING, Any

from simnet.kernel.clock import seconds_to_ns

if TYPE_CHECKING:
    from simnet.faults import FaultSchedule, Hold, LinkFaults
    from simnet.kernel.host import Host
    from simnet.kernel.network import Network
    from simnet.kernel.segment import Segment


class FaultInjector:
    """A schedule applied to one Network: the segments it sends pass through transmit()."""

    def __init__(self, net: Network, faults: FaultSchedule) -> None:
        self.net = net
        self.faults = faults
        digest = hashlib.blake2b(f"simnet faults {net.seed!r}".encode(), digest_size=8).digest()
        self.rng = random.Random(int.from_bytes(digest, "big"))
        self._link_faults: dict[tuple[str, str], LinkFaults | None] = {}
        self._partitions = [
            (p, seconds_to_ns(p.start), None if p.end is None else seconds_to_ns(p.end)) for p in faults.partitions
        ]
        self._holds: list[tuple[Hold, int, int, list[tuple[Host, Segment]]]] = []
        for hold in faults.holds:
            held: list[tuple[Host, Segment]] = []
            entry = (hold, seconds_to_ns(hold.start), seconds_to_ns(hold.end), held)
            self._holds.append(entry)
            net.call_later(entry[2], functools.partial(self._release_hold, entry))
        for rst in faults.rsts:
            net.call_later(seconds_to_ns(rst.at), functools.partial(net.inject_rst, rst.host, rst.nth, rst.one_sided))
        for crash in faults.crashes:
            net.call_later(seconds_to_ns(crash.at), functools.partial(net.crash, crash.host))
            if crash.restart_after is not None:
                back = seconds_to_ns(crash.at + crash.restart_after)
                net.call_later(back, functools.partial(net.restart, crash.host))

    def _faults_for(self, src: str, dst: str) -> LinkFaults | None:
        key = (src, dst)
        if key in self._link_faults:
            return self._link_faults[key]
        found = None
        for link in self.faults.links:
            if link.matches(src, dst):
                found = link
                break
        self._link_faults[key] = found
        return found

    def transmit(self, src_host: Host, dst_host: Host, seg: Segment, latency: int) -> None:
        """Network.transmit between two hosts: partitions, holds, then the link's own faults."""
        net = self.net
        now = net.env.now
        src, dst = src_host.ip, dst_host.ip
        for partition, start, end in self._partitions:
            if start <= now and (end is None or now < end) and partition.cuts(src, dst):
                net.counters["partitioned"] += 1
                if net.log_segments:
                    net.log(seg, "lost: partition")
                return
        for hold, start, end, held in self._holds:
            if start <= now < end and hold.cuts(src, dst):
                net.counters["held"] += 1
                held.append((dst_host, seg))
                if net.log_segments:
                    net.log(seg, "held")
                return
        link = self._faults_for(src, dst)
        if link is None:
            net.send_in_order(src, dst_host, seg, latency)
            return
        rng = self.rng
        if link.loss and rng.random() < link.loss:
            net.counters["lost"] += 1
            if net.log_segments:
                net.log(seg, "lost")
            return
        delay = latency + link.jitter.draw_ns(rng)
        if link.reorder and rng.random() < link.reorder:
            net.counters["reordered"] += 1
            delay += seconds_to_ns(link.reorder_delay)
            if net.log_segments:
                net.log(seg, "reordered: held back")
            net.send_after(dst_host, seg, delay)  # out of order on purpose: past the FIFO
        else:
            net.send_in_order(src, dst_host, seg, delay)
        if link.duplicate and rng.random() < link.duplicate:
            net.counters["duplicated"] += 1
            if net.log_segments:
                net.log(seg, "duplicated")
            net.send_after(dst_host, seg, delay + link.jitter.draw_ns(rng))

    def _release_hold(self, entry: tuple[Any, int, int, list[tuple[Host, Segment]]]) -> None:
        """The end of a Hold: what it kept goes on now, in order, each after its path's latency."""
        net = self.net
        held = entry[3]
        net.counters["released"] += len(held)
        for dst_host, seg in held:
            if net.log_segments:
                net.log(seg, "released")
            net.send_after(dst_host, seg, net.path(seg.src[0], dst_host.ip).latency_ns)
        held.clear()
