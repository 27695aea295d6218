"""The simulated driver: execute the server machine's syscalls on a simulated host, and nothing else.

The non-waiting syscalls go through `simnet.drivers.executor.SyscallExecutor`, which realnet
shares, and the loop is `simnet.drivers.loop.drive`, which every backend runs; this module adds
only how EpollWait waits (in virtual time) and the simulated SIGTERM.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from typing import Any

from simnet.drivers.executor import SyscallExecutor
from simnet.drivers.loop import Machine, drive
from simnet.server import syscalls as sc

__all__ = ["Machine", "SimDriver", "SyscallExecutor"]


class SimDriver:
    """Runs a machine on a simulated host, as a simpy process: `host.process(driver.run())`.

    Every non-waiting syscall is instantaneous in virtual time; EpollWait sleeps in virtual time.
    `request_shutdown()` is the simulated SIGTERM: it cuts a sleeping EpollWait short, and every
    Result from then on carries shutdown=True. `on_syscall` sees each (request, result) -- a
    recorder, or a test.
    """

    def __init__(
        self,
        host: Any,
        machine: Machine,
        *,
        on_syscall: Callable[[sc.Syscall, sc.Result], None] | None = None,
    ) -> None:
        self.host = host
        self.machine = machine
        self.on_syscall = on_syscall
        env = host.net.env
        self.executor = SyscallExecutor(host.socket, host.epoll, lambda: env.now)
        self.execute = self.executor.execute  # what drive() calls for every non-waiting syscall
        self.syscalls = 0
        self.finished = False
        self._signal_pending = False  # like a signal: cuts short one epoll_wait, not every one

    def request_shutdown(self) -> None:
        self.executor.shutdown = True
        self._signal_pending = True
        for obj in list(self.executor.fds.values()):
            interrupt = getattr(obj, "interrupt", None)
            if interrupt is not None:
                interrupt()

    def run(self) -> Generator[Any, Any, int]:
        """The machine to Exit, as a simpy process; returns the number of syscalls executed."""
        return (yield from drive(self))

    def wait(self, request: sc.EpollWait) -> Generator[Any, Any, sc.Result]:
        """epoll_wait in virtual time: the simulated process sleeps until an event or the timeout."""
        executor = self.executor
        ep = executor.fds.get(request.epfd)
        if ep is None:
            return sc.Result(error="EBADF", now=self.host.net.env.now, shutdown=executor.shutdown)
        timeout_ns = -1 if request.timeout_ms < 0 else request.timeout_ms * 1_000_000
        if self._signal_pending:
            self._signal_pending = False
            timeout_ns = 0  # the signal arrived between waits: this one returns at once
        events = yield from ep.co.poll_ns(timeout_ns, request.max_events)
        return executor.wait_result(events)
