"""The simulated network: a virtual clock, hosts, links, and segment delivery.

Time is simpy's clock in integer nanoseconds (simnet/kernel/clock.py), so that no float rounding
can make two runs differ. Every random choice (ephemeral ports) comes from the one `random.Random(seed)` owned by the
Network; fault decisions (simnet/faults.py) come from a second one derived from the seed, which
exists only when faults are configured, so that fault-free runs draw exactly what they always
did. Initial sequence numbers are made as Linux makes them, a keyed hash of the 4-tuple plus the
clock, with the key derived from the seed.

Delivery follows what LINUX.md calls its "important general finding": on loopback, a packet takes
effect synchronously, inside the syscall that sent it. The model does the same: segments on a
zero-latency path go into a "softirq" queue that is drained when the syscall that queued them
returns (after its return value is fixed, just as Linux processes loopback packets when the
syscall re-enables bottom halves). That is why a non-blocking connect() on loopback returns
EINPROGRESS and yet poll(0) straight after it already reports EPOLLOUT. Segments on a link with
latency travel through simpy's event queue.
"""

from __future__ import annotations

import collections
import gc
import hashlib
import heapq
import ipaddress
import os
import random
from collections.abc import Callable, Generator, Iterable, Sequence
from typing import IO, TYPE_CHECKING, Any, TypeVar, cast

import simpy
from mypy_extensions import mypyc_attr

from simnet.kernel.clock import NS_PER_S, Delivery, SimEnv, Timer, is_dead, seconds_to_ns
from simnet.kernel.faulty import FaultInjector
from simnet.kernel.segment import RST, Address, LoggedSegment, Segment, format_flags
from simnet.kernel.settings import DISTINCT_FD_BASE, FDS_PER_HOST, LOOPBACK, LinkConfig, Sysctl

if TYPE_CHECKING:
    from simnet.faults import FaultSchedule
    from simnet.kernel.epoll import Epoll
    from simnet.kernel.pcap import PcapWriter
    from simnet.kernel.tcp import TcpSocket

_T = TypeVar("_T")
# Young-generation GC threshold while Network.run runs (see there); CPython's default is 700.
GC_YOUNG_THRESHOLD = 100_000


@mypyc_attr(native_class=False)  # compiled, an exception class must stay a Python class
class SimulationDeadlock(RuntimeError):
    """A blocking call made outside any simulated process can never complete: nothing is pending.

    On a real machine the call would hang forever; in the simulation we say so instead.
    """


