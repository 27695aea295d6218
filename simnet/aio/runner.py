"""simnet.aio.run: asyncio.run on a simulated network -- the run, its end, and its failures.

When main() returns, the network settles (in-flight FINs arrive) before the remaining tasks are
cancelled; a run in which every task waits and nothing is pending raises Deadlock naming them;
an exception from the program carries a note with the seed and the call that reproduces it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

from simnet.aio.loop import SimEventLoop
from simnet.aio.options import DEFAULT_SETTLE, new_event_loop, task_host_of
from simnet.aio.world import MAIN_HOST
from simnet.kernel.network import Network, SimulationDeadlock

_T = TypeVar("_T")


class Deadlock(SimulationDeadlock):
    """Every task waits and nothing is pending in the network: a real program would hang here."""


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
    crossed the simulated wire, for Wireshark), trace (a path or binary file: every socket and epoll
    call of every host, docs/trace-format.md; `simnet show` draws it), virtual_clock, epoch,
    seeded_random, and settle: when
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
        host = task_host_of(task)
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
    deadline = net.now_ns + round(bound * 1e9)
    while net.now_ns < deadline:
        if _quiet(net):
            return
        # Something is on the wire or waits for a timer (a retransmission, a delayed ACK):
        # sleep until the next thing the network will do, and look again.
        wake = net.next_event_ns()
        if wake is None:
            return
        await asyncio.sleep(max(min(wake, deadline) - net.now_ns, 1) / 1e9)


def _quiet(net: Network) -> bool:
    """No segment in flight and every byte and FIN sent and acknowledged."""
    if net.segments_in_flight():
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
    quiet_cancelled_handlers(loop)
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


def quiet_cancelled_handlers(loop: asyncio.AbstractEventLoop) -> None:
    """Python 3.11's start_server callback asks each handler task that a shutdown cancelled for
    its exception and logs the CancelledError it gets: noise about the stop, not about the
    program. Drop those; every other exception is reported as before."""
    previous = loop.get_exception_handler()

    def quiet(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        if isinstance(context.get("exception"), asyncio.CancelledError):
            return
        if previous is not None:
            previous(loop, context)
        else:
            loop.default_exception_handler(context)

    loop.set_exception_handler(quiet)
