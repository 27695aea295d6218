"""simnet.aio: users' own, unmodified asyncio programs on the simulated Linux TCP stack.

    import simnet.aio as sa

    async def main():
        sa.spawn(serve(), host="server")              # a task whose sockets live on "server"
        reader, writer = await asyncio.open_connection("server", 8080)
        ...

    sa.run(main(), seed=7, loss=0.01, short_io=0.2)  # like asyncio.run, in virtual time

`main()` runs on host "main". The program's sockets are simnet's kernel sockets (handshake,
backlog, bounded buffers, retransmission, FIN/RST), its clock is the network's virtual clock,
and nothing real is opened (docs/aio.md says what is simulated and what is fenced).
"""

from __future__ import annotations

import asyncio
import contextvars
import random
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar

from simnet.aio.loop import FencedError, SimEventLoop
from simnet.aio.socket import SimSocket
from simnet.aio.world import MAIN_HOST, World, current_host
from simnet.kernel.network import Network, SimulationDeadlock, Sysctl

_T = TypeVar("_T")

# `simnet run`'s default one-way latency between hosts (simnet/run.py RunConfig.latency).
DEFAULT_LATENCY = 0.001
DEFAULT_SETTLE = 1.0
# With schedule="explore", each segment between hosts takes up to this much longer, drawn from
# the seed (links stay FIFO): what a real wire leaves open -- which of two nearly simultaneous
# segments from different hosts arrives first -- varies with the seed.
SCHEDULE_JITTER = 1e-6
# What time.time() reads at virtual time 0: 2026-01-01T00:00:00Z (a date, not 1970, so that
# programs that print or compare dates see a plausible one). The same for every run.
DEFAULT_EPOCH = 1_767_225_600.0

__all__ = [
    "Deadlock",
    "FencedError",
    "SimEventLoop",
    "SimSocket",
    "address",
    "current_host_name",
    "loop_factory",
    "network",
    "new_event_loop",
    "run",
    "spawn",
]


class Deadlock(SimulationDeadlock):
    """Every task waits and nothing is pending in the network: a real program would hang here."""


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
    loop = SimEventLoop(world)
    crash_callbacks = getattr(net, "crash_callbacks", None)  # made when the faults have crashes
    if crash_callbacks is not None:
        crash_callbacks.append(lambda host: _crashed(loop, host))
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


def _task_host(task: asyncio.Task[Any]) -> Any:
    loop = task.get_loop()
    return loop.task_host(task) if isinstance(loop, SimEventLoop) else None


def _tasks_on(loop: SimEventLoop, host: Any) -> list[asyncio.Task[Any]]:
    main = loop.world.names.get(MAIN_HOST)
    out = []
    for task in asyncio.all_tasks(loop):
        task_host = _task_host(task)
        if task_host is host or (task_host is None and host.ip == main):
            out.append(task)
    out.sort(key=lambda t: t.get_name())
    return out


def _running_loop(what: str) -> SimEventLoop:
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        raise RuntimeError(f"simnet.aio.{what}() needs a running simulation (inside simnet.aio.run)") from None
    if not isinstance(loop, SimEventLoop):
        raise RuntimeError(f"simnet.aio.{what}() called on a real event loop, not inside simnet.aio.run")
    return loop


def spawn(coro: Coroutine[Any, Any, _T], *, host: str, name: str | None = None) -> asyncio.Task[_T]:
    """An asyncio.Task whose sockets (and those of the tasks it creates) live on simulated host
    `host`, created on first use."""
    loop = _running_loop("spawn")
    sim_host = loop.world.host(host)
    context = contextvars.copy_context()
    context.run(current_host.set, sim_host)
    task = loop.create_task(coro, name=name or f"{host}:{getattr(coro, '__qualname__', 'task')}", context=context)
    loop.keep_alive(task)
    return task


def address(name: str) -> str:
    """The address of simulated host `name` (the next free 10.0.0.N on first use)."""
    return _running_loop("address").world.address(name)


def network() -> Network:
    """The running simulation's Network: now, ss(), link(), counters, segment_log, faults."""
    return _running_loop("network").world.net


def current_host_name() -> str:
    """The name of the simulated host the calling task runs on."""
    loop = _running_loop("current_host_name")
    host = current_host.get()
    return MAIN_HOST if host is None else loop.world.name_of(host.ip)