class Network:
    """A simulated network of hosts sharing one virtual clock and one seeded RNG."""

    def __init__(
        self,
        seed: int = 0,
        *,
        latency: float = 0.0,
        mtu: int = 1500,
        sysctl: Sysctl | None = None,
        log_segments: bool = False,
        faults: FaultSchedule | None = None,
        distinct_fds: bool = False,
        delivery_jitter: float = 0.0,
        pcap: str | os.PathLike[str] | IO[bytes] | None = None,
    ) -> None:
        self.seed = seed
        # Each host numbers its fds from 3 as a process does; with distinct_fds every host gets
        # a range of its own above any real fd (DISTINCT_FD_BASE + n * FDS_PER_HOST for the
        # n-th host), so that one event loop can key the fds of many hosts (simnet.aio) and a
        # simulated fd handed to a real os.read() meets EBADF instead of a real file.
        self.distinct_fds = distinct_fds
        # Schedule exploration (simnet.aio): up to this much extra delay per segment between
        # hosts, from an RNG of its own derived from the seed (so runs without it draw exactly
        # what they always did), keeping each link FIFO (send_in_order). 0: off.
        self._delivery_jitter_ns = seconds_to_ns(delivery_jitter)
        self._jitter_rng: random.Random | None = None
        self._link_fifo: dict[tuple[str, str], int] = {}
        self._waiter_woken = False  # wake_waiter() was called during wait_any
        if self._delivery_jitter_ns > 0:
            jitter_key = hashlib.blake2b(f"simnet delivery jitter {seed!r}".encode(), digest_size=8).digest()
            self._jitter_rng = random.Random(int.from_bytes(jitter_key, "big"))
        self.env = SimEnv()
        self.rng = random.Random(seed)
        # net_secret of secure_tcp_seq, derived from the seed without drawing from the RNG.
        self._isn_key = hashlib.blake2b(f"simnet isn {seed!r}".encode(), digest_size=16).digest()
        self.sysctl = sysctl or Sysctl()
        self.default_link = LinkConfig(latency_ns=seconds_to_ns(latency), mtu=mtu)
        self.hosts: dict[str, Host] = {}
        self._links: dict[tuple[str, str], LinkConfig] = {}
        self._softirq: collections.deque[tuple[Host, Segment]] = collections.deque()
        self._routes: dict[tuple[str, str], tuple[Host | None, int]] = {}
        self._draining = False
        self.log_segments = log_segments
        self.segment_log: list[LoggedSegment] = []
        self._next_conn_id = 1
        self._next_file_id = 1
        # Counters a run summary reports; they cost a dict increment and are always on.
        self.counters: collections.Counter[str] = collections.Counter()
        # Cancelled timers Network.run popped from simpy's heap without processing them (for
        # benchmarks: events processed = events scheduled - still queued - these).
        self.timers_skipped = 0
        # Faults (simnet/faults.py): None when there are none, so the hot path pays one test.
        # Their decisions draw from their own RNG, derived from the seed without drawing from
        # self.rng: a run without faults is byte-identical to one made before faults existed.
        self.faults: FaultSchedule | None = None
        self.fault_rng: random.Random | None = None
        self._injector: FaultInjector | None = None
        # Called with a Host when it crashes (its simulated processes are the caller's to stop).
        self.crash_callbacks: list[Callable[[Host], None]] = []
        if faults is not None and not faults.empty:
            self.faults = faults
            self._injector = FaultInjector(self, faults)
            self.fault_rng = self._injector.rng
        # The capture hook (Network.capture): called with (now_ns, segment) for every segment put
        # on the wire; None when off, so transmit pays one test. A pcap writer, a plot's
        # recorder, or several fanned out (Network.add_tap).
        self.tap: Callable[[int, Segment], None] | None = None
        self._taps: list[Callable[[int, Segment], None]] = []
        self.pcap: PcapWriter | None = None
        # The queue observer (Network.watch_queues): called with a socket after its receive
        # queue, send queue or accept queue changed size; None when off (one test per change).
        self.queue_watch: Callable[[TcpSocket], None] | None = None
        if pcap is not None:
            self.capture(pcap)

    # -- topology -----------------------------------------------------------------------------

    def host(self, ip: str) -> Host:
        """The host with this IPv4 address, created on first use. 127.0.0.1 exists inside each."""
        host = self.hosts.get(ip)
        if host is None:
            addr = ipaddress.IPv4Address(ip)
            if addr.is_loopback or addr.is_unspecified:
                raise ValueError(f"{ip} is not a host address (127.0.0.1 exists inside every host)")
            from simnet.kernel.host import Host

            if self.distinct_fds:
                first_fd = DISTINCT_FD_BASE + len(self.hosts) * FDS_PER_HOST
                if first_fd + FDS_PER_HOST > 1 << 31:
                    raise ValueError(f"too many hosts for distinct fds ({len(self.hosts)})")
                host = Host(self, ip, first_fd, first_fd + FDS_PER_HOST)
            else:
                host = Host(self, ip)
            self.hosts[ip] = host
            self._routes.clear()
            if self.faults is not None:
                for short_io in self.faults.short_io:
                    if short_io.host is None or short_io.host == ip:
                        host.short_io = short_io
        return host

    def link(self, a: str, b: str, *, latency: float | None = None, mtu: int | None = None) -> None:
        """Set the path between hosts a and b (both directions): one-way latency in seconds, MTU."""
        for src, dst in ((a, b), (b, a)):
            old = self._links.get((src, dst), self.default_link)
            self._links[(src, dst)] = LinkConfig(
                latency_ns=old.latency_ns if latency is None else seconds_to_ns(latency),
                mtu=old.mtu if mtu is None else mtu,
            )
        self._routes.clear()

    def path(self, src_ip: str, dst_ip: str) -> LinkConfig:
        if src_ip == dst_ip or dst_ip.startswith("127."):
            return LOOPBACK
        return self._links.get((src_ip, dst_ip), self.default_link)

    def new_conn_id(self) -> int:
        conn_id = self._next_conn_id
        self._next_conn_id += 1
        return conn_id

    def new_file_id(self) -> int:
        """A serial number for an open file (a socket), so that epoll can key its interest by
        (fd, file) as Linux does without keying anything on id()."""
        file_id = self._next_file_id
        self._next_file_id += 1
        return file_id

    def isn(self, local: Address, remote: Address) -> int:
        """An initial sequence number as secure_tcp_seq makes it: a keyed hash of the 4-tuple
        plus the clock in 64 ns ticks. A later connection on the same 4-tuple therefore starts
        after an earlier one, which is what lets a SYN reopen a TIME_WAIT (RFC 6191 spirit)."""
        digest = hashlib.blake2b(
            f"{local[0]}:{local[1]}>{remote[0]}:{remote[1]}".encode(), key=self._isn_key, digest_size=4
        ).digest()
        return (int.from_bytes(digest, "big") + (self.env.now >> 6)) & 0xFFFFFFFF

    # -- time ---------------------------------------------------------------------------------

    @property
    def now(self) -> float:
        """Virtual time in seconds."""
        return self.env.now / NS_PER_S

    @property
    def now_ns(self) -> int:
        """Virtual time in integer nanoseconds."""
        return self.env._now

    def run(self, until: float | None = None, *, stop: simpy.Event | None = None) -> None:
        """Run until nothing is pending, or until virtual time `until` (seconds), or until the
        event `stop` (a process, say) has been processed.

        Cancelled timers stay in simpy's heap (it cannot remove an entry), so they are popped
        here without being run: otherwise "until nothing is pending" would advance the clock to
        the last retransmission timer ever cancelled.
        """
        self.run_ns(None if until is None else seconds_to_ns(until), stop=stop)

    def run_ns(self, limit: int | None, *, stop: simpy.Event | None = None) -> None:
        """Network.run with the time limit in integer nanoseconds of virtual time (None: none)."""
        env = self.env
        queue = env._queue  # simpy's heap of (time, priority, id, event)
        step = env.step
        heappop = heapq.heappop
        skipped = 0
        # A simulation keeps many long-lived objects (sockets, timers, connections) and makes
        # few cycles, so CPython's default young-generation threshold (700 allocations) makes
        # the collector re-scan the same survivors over and over: with 10,000 connections open
        # that doubled the cost of an event (docs/benchmarks.md, P6b). Collect less often while
        # the model runs (the older generations less often too); never lower a threshold the
        # caller chose, and put them back after. Results do not depend on when the GC runs.
        gc_thresholds = gc.get_threshold()
        if gc_thresholds[0] and gc_thresholds[0] < GC_YOUNG_THRESHOLD:
            gc.set_threshold(GC_YOUNG_THRESHOLD, max(gc_thresholds[1], 50), max(gc_thresholds[2], 100))
        try:
            while queue:
                head = queue[0]
                event = head[3]
                if type(event) is Timer and not event.active:  # is_dead, inlined: hot loop
                    heappop(queue)
                    event.queued = False
                    skipped += 1
                    continue
                if limit is not None and head[0] > limit:
                    break
                step()
                if stop is not None and stop.processed:
                    return
        finally:
            self.timers_skipped += skipped
            gc.set_threshold(*gc_thresholds)
        if limit is not None and env._now < limit:
            env._now = limit

    def wait_any(self, epolls: Sequence[Epoll], timeout_ns: int | None) -> bool:
        """Run the simulation until one of `epolls` has a ready item, or until `timeout_ns` of
        virtual time has passed (None: no limit; 0: only look). True if something is ready
        (or a spurious wake-up ended the wait: the caller's epoll_wait then finds nothing, as
        after a real one); False when the time passed with nothing ready, the clock then at
        the deadline. An event loop's selector waits on the epolls of several hosts this way.

        Raises SimulationDeadlock when nothing can ever become ready: no limit and nothing
        pending in the network."""
        self.drain()
        self._waiter_woken = False
        for ep in epolls:
            if ep.ready:
                return True
        if timeout_ns == 0:
            return False
        for ep in epolls:
            short_io = ep.host.short_io
            # As Epoll._wait_gen: an injected EINTR-like wake-up before the wait begins.
            if (
                short_io is not None
                and short_io.spurious_wakeup
                and self.fault_rng.random() < short_io.spurious_wakeup  # type: ignore[union-attr]
            ):
                self.counters["spurious_wakeups"] += 1
                return True
        env = self.env
        deadline = None if timeout_ns is None else env._now + timeout_ns
        # Network.run_ns's loop, checking the epolls after each event instead of waking a simpy
        # event: a selector waits once per turn of an event loop, so this is a hot path. (The
        # caller raises the GC threshold for the whole run, as Network.run does per call.)
        queue = env._queue
        step = env.step
        heappop = heapq.heappop
        ready = False
        while queue:
            head = queue[0]
            event = head[3]
            if type(event) is Timer and not event.active:  # is_dead, inlined: hot loop
                heappop(queue)
                event.queued = False
                self.timers_skipped += 1
                continue
            if deadline is not None and head[0] > deadline:
                break
            step()
            if ready:
                continue
            if self._waiter_woken:
                return True  # wake_waiter(): the caller has work that is not an epoll event
            for ep in epolls:
                if ep.ready:
                    # What else happens at this very instant happens before the waiter runs (a
                    # woken task runs after the softirqs of its moment): so two segments that
                    # arrive together are both reported, in whatever order the caller picks.
                    ready = True
                    deadline = env._now
                    break
        if ready:
            return True
        if deadline is None:
            raise SimulationDeadlock(f"nothing can wake the waiting epolls: nothing is pending at t={self.now:.6f}s")
        if env._now < deadline:
            env._now = deadline
        return False

    def wake_waiter(self) -> None:
        """End the current wait_any after the event being processed, as a write to an event
        loop's self-pipe ends its epoll_wait: something in the simulation (a host restarting,
        say) has handed the waiting loop work of its own."""
        self._waiter_woken = True

    def next_event_ns(self) -> int | None:
        """When the network will next do something (a timer, a segment arriving), or None."""
        times = [int(entry[0]) for entry in self.env._queue if not is_dead(entry[3])]
        return min(times) if times else None

    def segments_in_flight(self) -> bool:
        """A segment is on a link with latency, not yet delivered."""
        return any(type(entry[3]) is Delivery for entry in self.env._queue)

    @property
    def pending(self) -> int:
        """How many live events are scheduled (cancelled timers do not count)."""
        return sum(1 for entry in self.env._queue if not is_dead(entry[3]))

    def call_later(self, delay_ns: int, callback: Callable[[], object]) -> Timer:
        """Run `callback` after `delay_ns` of virtual time (then drain loopback deliveries)."""
        return Timer(self, delay_ns, callback)

    def rearm(self, timer: Timer | None, delay_ns: int, callback: Callable[[], object]) -> Timer:
        """mod_timer: `timer` (running, cancelled or None) set to run `callback` after
        `delay_ns`; returns the timer to keep, which may be the same object.

        A timer re-armed for later than its heap entry keeps that entry and only moves its
        deadline: when the entry comes up early, the timer pushes itself again for the rest
        (see _fire_timer). TCP re-arms its retransmission timer on nearly every ACK and its
        delayed-ACK timer on nearly every other segment, and this spares a heap entry and an
        object each time. The time it fires is the same; only its place among events due at
        the very same nanosecond can differ (still deterministic).
        """
        when = self.env._now + delay_ns
        if timer is not None:
            if timer.queued:
                if timer.when <= when:
                    timer.deadline = when
                    timer.callback = callback
                    timer.active = True
                    return timer
                timer.active = False
            else:
                timer.deadline = when
                timer.callback = callback
                timer.active = True
                timer._push(when)
                return timer
        return Timer(self, delay_ns, callback)

    def wait_event(self, deadline_ns: int | None) -> simpy.Event:
        """An event to sleep on that also fires at `deadline_ns` (if given) and then cancels its
        timer, so a wake-up that came first leaves no dead time behind in the clock."""
        env = self.env
        event = env.event()
        if deadline_ns is not None:

            def expire() -> None:
                if not event.triggered:
                    event.succeed()

            timer = Timer(self, max(deadline_ns - env._now, 0), expire)
            event.callbacks.append(lambda _event: timer.cancel())
        return event

    def process(self, generator: Generator[Any, Any, Any]) -> simpy.Process:
        return self.env.process(generator)

    def drive(self, generator: Generator[Any, Any, _T], what: str) -> _T:
        """Run `generator` as a simulated process and advance the clock until it ends, returning
        its value: how a blocking call made from plain code waits."""
        event = self.env.process(generator)
        if self.env.active_process is not None:
            raise RuntimeError(
                f"{what} would block inside a simulated process; use the coroutine form, "
                f"e.g. `yield from sock.co.recv(n)` or `yield from ep.co.poll(timeout)`"
            )
        try:
            return cast(_T, self.env.run(until=event))
        except RuntimeError as exc:
            if "No scheduled events left" in str(exc):
                raise SimulationDeadlock(
                    f"{what} blocks forever: nothing else is pending at t={self.now:.6f}s"
                ) from None
            raise

    # -- delivery -----------------------------------------------------------------------------

    def transmit(self, src_host: Host, seg: Segment) -> None:
        """Put a segment on the wire from src_host towards seg.dst."""
        self.counters["segments"] += 1
        if self.tap is not None:
            # Captured before faults decide, as on the sender's interface: a lost segment is in
            # the capture, and so is its retransmission.
            self.tap(self.env._now, seg)
        if self.log_segments:
            self.log(seg, "sent")
        dst_ip = seg.dst[0]
        route = self._routes.get((src_host.ip, dst_ip))
        if route is None:
            route = self._route(src_host, dst_ip)
        dst_host, latency = route
        if dst_host is None:
            # No such host: the segment vanishes, as it would into an unrouted network.
            return
        if self._injector is not None and dst_host is not src_host:
            self._injector.transmit(src_host, dst_host, seg, latency)
            return
        if latency == 0:
            self._softirq.append((dst_host, seg))
        elif self._jitter_rng is None:
            Delivery(self.env, latency, dst_host, seg)
        else:
            self.send_in_order(src_host.ip, dst_host, seg, latency)

    def send_in_order(self, src_ip: str, dst_host: Host, seg: Segment, delay_ns: int) -> None:
        """Deliver after `delay_ns` plus up to delivery_jitter more, drawn from the seed, but
        never before a segment sent earlier on the same link: a wire is a FIFO, so the jitter
        moves segments of different links past each other, never those of one connection."""
        rng = self._jitter_rng
        if rng is None or delay_ns <= 0:
            self.send_after(dst_host, seg, delay_ns)
            return
        now = self.env._now
        when = now + delay_ns + rng.randrange(self._delivery_jitter_ns + 1)
        key = (src_ip, dst_host.ip)
        last = self._link_fifo.get(key, 0)
        if when < last:
            when = last
        self._link_fifo[key] = when
        Delivery(self.env, when - now, dst_host, seg)

    def send_after(self, dst_host: Host, seg: Segment, delay_ns: int) -> None:
        if delay_ns <= 0:
            self._softirq.append((dst_host, seg))
        else:
            Delivery(self.env, delay_ns, dst_host, seg)

    def inject_rst(self, ip: str, nth: int, one_sided: bool = False) -> bool:
        """A middlebox's RST: reset the `nth` connection made on host `ip` (and, unless
        one_sided, its peer's end), each RST carrying the sequence number its receiver expects.
        False if there is no such live connection."""
        host = self.hosts.get(ip)
        sock = None
        if host is not None:
            for candidate in host.connections.values():
                if candidate.host_conn_no == nth:
                    sock = candidate
                    break
        if sock is None or sock.state in ("TIME-WAIT", "UNCONN") or sock.remote is None or sock.local is None:
            self.counters["rsts_missed"] += 1
            return False
        targets = [sock]
        if not one_sided:
            loopback = sock.remote[0] == ip or sock.remote[0].startswith("127.")
            peer_host = host if loopback else self.hosts.get(sock.remote[0])
            peer = None if peer_host is None else peer_host.connections.get((sock.remote, sock.local))
            if peer is not None:
                targets.append(peer)
        for target in targets:
            rst = Segment(target.remote, target.local, RST, target.rcv_nxt, 0, 0)  # type: ignore[arg-type]
            self.counters["rsts_injected"] += 1
            if self.tap is not None:
                self.tap(self.env._now, rst)  # a middlebox's RST crosses the wire too
            if self.log_segments:
                self.log(rst, "injected")
            target.host.receive(rst)
        self.drain()
        return True

    def crash(self, ip: str) -> None:
        """Host `ip` crashes: every socket and epoll on it vanishes, with no segment sent; it
        drops whatever arrives until restart()."""
        host = self.hosts.get(ip)
        if host is None or host.crashed:
            return
        self.counters["crashes"] += 1
        host.crash()
        for callback in self.crash_callbacks:
            callback(host)

    def restart(self, ip: str) -> None:
        host = self.hosts.get(ip)
        if host is None or not host.crashed:
            return
        self.counters["restarts"] += 1
        host.crashed = False

    def _route(self, src_host: Host, dst_ip: str) -> tuple[Host | None, int]:
        """Where a segment from src_host to dst_ip goes and how long it takes; cached per
        (source, destination) until a host or a link changes (the hot path asks per segment)."""
        local = dst_ip == src_host.ip or dst_ip.startswith("127.")
        dst_host = src_host if local else self.hosts.get(dst_ip)
        route = (dst_host, self.path(src_host.ip, dst_ip).latency_ns)
        self._routes[(src_host.ip, dst_ip)] = route
        return route

    def drain(self) -> None:
        """Process queued zero-latency segments, including those their processing queues."""
        if self._draining:
            return
        self._draining = True
        try:
            queue = self._softirq
            while queue:
                host, seg = queue.popleft()
                host.receive(seg)
        finally:
            self._draining = False

    # -- capture and observation hooks ----------------------------------------------------------

    def capture(self, target: str | os.PathLike[str] | IO[bytes]) -> PcapWriter:
        """Write every segment from now on to `target` (a path or a binary file) as pcap for
        Wireshark (simnet/kernel/pcap.py says what the headers hold). Returns the writer;
        stop_capture() flushes it and closes a file it opened. OSError if the path cannot be
        opened, before anything is captured."""
        from simnet.kernel.pcap import PcapWriter, window_shift_for

        if self.pcap is not None:
            raise RuntimeError(f"already capturing to {self.pcap.name}")
        sysctl = self.sysctl
        # The largest window a socket can advertise: 3/4 of the largest SO_RCVBUF (setsockopt
        # doubles up to rmem_max; the default is tcp_rmem[1]). Linux picks its window scale from
        # its largest buffer the same way (tcp_select_initial_window).
        max_window = max(sysctl.tcp_rmem[1], sysctl.rmem_max * 2) * 3 // 4
        writer = PcapWriter(
            target,
            window_shift=window_shift_for(max_window),
            syn_mss=lambda src, dst: min(self.path(src, dst).mtu, 65535) - 40,
        )
        self.pcap = writer
        self.add_tap(writer.write)
        return writer

    def stop_capture(self) -> None:
        """End capture(): flush the pcap file and close it if capture() opened it."""
        writer = self.pcap
        if writer is None:
            return
        self.pcap = None
        self.remove_tap(writer.write)
        writer.close()

    def add_tap(self, tap: Callable[[int, Segment], None]) -> None:
        """Call `tap(now_ns, segment)` for every segment put on the wire (and every injected RST)."""
        self._taps.append(tap)
        self._set_tap()

    def remove_tap(self, tap: Callable[[int, Segment], None]) -> None:
        self._taps.remove(tap)
        self._set_tap()

    def _set_tap(self) -> None:
        taps = tuple(self._taps)
        if not taps:
            self.tap = None
        elif len(taps) == 1:
            self.tap = taps[0]
        else:

            def fan_out(now_ns: int, seg: Segment) -> None:
                for tap in taps:
                    tap(now_ns, seg)

            self.tap = fan_out

    def watch_queues(self, watch: Callable[[TcpSocket], None] | None) -> None:
        """Call `watch(sock)` whenever a socket's receive, send or accept queue changes size
        (None: stop). The kernel's own counters, at each change: len(sock.rcvq), len(sock.sndq),
        len(sock.accept_queue)."""
        self.queue_watch = watch

    def log(self, seg: Segment, event: str) -> None:
        self.segment_log.append(
            LoggedSegment(
                self.env.now,
                f"{seg.src[0]}:{seg.src[1]}",
                f"{seg.dst[0]}:{seg.dst[1]}",
                format_flags(seg.flags),
                seg.seq,
                seg.ack,
                seg.window,
                len(seg.data),
                event,
            )
        )

    def format_segment_log(self) -> str:
        return "\n".join(str(line) for line in self.segment_log)

    # -- inspection ---------------------------------------------------------------------------

    def ss(self) -> str:
        """The socket table of every host, like `ss -tan`."""
        rows: list[tuple[str | int, ...]] = [
            ("Host", "State", "Recv-Q", "Send-Q", "Local Address:Port", "Peer Address:Port")
        ]
        for ip in sorted(self.hosts):
            for row in self.hosts[ip].socket_table():
                rows.append((ip, *row))
        widths = [max(len(str(r[i])) for r in rows) for i in range(len(rows[0]))]
        return "\n".join(
            "  ".join(str(cell).ljust(widths[i]) for i, cell in enumerate(row)).rstrip() for row in rows
        )

    def sockets(self) -> Iterable[tuple[str, tuple[str, int, int, str, str]]]:
        for ip in sorted(self.hosts):
            for row in self.hosts[ip].socket_table():
                yield ip, row


from simnet.kernel.host import Host  # noqa: E402  (Host needs Network's helpers; import cycle)

__all__ = [
    "DISTINCT_FD_BASE",
    "FDS_PER_HOST",
    "NS_PER_S",
    "Address",
    "Host",
    "LinkConfig",
    "Network",
    "SimulationDeadlock",
    "Sysctl",
    "Timer",
    "seconds_to_ns",
]
