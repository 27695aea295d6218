"""Hypothesis drives ServerMachine against a fake kernel that answers with any valid result.

The world (clients, the clock, spurious events) acts through rules; after each rule the server
runs until it blocks in EpollWait. Every choice the kernel may make -- how many bytes a recv
returns, how many a send takes -- is drawn by hypothesis. The invariants live in
fakekernel.Driver and are checked on every step; see its docstring for the list.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from simnet.server import syscalls as sc
from simnet.server.apps import Echo, Http
from simnet.server.apps.base import AppFactory

from .fakekernel import MS, Driver, MaxChooser, make

HTTP_REQUESTS = [
    b"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
    b"GET /bytes/300 HTTP/1.1\r\nHost: a\r\n\r\n",
    b"POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello",
    b"GET / HTTP/1.0\r\n\r\n",
    b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
    b"GARBAGE\r\n\r\n",
    b"GET /nope HTTP/1.1\r\nHost: a\r\n\r\n",
    b"POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 500\r\n\r\n" + b"x" * 500,
    b"GET / HTTP/1.1\r\nHost: a\r\nX: " + b"y" * 300 + b"\r\n\r\n",
]

# Small limits so that backpressure, budgets, max_connections and every timer are reached
# within a few dozen rules.
BASE = dict(
    port=0,
    output_cap=64,
    recv_size=16,
    max_events=2,
    io_budget=3,
    accept_budget=2,
    max_connections=3,
    accept_retry_ns=30 * MS,
    idle_timeout_ns=400 * MS,
    header_timeout_ns=150 * MS,
    keepalive_timeout_ns=200 * MS,
    linger_timeout_ns=50 * MS,
    shutdown_grace_ns=300 * MS,
)


class HypothesisChooser:
    def __init__(self) -> None:
        self.data: Any = None

    def integer(self, lo: int, hi: int) -> int:
        if self.data is None or lo == hi:
            return hi
        return self.data.draw(st.integers(lo, hi))


class ServerWorld(RuleBasedStateMachine):
    app: AppFactory = Echo()
    http = False
    config: dict[str, object] = {}
    fd_limit: int | None = None

    def __init__(self) -> None:
        super().__init__()
        self.chooser = HypothesisChooser()
        self.d: Driver = make(
            self.app, {**BASE, **self.config}, self.chooser, initial_space=40, fd_limit=self.fd_limit
        )
        self.peers: list[Any] = []  # every connection attempt, accepted or still queued
        self.script: dict[int, bytearray] = {}  # per peer: bytes the client will send

    def _run(self, data: Any) -> None:
        self.chooser.data = data
        self.d.run()
        self.chooser.data = None

    @initialize(data=st.data())
    def start(self, data: Any) -> None:
        self._run(data)
        assert isinstance(self.d.request, sc.EpollWait)

    # -- the world --------------------------------------------------------------------------------

    @rule(data=st.data(), aborted=st.booleans())
    def connect(self, data: Any, aborted: bool) -> None:
        if len(self.peers) < 8 and self.d.k.listen_fd is not None:
            self.peers.append(self.d.k.connect(aborted=aborted and len(self.peers) % 3 == 2))
            self.script[len(self.peers) - 1] = bytearray()
        self._run(data)

    def pick(self, data: Any) -> int:
        """A peer, preferring those still open: data for a closed one exercises little."""
        live = [i for i, p in enumerate(self.peers) if not (p.closed or p.rst or p.fin)]
        return data.draw(st.sampled_from(live or list(range(len(self.peers)))), label="peer")

    @precondition(lambda self: self.peers)
    @rule(data=st.data())
    def write(self, data: Any) -> None:
        i = self.pick(data)
        self.append(data, i)
        self.deliver(data, i)

    def append(self, data: Any, i: int) -> None:
        if self.http:
            for request in data.draw(st.lists(st.sampled_from(HTTP_REQUESTS), min_size=1, max_size=3)):
                self.script[i] += request
        else:
            # Sizes from a list: hypothesis left alone favours tiny byte strings. The content is
            # a counter, so that a lost, repeated or reordered byte shows in the comparison.
            n = data.draw(st.sampled_from([1, 7, 30, 100, 250]), label="size")
            start = len(self.peers[i].sent) + len(self.script[i])
            self.script[i] += bytes((start + k) % 251 for k in range(n))

    @precondition(lambda self: self.peers)
    @rule(data=st.data())
    def write_then_fin(self, data: Any) -> None:
        # EOF with output still pending: the flush-then-close path.
        i = self.pick(data)
        self.append(data, i)
        self.d.k.client_send(self.peers[i], bytes(self.script[i]))
        self.script[i].clear()
        self.d.k.client_fin(self.peers[i])
        self._run(data)

    @precondition(lambda self: self.peers)
    @rule(data=st.data(), n=st.integers(1, 500))
    def write_and_read(self, data: Any, n: int) -> None:
        # The common case of a live client: send something, read what came back.
        self.write(data)
        self.d.k.client_read(self.peers[self.pick(data)], n)
        self._run(data)

    def deliver(self, data: Any, i: int) -> None:
        pending = self.script[i]
        if pending:
            n = data.draw(st.integers(1, len(pending)), label="deliver")
            self.d.k.client_send(self.peers[i], bytes(pending[:n]))
            del pending[:n]
        self._run(data)

    @precondition(lambda self: self.peers)
    @rule(data=st.data())
    def deliver_more(self, data: Any) -> None:
        self.deliver(data, self.pick(data))

    @precondition(lambda self: self.peers)
    @rule(data=st.data())
    def fin(self, data: Any) -> None:
        self.d.k.client_fin(self.peers[data.draw(st.integers(0, len(self.peers) - 1), label="peer")])
        self._run(data)

    @precondition(lambda self: self.peers)
    @rule(data=st.data())
    def reset(self, data: Any) -> None:
        self.d.k.client_reset(self.peers[data.draw(st.integers(0, len(self.peers) - 1), label="peer")])
        self._run(data)

    @precondition(lambda self: self.peers)
    @rule(data=st.data(), n=st.integers(1, 500))
    def client_reads(self, data: Any, n: int) -> None:
        self.d.k.client_read(self.peers[self.pick(data)], n)
        self._run(data)

    @precondition(lambda self: self.peers)
    @rule(data=st.data(), bits=st.sampled_from([sc.EPOLLOUT, sc.EPOLLIN, sc.EPOLLIN | sc.EPOLLOUT]))
    def spurious(self, data: Any, bits: int) -> None:
        self.d.k.spurious_event(self.peers[data.draw(st.integers(0, len(self.peers) - 1), label="peer")], bits)
        self._run(data)

    @rule(data=st.data(), ms=st.sampled_from([1, 10, 60, 160, 250, 500]))
    def time_passes(self, data: Any, ms: int) -> None:
        self.d.advance(ms * MS)
        self._run(data)

    @precondition(lambda self: len(self.peers) >= 3)  # late, so that runs get somewhere first
    @rule(data=st.data())
    def shutdown(self, data: Any) -> None:
        self.d.shutdown = True
        self._run(data)

    # -- checks beyond the driver's ----------------------------------------------------------------

    @invariant()
    def bounded(self) -> None:
        m = self.d.m
        assert len(m.connections) <= m.config.max_connections
        assert m.stats.accepted - m.stats.closed == len(m.connections)

    def teardown(self) -> None:
        # A graceful shutdown with a cooperative world must reach Exit with every fd closed.
        self.d.k.chooser = MaxChooser()
        self.d.finish()


def _case(name: str, app: AppFactory, http: bool, config: dict[str, object], fd_limit: int | None = None) -> type:
    cls = type(name, (ServerWorld,), {"app": app, "http": http, "config": config, "fd_limit": fd_limit})
    return cls


HTTP_APP = Http(max_header_bytes=200, max_body_bytes=100, chunk_size=40)

CASES = {
    "echo_lt": _case("EchoLT", Echo(), False, {}),
    "echo_et": _case("EchoET", Echo(), False, {"edge_triggered": True}),
    "http_lt": _case("HttpLT", HTTP_APP, True, {}),
    "http_et": _case("HttpET", HTTP_APP, True, {"edge_triggered": True}),
    "echo_lt_emfile": _case("EchoLTEmfile", Echo(), False, {}, fd_limit=4),
    "http_et_emfile_nolinger": _case(
        "HttpETEmfile", HTTP_APP, True, {"edge_triggered": True, "linger_timeout_ns": None}, fd_limit=5
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_machine_invariants_hold_for_any_valid_kernel_behaviour(case: str) -> None:
    cls = CASES[case]
    cls.TestCase.settings = settings(
        max_examples=100,
        stateful_step_count=50,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    cls.TestCase().runTest()
