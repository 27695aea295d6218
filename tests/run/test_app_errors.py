"""An app that raises fails the run, even though the machine contains it and goes on serving.

The machine drops the connection whose app raised (a RST to its client) and keeps serving the
others; clients see ECONNRESET, which a run otherwise accepts (a slow reader or resetter can
provoke one). Without a check of its own, an app that raised on every connection passed.
"""

from __future__ import annotations

from typing import Any

from simnet.run import RunConfig, simulate
from simnet.server.apps.base import BaseApp
from simnet.server.config import ServerConfig
from simnet.server.machine import ServerMachine
from simnet.workload import Workload

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
