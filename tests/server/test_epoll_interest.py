"""Level-triggered interest: EPOLLOUT is asked for only once a socket has said it is full.

A connection whose response waits only because the turn ended (its io_budget used, or the turn
budget) still has buffer space: the machine takes it up after the next EpollWait(0) without an
event, so arming EPOLLOUT for it would be a MOD to add it and another to drop it again. The fake
kernel's invariant checks (no lost wakeup at a blocking wait, every byte in order) run
throughout.
"""

from __future__ import annotations

from server.fakekernel import FakeKernel, MaxChooser, make
from simnet.server import syscalls as sc
from simnet.server.apps import Http

GET = b"GET / HTTP/1.1\r\nHost: f\r\n\r\n"


class CountingKernel(FakeKernel):
    """Counts the EPOLL_CTL_MODs that ask for EPOLLOUT."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.out_arms = 0

    def execute(self, req: sc.Syscall, timeout_passed: bool = False) -> sc.Result | None:
        if isinstance(req, sc.EpollCtl) and req.op == sc.EPOLL_CTL_MOD and req.mask & sc.EPOLLOUT:
            self.out_arms += 1
        return super().execute(req, timeout_passed)


def serve_pipelined(initial_space: int) -> tuple[CountingKernel, int]:
    """Four connections with 30 pipelined GETs each, one syscall per connection per turn; the
    clients read everything between turns. (kernel, responses the clients received)"""
    driver = make(Http(), {"port": 0, "io_budget": 1})
    kernel = driver.k = CountingKernel(MaxChooser(), initial_space=initial_space)
    driver.run()
    peers = [kernel.connect() for _ in range(4)]
    driver.run()
    for peer in peers:
        kernel.client_send(peer, GET * 30)
    for _ in range(500):
        driver.run()
        for peer in peers:
            kernel.client_read(peer, 1 << 20)
        if all(bytes(peer.received).count(b"HTTP/1.1 200") == 30 for peer in peers):
            break
        driver.advance(1_000_000)
    received = sum(bytes(peer.received).count(b"HTTP/1.1 200") for peer in peers)
    driver.finish()
    return kernel, received


def test_a_response_held_back_by_the_io_budget_goes_out_without_arming_epollout() -> None:
    kernel, received = serve_pipelined(initial_space=1 << 20)
    assert received == 4 * 30
    assert kernel.out_arms == 0


def test_a_socket_that_is_full_is_still_armed_for_epollout() -> None:
    # Room for less than one response: every send is partial, and only EPOLLOUT says when
    # the client has read enough for the next.
    kernel, received = serve_pipelined(initial_space=40)
    assert received == 4 * 30
    assert kernel.out_arms > 0