def run(
    main: Coroutine[Any, Any, _T],
    *,
    seed: int = 0,
    settle: float = DEFAULT_SETTLE,
    debug: bool | None = None,
    **options: Any,
) -> _T:
    """Run `main()` on host "main" of a new simulated network, like asyncio.run, in virtual time.

    Options (all keyword): seed, latency (one-way seconds between hosts, default 1 ms as `simnet
    run`), loss, reorder, duplicate, jitter, short_io (rates), faults (a FaultSchedule, its JSON
    form or a TOML/JSON path; hosts may be named), rcvbuf, sndbuf, mtu, hosts (name -> pinned
    address), schedule ("explore": the seed also picks the order of simultaneous events;
    "fixed": it does not), log_segments, pcap (a path or binary file: every segment as it
    crossed the simulated wire, for Wireshark), virtual_clock, epoch, seeded_random, and settle: when
    main() returns, the network runs on for up to this many virtual seconds until it is quiet
    (no segment in flight, nothing unacknowledged), so in-flight FINs arrive before the
    remaining tasks are cancelled.

    Raises Deadlock when every task waits and nothing is pending. An exception from the program
    gets a note with the seed and the call that reproduces it."""
    if not asyncio.iscoroutine(main):
        raise ValueError(f"a coroutine was expected, got {main!r}")
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        pass
    else:
        main.close()
        raise RuntimeError("simnet.aio.run() cannot be called from a running event loop")
    try:
        loop = new_event_loop(seed=seed, **options)
    except BaseException:
        main.close()  # never started: no "coroutine was never awaited" warning on top
        raise
    if debug is not None:
        loop.set_debug(debug)
    try:
        asyncio.set_event_loop(loop)
        task = loop.create_task(main, name="main")
        try:
            result = loop.run_until_complete(task)
        except SimulationDeadlock as exc:
            raise _deadlock(loop, exc) from None
        except BaseException as exc:
            _add_reproduce_note(exc, seed, options)
            raise
        if settle > 0:
            loop.run_until_complete(_settle(loop, settle))
        return result
    finally:
        try:
            _cancel_all_tasks(loop)
            loop.run_until_complete(loop.shutdown_asyncgens())
        finally:
            asyncio.set_event_loop(None)
            loop.close()


def _add_reproduce_note(exc: BaseException, seed: int, options: dict[str, Any]) -> None:
    if isinstance(exc, (KeyboardInterrupt, SystemExit)) or not hasattr(exc, "add_note"):
        return
    args = ", ".join([f"seed={seed}", *(f"{k}={v!r}" for k, v in options.items())])
    exc.add_note(f"simnet.aio: this run had seed={seed}; reproduce with simnet.aio.run(main(), {args})")


def _deadlock(loop: SimEventLoop, cause: SimulationDeadlock) -> Deadlock:
    waiting = []
    for task in sorted(asyncio.all_tasks(loop), key=lambda t: t.get_name()):
        host = _task_host(task)
        host_name = MAIN_HOST if host is None else loop.world.name_of(host.ip)
        where = ""
        stack = task.get_stack()
        if stack:
            frame = stack[-1]
            where = f" at {frame.f_code.co_filename}:{frame.f_lineno} in {frame.f_code.co_name}"
        waiting.append(f"{task.get_name()} on {host_name}{where}")
    now = loop.world.net.now
    lines = "; ".join(waiting) or "none"
    return Deadlock(
        f"deadlock at t={now:.6f}s: every task waits and nothing is pending in the network "
        f"(a real program would hang here). Waiting: {lines}"
    )


async def _settle(loop: SimEventLoop, bound: float) -> None:
    """Let the network run until nothing is in flight or unacknowledged, for at most `bound`."""
    net = loop.world.net
    deadline = net.env._now + round(bound * 1e9)
    while net.env._now < deadline:
        if _quiet(net):
            return
        # Something is on the wire or waits for a timer (a retransmission, a delayed ACK):
        # sleep until the next thing the network will do, and look again.
        wake = _next_event_ns(net)
        if wake is None:
            return
        await asyncio.sleep(max(min(wake, deadline) - net.env._now, 1) / 1e9)


def _next_event_ns(net: Network) -> int | None:
    from simnet.kernel.network import _is_dead

    times = [int(entry[0]) for entry in net.env._queue if not _is_dead(entry[3])]
    return min(times) if times else None


def _quiet(net: Network) -> bool:
    """No segment in flight and every byte and FIN sent and acknowledged."""
    from simnet.kernel.network import _Delivery

    if any(type(entry[3]) is _Delivery for entry in net.env._queue):
        return False
    for host in net.hosts.values():
        for sock in host.connections.values():
            if sock.sndq or sock.snd_una < sock.snd_max or (sock.fin_pending and not sock.fin_sent):
                return False
    return True


def _cancel_all_tasks(loop: SimEventLoop) -> None:
    """asyncio.runners._cancel_all_tasks, tolerating a simulation with nothing left to run."""
    to_cancel = asyncio.all_tasks(loop)
    if not to_cancel:
        return
    for task in to_cancel:
        task.cancel()
    # Python 3.11's start_server callback asks a cancelled handler task for its exception and
    # logs the CancelledError it gets: noise about the shutdown itself, not about the program.
    previous = loop.get_exception_handler()

    def quiet(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        if isinstance(context.get("exception"), asyncio.CancelledError):
            return
        if previous is not None:
            previous(loop, context)
        else:
            loop.default_exception_handler(context)

    loop.set_exception_handler(quiet)
    try:
        loop.run_until_complete(asyncio.gather(*to_cancel, return_exceptions=True))
    except SimulationDeadlock:
        pass  # a task's cleanup waits on the network for ever: it is cancelled with the loop
    for task in to_cancel:
        if task.cancelled() or not task.done():
            continue
        if task.exception() is not None:
            loop.call_exception_handler(
                {
                    "message": "unhandled exception during simnet.aio.run() shutdown",
                    "exception": task.exception(),
                    "task": task,
                }
            )
