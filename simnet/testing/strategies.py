"""Hypothesis strategies for testing servers in simnet: workloads, network conditions, whole runs.

    from hypothesis import given
    from simnet.testing import strategies as sst
    from simnet.testing import check_run

    @given(sst.run_configs(app="http"))
    def test_every_client_gets_its_responses(config):
        check_run(config)

Every strategy draws plain values (attrs instances of `simnet.sim.workload.Workload` and
`simnet.sim.run.RunConfig`); the simulation's randomness comes from the drawn `seed`, through the one
`random.Random(seed)` each `Network` hands down. So a failing example is a value hypothesis can
shrink and print, and the run it describes is the same every time. Shrinking goes towards fewer
clients, fewer requests, no pipelining, default buffers and zero latency: the smallest run that
still fails.

`fault_schedules()` draws faults (docs/faults.md): link loss, duplication, reordering and jitter,
partitions and holds that heal, injected RSTs and short I/O; `run_configs(faults=True)` adds one
to each run. Everything shrinks towards no fault at all.

`seeds()` draws the seed; `registered_network(seed)` builds a `Network` whose RNG hypothesis
knows about (`hypothesis.register_random`), for tests that draw from `net.rng` themselves.
"""

from __future__ import annotations

from typing import Any

import attrs
from hypothesis import strategies as st

from simnet.faults import FaultSchedule, Hold, InjectRst, Jitter, LinkFaults, Partition, ShortIO
from simnet.sim.run import SERVER_IP, RunConfig
from simnet.sim.workload import Workload

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


JITTERS = (
    Jitter(),
    Jitter(distribution="uniform", params=(0.0, 0.001)),
    Jitter(distribution="exponential", params=(0.0005,)),
    Jitter(distribution="normal", params=(0.001, 0.0005)),
)
# The clients' response timeout in runs drawn with faults: longer than any drawn partition or
# hold and than the server's own timeouts, so it only ends what nothing else would.
FAULT_RESPONSE_TIMEOUT = 30.0
CLIENT_HOST = "10.0.1.1"  # where a run's clients live (simnet.sim.run puts up to 5000 on each host)


@st.composite
def link_faults(draw: st.DrawFn, *, max_loss: float = 0.05) -> LinkFaults:
    """Faults on every link: loss up to `max_loss`, duplication, reordering, jitter."""
    losses = tuple(rate for rate in (0.0, 0.01, 0.02, 0.05, 0.1) if rate <= max_loss)
    return LinkFaults(
        loss=draw(st.sampled_from(losses)),
        duplicate=draw(st.sampled_from([0.0, 0.02, 0.1])),
        reorder=draw(st.sampled_from([0.0, 0.02, 0.1])),
        reorder_delay=draw(st.sampled_from([0.005, 0.0005, 0.05])),
        jitter=draw(st.sampled_from(JITTERS)),
    )


@st.composite
def fault_schedules(
    draw: st.DrawFn,
    *,
    max_loss: float = 0.05,
    partitions: bool = True,
    holds: bool = True,
    rsts: bool = True,
    short_io: bool = True,
    server: str = SERVER_IP,
    client: str = CLIENT_HOST,
) -> FaultSchedule:
    """A schedule of faults between `server` and `client` hosts that a correct server survives
    with every client completing or naming its error: partitions and holds always heal (within
    a few seconds), loss stays at or below `max_loss`, short I/O rates below 1/2. No crashes:
    they end the clients on a host by design (test them with an explicit Crash)."""
    times = st.sampled_from([0.0, 0.05, 0.2, 0.5, 1.0])
    spans = st.sampled_from([0.05, 0.5, 2.0, 4.0])
    links = (draw(link_faults(max_loss=max_loss)),) if draw(st.booleans()) else ()
    cuts = []
    if partitions and draw(st.booleans()):
        start = draw(times)
        cuts.append(Partition(a=server, b=client, start=start, end=start + draw(spans), one_way=draw(st.booleans())))
    held = []
    if holds and draw(st.booleans()):
        start = draw(times)
        held.append(Hold(a=server, b=client, start=start, end=start + draw(spans), one_way=draw(st.booleans())))
    resets = []
    if rsts and draw(st.booleans()):
        nth, one_sided = draw(st.integers(1, 5)), draw(st.booleans())
        resets.append(InjectRst(at=draw(times), host=server, nth=nth, one_sided=one_sided))
    io = []
    if short_io and draw(st.booleans()):
        rates = st.sampled_from([0.0, 0.1, 0.3, 0.5])
        io.append(ShortIO(recv=draw(rates), send=draw(rates), spurious_wakeup=draw(rates)))
    return FaultSchedule(links=links, partitions=cuts, holds=held, rsts=resets, short_io=io)


@st.composite
def run_configs(
    draw: st.DrawFn,
    /,
    *,
    app: str | None = None,
    machine: str | None = None,
    edge_triggered: bool | None = None,
    faults: bool | st.SearchStrategy[FaultSchedule] = False,
    **workload_options: Any,
) -> RunConfig:
    """A whole run: seed, workload, network conditions and the server's epoll mode.
    `machine` ("MODULE:FACTORY") runs a machine variant; `faults=True` draws a
    `fault_schedules()` for it (or pass your own strategy of FaultSchedules); other keywords go
    to `workloads`."""
    schedule = None
    if faults is True:
        schedule = draw(fault_schedules())
    elif faults is not False:
        schedule = draw(faults)
    workload = draw(workloads(app=app, **workload_options))
    if schedule is not None and not schedule.empty and workload.response_timeout is None:
        # A fault may kill a connection silently (a one-sided RST): without a timeout its client
        # would wait for ever, and a run must end with every client done or naming its error.
        workload = attrs.evolve(workload, response_timeout=FAULT_RESPONSE_TIMEOUT)
    return RunConfig(
        faults=schedule,
        seed=draw(seeds()),
        workload=workload,
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
