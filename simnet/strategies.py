"""Hypothesis strategies for testing servers in simnet: workloads, network conditions, whole runs.

    from hypothesis import given
    from simnet import strategies as sst
    from simnet.testing import check_run

    @given(sst.run_configs(app="http"))
    def test_every_client_gets_its_responses(config):
        check_run(config)

Every strategy draws plain values (attrs instances of `simnet.workload.Workload` and
`simnet.run.RunConfig`); the simulation's randomness comes from the drawn `seed`, through the one
`random.Random(seed)` each `Network` hands down. So a failing example is a value hypothesis can
shrink and print, and the run it describes is the same every time. Shrinking goes towards fewer
clients, fewer requests, no pipelining, default buffers and zero latency: the smallest run that
still fails.

`seeds()` draws the seed; `registered_network(seed)` builds a `Network` whose RNG hypothesis
knows about (`hypothesis.register_random`), for tests that draw from `net.rng` themselves.
"""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

from simnet.run import RunConfig
from simnet.workload import Workload

# Linux clamps SO_RCVBUF/SO_SNDBUF to minimums after doubling (LINUX.md §2), so 1 means "as small
# as Linux allows". None leaves autotuning on. Small sizes first: they shrink towards the
# partial-write paths rather than away from them.
BUFFER_SIZES = (None, 1, 2048, 4096, 16384, 65536, 262144)
LATENCIES = (0.0, 0.00005, 0.001, 0.005, 0.05)


def seeds() -> st.SearchStrategy[int]:
    return st.integers(min_value=0, max_value=2**32 - 1)


def buffer_sizes() -> st.SearchStrategy[int | None]:
    return st.sampled_from(BUFFER_SIZES)


def latencies() -> st.SearchStrategy[float]:
    """One-way link latencies in seconds, from loopback-like to a slow WAN."""
    return st.sampled_from(LATENCIES)


@st.composite
def workloads(
    draw: st.DrawFn,
    *,
    app: str | None = None,
    max_clients: int = 25,
    max_requests: int = 8,
    misbehaving: bool = True,
) -> Workload:
    """A population of clients. `misbehaving=False` leaves out slow readers, early closers and
    resetters (every client then must complete)."""
    app = app if app is not None else draw(st.sampled_from(["http", "echo"]))
    bad = draw(st.sampled_from([0.0, 0.1, 0.25])) if misbehaving else 0.0
    return Workload(
        app=app,
        clients=draw(st.integers(1, max_clients)),
        requests=draw(st.integers(1, max_requests)),
        pipeline=draw(st.integers(1, 4)),
        arrival_window=draw(st.sampled_from([0.0, 0.01, 0.5])),
        think_time=draw(st.sampled_from([0.0, 0.005, 0.1])),
        request_size=draw(st.sampled_from([1, 64, 5000, 70000])),
        response_size=draw(st.sampled_from([0, 100, 20000, 200000])),
        slow_readers=draw(st.sampled_from([0.0, 0.2])) if misbehaving else 0.0,
        read_rate=draw(st.sampled_from([4096.0, 65536.0])),
        early_closers=bad,
        resetters=bad,
    )


@st.composite
def network_conditions(draw: st.DrawFn) -> dict[str, Any]:
    """Latency and the server's socket buffers, as `RunConfig` keyword arguments."""
    return {"latency": draw(latencies()), "rcvbuf": draw(buffer_sizes()), "sndbuf": draw(buffer_sizes())}


@st.composite
def run_configs(
    draw: st.DrawFn,
    *,
    app: str | None = None,
    machine: str | None = None,
    edge_triggered: bool | None = None,
    **workload_options: Any,
) -> RunConfig:
    """A whole run: seed, workload, network conditions and the server's epoll mode.
    `machine` ("MODULE:FACTORY") runs a machine variant; other keywords go to `workloads`."""
    return RunConfig(
        seed=draw(seeds()),
        workload=draw(workloads(app=app, **workload_options)),
        edge_triggered=draw(st.booleans()) if edge_triggered is None else edge_triggered,
        machine=machine,
        **draw(network_conditions()),
    )


def registered_network(seed: int, **options: Any) -> Any:
    """A `Network(seed=...)` whose RNG is registered with hypothesis, so hypothesis resets and
    controls it between examples like the global `random` module."""
    from hypothesis import register_random

    from simnet.kernel import Network

    net = Network(seed=seed, **options)
    register_random(net.rng)
    return net
