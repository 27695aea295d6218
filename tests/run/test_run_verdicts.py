"""Server bugs a run must not pass: an app that raises, and resets no client provoked.

The machine drops the connection whose app raised (a RST to its client) and keeps serving the
others. Clients then see ECONNRESET, which a run accepts of a client that provoked it (a slow
reader timed out, a client that reset or closed early) -- but not of one that behaved normally.
Before these checks, an app that raised on every connection, and a server that reset its
clients mid-request, both ran "ok".
"""

from __future__ import annotations

from typing import Any

import attrs

from simnet.sim.run import RunConfig, simulate
from simnet.server.apps.base import BaseApp
from simnet.server.config import ServerConfig
from simnet.server.machine import CloseReason, ServerMachine
from simnet.sim.workload import Workload

CONFIG = RunConfig(seed=1, workload=Workload(app="echo", clients=6, requests=3, request_size=100))


class FailsOnSecondRead(BaseApp):
    def __init__(self) -> None:
        self.reads = 0

    def receive(self, data: bytes) -> bytes:
        self.reads += 1
        if self.reads == 2:
            raise RuntimeError("the app's own bug")
        return data


def run_with(app_factory: Any) -> Any:
    def machine(config: ServerConfig, _app: Any) -> ServerMachine:
        return ServerMachine(config, app_factory)

    return simulate(CONFIG, machine_factory=machine)


def test_an_app_that_raises_fails_the_run_and_names_the_first_exception() -> None:
    summary = run_with(FailsOnSecondRead)
    assert summary.server["app_errors"] > 0
    assert summary.server["closes"].get("app_error") == summary.server["app_errors"]
    assert not summary.ok
    problem = next(p for p in summary.problems() if "app errors" in p)
    assert "the first: RuntimeError: the app's own bug" in problem


def test_an_app_factory_that_raises_fails_the_run_too() -> None:
    def broken_factory() -> BaseApp:
        raise ValueError("cannot build the app")

    summary = run_with(broken_factory)
    assert summary.server["app_errors"] == summary.server["accepted"] > 0
    assert any("ValueError: cannot build the app" in p for p in summary.problems())


def test_the_same_workload_with_a_sound_app_is_clean() -> None:
    class Echo(BaseApp):
        def receive(self, data: bytes) -> bytes:
            return data

    summary = run_with(Echo)
    assert summary.ok, summary.problems()
    assert summary.server["app_errors"] == 0 and summary.server["first_app_error"] is None


class ResetsMidRequest(ServerMachine):
    """Drops a connection at its first read, which (recv_size 10) leaves most of the request
    unread: close(2) with unread data sends a RST (LINUX.md §3), so the client, which did
    nothing wrong and has had no answer yet, sees ECONNRESET."""

    def __init__(self, config: ServerConfig, app: Any) -> None:
        super().__init__(attrs.evolve(config, recv_size=10), app)

    def _on_recv(self, conn: Any, result: Any) -> None:
        super()._on_recv(conn, result)
        if result.ok and result.value:
            self._drop(conn, CloseReason.RESET, "a deliberate bug")


def test_a_reset_that_no_client_provoked_fails_the_run() -> None:
    config = RunConfig(seed=2, workload=Workload(app="http", clients=4, requests=2))
    summary = simulate(config, machine_factory=ResetsMidRequest)
    assert summary.clients["errors"].get("ECONNRESET", 0) == 4
    assert summary.clients["unprovoked_errors"] == {"ECONNRESET": 4}
    assert "client errors of clients that provoked none: ECONNRESET 4" in summary.problems()


def test_a_reset_that_a_misbehaving_client_provoked_does_not() -> None:
    # A sound server under slow readers and resetters: a clean run.
    config = RunConfig(
        seed=2,
        workload=Workload(app="http", clients=12, requests=4, pipeline=2, resetters=0.3, slow_readers=0.3,
                          response_size=100_000),
        sndbuf=4096,
    )
    summary = simulate(config)
    assert summary.ok, summary.problems()
    # That run happens to see no reset, so the rule itself is checked on its summary: the same
    # three resets pass when the clients that saw them provoked them, and fail when one did not.
    provoked = attrs.evolve(summary, clients={**summary.clients, "errors": {"ECONNRESET": 3}})
    assert provoked.problems() == []
    unprovoked = attrs.evolve(
        summary, clients={**summary.clients, "errors": {"ECONNRESET": 3}, "unprovoked_errors": {"ECONNRESET": 1}}
    )
    assert unprovoked.problems() == ["client errors of clients that provoked none: ECONNRESET 1"]
