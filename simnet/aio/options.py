"""Making a simulated event loop: a Network with its named hosts and faults, and the loop on it.

`new_event_loop(**options)` is what `simnet.aio.run` and `loop_factory` build on; the options
are `run`'s (see its docstring). Fault schedules may name hosts: the names get addresses (in
the World) before the Network is made with the schedule.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

from simnet.aio.loop import SimEventLoop
from simnet.aio.world import MAIN_HOST, World
from simnet.kernel.network import Network, Sysctl

# `simnet run`'s default one-way latency between hosts (simnet/sim/run.py RunConfig.latency).
DEFAULT_LATENCY = 0.001
DEFAULT_SETTLE = 1.0
# With schedule="explore", each segment between hosts takes up to this much longer, drawn from
# the seed (links stay FIFO): what a real wire leaves open -- which of two nearly simultaneous
# segments from different hosts arrives first -- varies with the seed.
SCHEDULE_JITTER = 1e-6
# What time.time() reads at virtual time 0: 2026-01-01T00:00:00Z (a date, not 1970, so that
# programs that print or compare dates see a plausible one). The same for every run.
DEFAULT_EPOCH = 1_767_225_600.0


def _schedule_faults(
    world: World,
    faults: Any,
    loss: float,
    reorder: float,
    duplicate: float,
    jitter: Any,
    short_io: float,
) -> Any:
    """The run's FaultSchedule: `faults` (a FaultSchedule, a dict in its JSON form, or a TOML/JSON
    path, naming hosts or addresses) plus the shorthand rates, which apply to every link."""
    from simnet.faults import FaultSchedule, LinkFaults, ShortIO, parse_jitter

    schedule: FaultSchedule
    if faults is None:
        schedule = FaultSchedule()
    elif isinstance(faults, FaultSchedule):
        schedule = faults
    elif isinstance(faults, dict):
        schedule = FaultSchedule.from_json(world.name_faults(faults))
    elif isinstance(faults, (str, Path)):
        schedule = _load_named(world, faults)
    else:
        raise TypeError(f"faults: a FaultSchedule, a dict or a path, not {type(faults).__name__}")
    links: list[Any] = list(schedule.links)
    if loss or reorder or duplicate or jitter is not None:
        link: dict[str, Any] = {"loss": loss, "reorder": reorder, "duplicate": duplicate}
        if jitter is not None:
            link["jitter"] = parse_jitter(jitter)
        links.append(LinkFaults(**link))
    shorts: list[Any] = list(schedule.short_io)
    if short_io:
        shorts.append(ShortIO(recv=short_io, send=short_io))
    import attrs

    return attrs.evolve(schedule, links=tuple(links), short_io=tuple(shorts))


def _load_named(world: World, path: str | Path) -> Any:
    """load_schedule, with host names replaced by addresses before the values are checked."""
    import json
    import tomllib

    from simnet.faults import FaultSchedule, load_schedule

    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
        obj = json.loads(text) if path.suffix.lower() == ".json" else tomllib.loads(text)
    except (OSError, ValueError):
        return load_schedule(path)  # its one-line error names the file and line
    return FaultSchedule.from_json(world.name_faults(obj), str(path))


def new_event_loop(
    *,
    seed: int = 0,
    latency: float = DEFAULT_LATENCY,
    loss: float = 0.0,
    reorder: float = 0.0,
    duplicate: float = 0.0,
    jitter: Any = None,
    short_io: float = 0.0,
    faults: Any = None,
    rcvbuf: int | None = None,
    sndbuf: int | None = None,
    mtu: int = 1500,
    hosts: dict[str, str] | None = None,
    schedule: str = "explore",
    log_segments: bool = False,
    sysctl: Sysctl | None = None,
    virtual_clock: bool = True,
    epoch: float = DEFAULT_EPOCH,
    seeded_random: bool = True,
    pcap: Any = None,
    trace: Any = None,
) -> SimEventLoop:
    """A simulated event loop on a new Network (the options as `run` takes them)."""
    if schedule not in ("explore", "fixed"):
        raise ValueError(f"schedule: 'explore' or 'fixed', not {schedule!r}")
    sysctl = sysctl or Sysctl()
    if rcvbuf is not None or sndbuf is not None:
        # Every socket's buffer as `sysctl net.ipv4.tcp_rmem="N N N"` would make it: starting
        # at N and never autotuned beyond it (the program's own SO_RCVBUF still applies).
        import attrs

        if rcvbuf is not None:
            sysctl = attrs.evolve(sysctl, tcp_rmem=(min(sysctl.tcp_rmem[0], rcvbuf), rcvbuf, rcvbuf))
        if sndbuf is not None:
            sysctl = attrs.evolve(sysctl, tcp_wmem=(min(sysctl.tcp_wmem[0], sndbuf), sndbuf, sndbuf))
    # The faults name hosts, so the world (names -> addresses) exists before the network does;
    # it is given its network right after.
    schedule_rng = None if schedule == "fixed" else random.Random(f"simnet.aio schedule {seed}")
    world = World(hosts or {}, schedule_rng, seed)
    fault_schedule = _schedule_faults(world, faults, loss, reorder, duplicate, jitter, short_io)
    net = Network(
        seed=seed,
        latency=latency,
        mtu=mtu,
        sysctl=sysctl,
        log_segments=log_segments,
        faults=fault_schedule,
        distinct_fds=True,
        pcap=pcap,
        delivery_jitter=0.0 if schedule == "fixed" else SCHEDULE_JITTER,
    )
    world.bind(net)
    world.virtual_clock = virtual_clock
    world.epoch_ns = int(round(epoch * 1e9))
    world.seeded_random = seeded_random
    if trace is not None:
        # Every socket and epoll call of every host into a program trace (simnet/aio/recorder.py);
        # set before the loop exists, since the loop makes its selector at once.
        from simnet.aio.recorder import SimRecorder

        given = {"latency": latency, "loss": loss, "reorder": reorder, "duplicate": duplicate,
                 "jitter": jitter, "short_io": short_io, "faults": faults, "rcvbuf": rcvbuf,
                 "sndbuf": sndbuf, "schedule": schedule}  # fmt: skip
        world.recorder = SimRecorder(world, trace, seed=seed, options=given)
    loop = SimEventLoop(world)
    net.crash_callbacks.append(lambda host: _crashed(loop, host))
    for crash in fault_schedule.crashes:
        if crash.restart_after is not None:
            # Queued after the Network's own restart timer for the same instant (made with the
            # Network, so earlier in simpy's FIFO for ties): the host is up when this runs.
            host = net.host(crash.host)
            restart_ns = round((crash.at + crash.restart_after) * 1e9)
            net.call_later(restart_ns, lambda host=host: loop.host_restarted(host))  # type: ignore[misc]
    return loop


def loop_factory(**options: Any) -> Callable[[], SimEventLoop]:
    """For `asyncio.Runner(loop_factory=sa.loop_factory(seed=7, loss=0.01))` and test runners."""
    new_event_loop(**options).close()  # check the options now, where the caller wrote them
    return lambda: new_event_loop(**options)


def _crashed(loop: SimEventLoop, host: Any) -> None:
    """A simulated host crashed: its processes are gone, so its tasks end (cancelled, since
    asyncio has no way to make a task vanish) and its transports are aborted (their sockets
    vanished with the host), so that no cleanup waits for a connection that no longer exists."""
    loop.abort_transports_of(host)
    for task in _tasks_on(loop, host):
        task.cancel(msg=f"simnet: host {loop.world.name_of(host.ip)} crashed")


def task_host_of(task: asyncio.Task[Any]) -> Any:
    loop = task.get_loop()
    return loop.task_host(task) if isinstance(loop, SimEventLoop) else None


def _tasks_on(loop: SimEventLoop, host: Any) -> list[asyncio.Task[Any]]:
    main = loop.world.names.get(MAIN_HOST)
    out = []
    for task in asyncio.all_tasks(loop):
        task_host = task_host_of(task)
        if task_host is host or (task_host is None and host.ip == main):
            out.append(task)
    out.sort(key=lambda t: t.get_name())
    return out
