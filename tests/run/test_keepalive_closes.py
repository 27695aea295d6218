"""A keep-alive retry passes only when the server had a reason to close; a timed-out slow reader
that meets EOF provoked it.

A client whose kept-alive connection is closed before the next response opens a new one and
sends again, as real clients do. That hid a server that closes connections at random: every run
was "ok". A retry is owed to a timeout that could have expired, or a `Connection: close`; any
other close is counted (ClientStats.unannounced_closes) and fails the run.
"""

from __future__ import annotations

from typing import Any

from simnet.sim.run import RunConfig, simulate
from simnet.server.config import ServerConfig
from simnet.server.machine import Connection, ServerMachine
from simnet.sim.workload import Workload

KEEPALIVE = Workload(app="http", clients=20, requests=8, think_time=0.01)


class ClosesKeepAliveAtRandom(ServerMachine):
    """Closes some idle keep-alive connections 1 ms after a response, whatever its timeouts say."""

    def _set_deadlines(self, conn: Connection) -> None:
        super()._set_deadlines(conn)
        if conn.keepalive_deadline is not None and (conn.timer_since // 1000 + conn.fd) % 3 == 0:
            conn.keepalive_deadline = conn.timer_since + 1_000_000


def broken(config: ServerConfig, app: Any) -> ServerMachine:
    return ClosesKeepAliveAtRandom(config, app)


def test_a_server_that_closes_keep_alive_connections_for_no_reason_fails_the_run() -> None:
    summary = simulate(RunConfig(seed=3, workload=KEEPALIVE), machine_factory=broken)
    assert summary.clients["retries"] > 0
    assert summary.clients["unannounced_closes"] > 0
    assert not summary.ok
    assert any("closed by the server before any timeout" in p for p in summary.problems())


def test_retries_after_a_keep_alive_timeout_stay_clean() -> None:
    # Clients think 10 ms on average between requests; the server gives them 5 ms.
    summary = simulate(RunConfig(seed=3, workload=KEEPALIVE, keepalive_timeout=0.005))
    assert summary.clients["retries"] > 0
    assert summary.clients["unannounced_closes"] == 0
    assert summary.ok, summary.problems()


def test_a_plain_run_has_no_unannounced_close() -> None:
    summary = simulate(RunConfig(seed=3, workload=KEEPALIVE))
    assert summary.clients["unannounced_closes"] == 0 and summary.ok, summary.problems()


def test_a_slow_reader_timed_out_mid_response_provoked_its_eof() -> None:
    # Slow readers take 1000 bytes/s of responses averaging 200 kB through 4 KiB buffers; the
    # server drops a connection it could not write to for 0.5 s. Those that meet EOF before their
    # response provoked it; the normal half must still all complete.
    workload = Workload(app="http", clients=10, requests=5, slow_readers=0.5, read_rate=1000, response_size=200_000)
    config = RunConfig(seed=2, workload=workload, idle_timeout=0.5, sndbuf=4096, rcvbuf=4096)
    summary = simulate(config)
    assert summary.clients["errors"].get("EOF_BEFORE_RESPONSE", 0) > 0
    assert "EOF_BEFORE_RESPONSE" not in summary.clients["unprovoked_errors"]
    assert summary.ok, summary.problems()
