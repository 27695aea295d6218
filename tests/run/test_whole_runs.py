"""Whole simulated runs: the machine, the kernel model and seeded clients together.

For any seed, buffer sizes down to Linux's minimum, latency and workload: echo clients get back
exactly what they sent, HTTP clients get one correct response per request in order (pipelined and
larger than every buffer included), clients that reset or close early do not disturb the others,
and at the end no fd is left open. The clients check every byte of every response themselves
(simnet/sim/workload.py), so "correct" here means byte-for-byte.
"""

from __future__ import annotations

import attrs
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from simnet.sim.run import RunConfig, simulate
from simnet.server import syscalls as sc
from simnet.sim.workload import Workload

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# SO_RCVBUF/SO_SNDBUF as a server would set them; Linux doubles them and clamps to its minimums
# (2304 / 4608 after doubling, LINUX.md §2), so 1 is "as small as Linux allows".
buffer_sizes = st.sampled_from([None, 1, 2048, 4096, 16384, 65536])
latencies = st.sampled_from([0.0, 0.0001, 0.001, 0.02])


@st.composite
def workloads(draw: st.DrawFn) -> Workload:
    app = draw(st.sampled_from(["http", "echo"]))
    misbehaving = draw(st.sampled_from([0.0, 0.1, 0.3]))
    return Workload(
        app=app,
        clients=draw(st.integers(1, 25)),
        requests=draw(st.integers(1, 6)),
        pipeline=draw(st.integers(1, 4)),
        arrival_window=draw(st.sampled_from([0.0, 0.01, 0.5])),
        think_time=draw(st.sampled_from([0.0, 0.005])),
        request_size=draw(st.sampled_from([0, 1, 100, 5000, 70000])) if app == "http" else draw(
            st.sampled_from([1, 100, 5000, 70000])
        ),
        response_size=draw(st.sampled_from([0, 100, 20000, 200000])),
        slow_readers=draw(st.sampled_from([0.0, 0.2])),
        read_rate=draw(st.sampled_from([4096.0, 65536.0])),
        early_closers=misbehaving,
        resetters=misbehaving,
    )


@SETTINGS
@given(
    seed=st.integers(0, 2**32),
    workload=workloads(),
    rcvbuf=buffer_sizes,
    sndbuf=buffer_sizes,
    latency=latencies,
    edge_triggered=st.booleans(),
)
def test_every_well_behaved_client_gets_exactly_its_responses_and_nothing_leaks(
    seed: int, workload: Workload, rcvbuf: int | None, sndbuf: int | None, latency: float, edge_triggered: bool
) -> None:
    config = RunConfig(
        seed=seed, workload=workload, rcvbuf=rcvbuf, sndbuf=sndbuf, latency=latency, edge_triggered=edge_triggered
    )
    summary = simulate(config)
    clients = summary.clients
    assert summary.ok, f"{summary.problems()}\n" + "\n".join(summary.lines())
    well_behaved = clients["planned"].get("normal", 0) + clients["planned"].get("slow_reader", 0)
    assert clients["completed"] == well_behaved, "a client that reset or closed early disturbed another"
    assert clients["wrong_responses"] == 0
    assert summary.open_fds_at_end == 0
    assert summary.server["accepted"] == summary.server["closed"]
    assert summary.server_exit == "shutdown"


def test_responses_larger_than_every_buffer_arrive_whole_through_partial_writes() -> None:
    workload = Workload(app="http", clients=5, requests=4, pipeline=2, response_size=300_000)
    summary = simulate(RunConfig(seed=1, workload=workload, rcvbuf=1, sndbuf=1))
    assert summary.ok, summary.problems()
    assert summary.clients["responses"] == 20
    assert summary.server["partial_writes"] > 0 and summary.server["epollout_waits"] > 0


def _syscalls(config: RunConfig) -> list[tuple[sc.Syscall, sc.Result]]:
    seen: list[tuple[sc.Syscall, sc.Result]] = []
    simulate(config, on_syscall=lambda request, result: seen.append((request, result)))
    return seen


def test_the_same_seed_gives_the_same_summary_and_the_same_syscall_sequence() -> None:
    config = RunConfig(
        seed=42,
        workload=Workload(app="http", clients=30, requests=5, pipeline=3, resetters=0.1, slow_readers=0.1),
        rcvbuf=4096,
        sndbuf=4096,
    )
    assert simulate(config) == simulate(config)
    first, second = _syscalls(config), _syscalls(config)
    assert first == second
    other = _syscalls(attrs.evolve(config, seed=43))
    assert other != first
