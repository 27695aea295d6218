"""A flood of pipelined requests must not hold a new connection unaccepted for the whole flood.

On real sockets a Recv of 64 KiB of pipelined GETs costs the app milliseconds (~2,000 requests);
bench/abuse.py measured an ordinary client waiting 1.1 s while 20 connections flooded, because
a turn (Sends and Recvs between two EpollWaits) ran until every flooder had used its io_budget.
`turn_budget_ns` ends a turn that has taken that long by the results' clock. Here the fake
kernel's clock advances by a fixed cost per Recv, as a real one would, and its invariant checks
(no busy loop, no lost wakeup, every byte in order) run throughout.
"""

from __future__ import annotations

import pytest

from server.fakekernel import MS, FakeKernel, MaxChooser, Peer, make
from simnet.server import syscalls as sc
from simnet.server.apps import Http

RECV_COST = 5 * MS  # what the app's parsing of one full Recv of pipelined requests costs
GET = b"GET / HTTP/1.1\r\nHost: f\r\n\r\n"


class CostlyKernel(FakeKernel):
    """Every Recv takes RECV_COST of the clock; after the `arrive_at`-th Recv a canary connects."""

    arrive_at = 3

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.recvs = 0
        self.canary: Peer | None = None
        self.recvs_before_canary_accept: int | None = None

    def execute(self, req: sc.Syscall, timeout_passed: bool = False) -> sc.Result | None:
        if isinstance(req, sc.Accept) and self.canary is not None and self.queue and self.queue[0] is self.canary:
            self.recvs_before_canary_accept = self.recvs - self.arrive_at
        result = super().execute(req, timeout_passed)
        if isinstance(req, sc.Recv):
            self.recvs += 1
            self.now += RECV_COST
            if self.recvs == self.arrive_at:
                self.canary = self.connect()
                self.client_send(self.canary, GET)
        return result


@pytest.mark.parametrize("budget_ms", [10, None])
def test_a_pipelined_flood_lets_a_new_connection_in_within_a_turn_budget(budget_ms: int | None) -> None:
    driver = make(Http(), {"port": 0, "turn_budget_ns": None if budget_ms is None else budget_ms * MS})
    kernel = CostlyKernel(MaxChooser())
    driver.k = kernel
    driver.run()  # setup, then the first (blocking) EpollWait
    flooders = [kernel.connect() for _ in range(8)]
    driver.run()  # accept them
    for peer in flooders:
        kernel.client_send(peer, GET * 20_000)  # ~540 KB each: many Recvs
    for _ in range(200):
        driver.run()
        for peer in kernel.peers:
            kernel.client_read(peer, 1 << 24)  # fast readers: only the server's own pace matters
        if kernel.recvs_before_canary_accept is not None:
            break
        driver.advance(1 * MS)
    waited = kernel.recvs_before_canary_accept
    assert waited is not None
    if budget_ms is None:
        # Without a budget the canary waits for every flooder's io_budget worth of work.
        assert waited * RECV_COST > 20 * MS, waited
    else:
        # With it, the turn in which the canary arrived ends within the budget (plus one Recv).
        assert waited * RECV_COST <= budget_ms * MS + RECV_COST, waited
        assert driver.m.stats.turns_cut > 0
    driver.finish()
