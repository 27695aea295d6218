"""The simulation's clock and the events the model puts on it by hand.

Time is simpy's clock in integer nanoseconds, so that no float rounding can make two runs
differ. Timers (TCP's retransmission, delayed-ACK, persist and TIME_WAIT timers; a fault
schedule's timed events) and segments in flight on a link with latency are most of the events a
run processes, so they are simpy events made without simpy's per-event machinery.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable
from typing import TYPE_CHECKING

import simpy
from simpy.events import NORMAL as _NORMAL
from simpy.events import ProcessGenerator

if TYPE_CHECKING:
    from simnet.kernel.host import Host
    from simnet.kernel.network import Network
    from simnet.kernel.segment import Segment

NS_PER_S = 1_000_000_000


def seconds_to_ns(seconds: float) -> int:
    return int(round(seconds * NS_PER_S))


class SimEnv(simpy.Environment):
    """simpy's Environment, its clock typed as what the model keeps: integer nanoseconds.

    simpy types `now` as `int | float`; every delay the model schedules is an int, so the
    clock stays one. Only the annotations differ from simpy's: the same object at run time.
    """

    _now: int

    @property
    def now(self) -> int:
        return self._now

    @property
    def events_scheduled(self) -> int:
        """How many events simpy has scheduled so far: its id counter (an itertools.count),
        read from its repr without consuming an id (count.__reduce__ is deprecated)."""
        return int(repr(self._eid)[6:-1])  # "count(123)"

    def process(self, generator: ProcessGenerator) -> simpy.Process:
        return NamedProcess(self, generator)


class NamedProcess(simpy.Process):
    """simpy's Process, whose name (in its repr, and in simpy's "until event was not triggered"
    error) also works for a generator mypyc compiled (setup.py), which has no __name__."""

    @property
    def name(self) -> str:
        generator = self._generator
        # mypyc names a compiled generator's class after its function, plus "_gen".
        return getattr(generator, "__name__", None) or type(generator).__name__.removesuffix("_gen")


def is_dead(event: simpy.Event) -> bool:
    return type(event) is Timer and not event.active


# Timers and segments in flight are most of the events a run processes, so they are simpy events
# built by hand: already triggered (_ok, _value set, as Environment.schedule expects of an event
# it is given), pushed on simpy's heap with the key Environment.schedule would give them --
# (time, NORMAL, next event id) -- without Event.__init__, a method call or a second object.


class Timer(simpy.Event):
    """A cancellable one-shot callback in virtual time; it is its own simpy event.

    simpy events cannot be withdrawn from the heap, so cancelling marks the timer dead and the
    callback becomes a no-op when its time comes (Network.run pops dead timers unprocessed).
    Cheaper than a simpy process per timer.
    """

    def __init__(self, net: Network, delay_ns: int, callback: Callable[[], object]) -> None:
        env = net.env
        self.env = env
        self._ok = True
        self._value = None
        self.net = net
        self.callback = callback
        self.active = True
        self.deadline = when = env._now + delay_ns  # when the callback is due
        self._push(when)

    def _push(self, when: int) -> None:
        """Put the timer on simpy's heap, due at `when` (ns)."""
        self.callbacks = [_fire_timer]
        self.when = when  # when its heap entry comes up (<= deadline, see Network.rearm)
        self.queued = True
        env = self.env
        heapq.heappush(env._queue, (when, _NORMAL, next(env._eid), self))

    def cancel(self) -> None:
        self.active = False


def _fire_timer(timer: Timer) -> None:
    timer.queued = False
    if not timer.active:
        return
    if timer.deadline > timer.when:
        timer._push(timer.deadline)  # re-armed for later since it was queued: wait the rest
        return
    timer.active = False
    net = timer.net
    try:
        timer.callback()
    finally:
        if net._softirq:
            net.drain()


class Delivery(simpy.Event):
    """A segment in flight on a link with latency, delivered when the event is processed."""

    def __init__(self, env: simpy.Environment, delay_ns: int, host: Host, seg: Segment) -> None:
        self.env = env
        self.callbacks = [_deliver]
        self._ok = True
        self._value = None
        self.host = host
        self.seg = seg
        heapq.heappush(env._queue, (env._now + delay_ns, _NORMAL, next(env._eid), self))


def _deliver(event: Delivery) -> None:
    host = event.host
    try:
        host.receive(event.seg)
    finally:
        net = host.net
        if net._softirq:
            net.drain()
