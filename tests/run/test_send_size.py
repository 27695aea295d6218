"""ServerConfig.send_size: how much pending output one Send offers, and traces from before it."""

from __future__ import annotations

from typing import Any

import attrs
import pytest

from simnet.sim.run import RunConfig, simulate
from simnet.server import syscalls as sc
from simnet.server.config import KiB, ServerConfig
from simnet.server.machine import ServerMachine
from simnet.sim.workload import Workload

# Responses far larger than send_size, through buffers small enough that most sends are partial.
CONFIG = RunConfig(
    seed=3,
    workload=Workload(app="http", clients=4, requests=3, pipeline=2, response_size=400_000, slow_readers=0.5),
    rcvbuf=4096,
    sndbuf=4096,
)


def offered(send_size: Any = "default") -> tuple[list[int], dict[str, Any]]:
    """The sizes of the data every Send offered, and the run's server summary."""
    sizes: list[int] = []

    def factory(config: ServerConfig, app: Any) -> ServerMachine:
        if send_size != "default":
            config = attrs.evolve(config, send_size=send_size)
        return ServerMachine(config, app)

    def seen(request: sc.Syscall, result: sc.Result) -> None:
        if isinstance(request, sc.Send):
            sizes.append(len(request.data))

    summary = simulate(CONFIG, on_syscall=seen, machine_factory=factory)
    assert summary.ok, summary.problems()
    assert summary.clients["responses"] == 12  # every byte of every response checked by the clients
    return sizes, summary.server


def test_a_send_offers_at_most_send_size_and_every_response_still_arrives_whole() -> None:
    capped, server = offered()
    assert max(capped) == 64 * KiB  # the default: as much as one loopback segment carries
    assert server["partial_writes"] > 0


def test_without_a_cap_a_send_offers_all_pending_output_as_before() -> None:
    capped, _ = offered()
    whole, _ = offered(None)
    assert max(whole) > 64 * KiB
    # What the sends copied (and a trace would record): the cap offers far less for the same bytes.
    assert sum(capped) < sum(whole) / 2


def test_a_smaller_cap_is_kept_to() -> None:
    sizes, _ = offered(1000)
    assert max(sizes) == 1000


def test_a_header_from_before_send_size_replays_with_the_behaviour_it_was_recorded_with() -> None:
    assert ServerConfig.from_recorded({"port": 80}).send_size is None  # offered everything then
    assert ServerConfig.from_recorded({"port": 80, "send_size": 4096}).send_size == 4096
    assert ServerConfig().send_size == 64 * KiB
    with pytest.raises(TypeError):
        ServerConfig.from_recorded({"no_such_field": 1})
