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
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from simnet.aio.fence import FencedError
from simnet.aio.loop import SimEventLoop
from simnet.aio.options import DEFAULT_EPOCH, DEFAULT_LATENCY, SCHEDULE_JITTER, loop_factory, new_event_loop
from simnet.aio.runner import Deadlock, run
from simnet.aio.socket import SimSocket
from simnet.aio.world import MAIN_HOST, current_host
from simnet.kernel.network import Network

_T = TypeVar("_T")

__all__ = [
    "DEFAULT_EPOCH",
    "DEFAULT_LATENCY",
    "SCHEDULE_JITTER",
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


def _running_loop(what: str) -> SimEventLoop:
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        raise RuntimeError(f"simnet.aio.{what}() needs a running simulation (inside simnet.aio.run)") from None
    if not isinstance(loop, SimEventLoop):
        raise RuntimeError(f"simnet.aio.{what}() called on a real event loop, not inside simnet.aio.run")
    return loop


def spawn(
    coro: Coroutine[Any, Any, _T],
    *,
    host: str,
    name: str | None = None,
    restart: Callable[[], Coroutine[Any, Any, Any]] | None = None,
) -> asyncio.Task[_T]:
    """An asyncio.Task whose sockets (and those of the tasks it creates) live on simulated host
    `host`, created on first use.

    `restart`: when the host crashes and comes back (a fault schedule's crash with
    `restart_after`), `restart()` makes the coroutine that runs on it again -- as a service
    manager restarts a server after a reboot. Without it, a crashed host's tasks stay gone."""
    loop = _running_loop("spawn")
    task = _spawn_on(loop, coro, host, name)
    if restart is not None:
        loop.on_restart(loop.world.host(host), lambda: _spawn_on(loop, restart(), host, name))
    return task


def _spawn_on(loop: SimEventLoop, coro: Coroutine[Any, Any, _T], host: str, name: str | None) -> asyncio.Task[_T]:
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
