"""The one loop that drives the server machine, whatever executes its syscalls.

    request = machine.start()
    while request is not Exit:
        result = wait(request) if it is an EpollWait else execute(request)
        request = machine.step(result)

A backend says how to run a syscall that does not wait (`execute`, usually the shared
SyscallExecutor's) and how to wait in epoll (`wait`): the simulated driver waits in virtual time
by yielding to the simulation, realnet blocks in a real epoll_wait and returns. So the loop is a
generator: a simulated process runs it with `yield from drive(backend)`, and `drive_now` runs it
for a backend whose waits never yield. A machine wrapped in a trace Recorder is driven the same
way; exact replay (simnet/drivers/replay.py) answers from a trace instead of executing, and
walks the trace's records rather than this loop.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from typing import Any, Protocol

from simnet.server import syscalls as sc


class Machine(Protocol):
    """The server machine as the loop sees it (simnet.server.machine.ServerMachine, or a Recorder)."""

    def start(self) -> Any: ...

    def step(self, result: sc.Result) -> Any: ...


class Backend(Protocol):
    """What drives a machine: the machine, how to execute and how to wait, and two counters."""

    machine: Machine
    on_syscall: Callable[[Any, sc.Result], None] | None
    syscalls: int
    finished: bool

    def execute(self, request: Any) -> sc.Result: ...

    def wait(self, request: sc.EpollWait) -> Generator[Any, Any, sc.Result]: ...


def drive(backend: Backend) -> Generator[Any, Any, int]:
    """Drive `backend.machine` to Exit; return the number of syscalls executed. `syscalls` counts
    as it goes (a run cut short still says how far it got), `finished` is set at Exit."""
    machine = backend.machine
    execute = backend.execute
    wait = backend.wait
    on_syscall = backend.on_syscall
    EpollWait, Exit = sc.EpollWait, sc.Exit
    request = machine.start()
    while type(request) is not Exit:
        if type(request) is EpollWait:
            result = yield from wait(request)
        else:
            result = execute(request)
        if on_syscall is not None:
            on_syscall(request, result)
        backend.syscalls += 1
        request = machine.step(result)
    backend.finished = True
    return backend.syscalls


def drive_now(backend: Backend) -> int:
    """drive() for a backend whose waits return at once (real sockets, a fake kernel)."""
    loop = drive(backend)
    try:
        loop.send(None)
    except StopIteration as done:
        return int(done.value)
    loop.close()
    raise RuntimeError(f"{type(backend).__name__}.wait yielded: drive_now needs waits that return at once")


class Direct:
    """A backend made of one function that executes every syscall, waits included (a test's fake
    kernel): `drive_now(Direct(machine, execute))`."""

    def __init__(self, machine: Machine, execute: Callable[[Any], sc.Result]) -> None:
        self.machine = machine
        self.execute = execute
        self.on_syscall: Callable[[Any, sc.Result], None] | None = None
        self.syscalls = 0
        self.finished = False

    def wait(self, request: sc.EpollWait) -> Generator[Any, Any, sc.Result]:
        return self.execute(request)
        yield  # a generator that never yields: the wait has returned


def run_direct(machine: Machine, execute: Callable[[Any], sc.Result]) -> int:
    """Drive `machine` to Exit with `execute(request) -> Result` for every syscall; the count."""
    return drive_now(Direct(machine, execute))
