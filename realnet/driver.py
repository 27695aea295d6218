"""The realnet driver: a server machine on real non-blocking sockets and `select.epoll`.

Every non-waiting syscall goes through `simnet.drivers.executor.SyscallExecutor` -- the same code the simnet
driver uses, handed real `socket.socket` objects instead of simulated ones -- so the two backends
differ only in where sockets come from and how EpollWait waits. There is no server logic here.

EpollWait is the one call this module executes itself: `epoll.poll(timeout, maxevents)`.

Shutdown and signals
--------------------
A graceful shutdown is asked for by setting `executor.shutdown`; every Result from then on carries
`shutdown=True` and the machine winds down on its own (stops accepting, lets in-flight responses
finish within its grace period, closes, asks for Exit). What needs care is a machine asleep in
`epoll_wait` with no deadline (timeout -1): CPython retries a poll interrupted by a signal
(PEP 475) unless the handler raises, so a handler that only sets a flag would never be noticed.
And a handler that raises can land just after `poll` returned, losing events -- fatal for an
edge-triggered machine, which is never told about them again.

So the driver owns a self-pipe. Its read end is registered (level-triggered EPOLLIN) in the
machine's epoll as soon as EpollCreate returns, and `signal.set_wakeup_fd` points at its write
end: the C-level signal handler writes a byte there, so the poll returns at once, whenever the
signal arrived -- before the poll, during it, or between two polls. The pipe's fd is not the
machine's: its event is filtered out of the Result (and the pipe drained), so a signal alone
makes EpollWait return an empty tuple. `request_shutdown()` does the same from another thread.

A second signal means "now": the driver stops stepping the machine, closes every socket and
returns; a recording then ends without an Exit record (`simnet replay` says it was cut short).
"""

from __future__ import annotations

import os
import select
import signal
import socket
import time
from collections.abc import Callable, Generator
from typing import Any, cast

from simnet.drivers.executor import SyscallExecutor, errno_name
from simnet.drivers.loop import drive_now
from simnet.server import syscalls as sc

_EPOLLIN = select.EPOLLIN


def _new_socket() -> socket.socket:
    return socket.socket(socket.AF_INET, socket.SOCK_STREAM)


class _Forced(Exception):
    """A second shutdown request: the run ends before the machine asks for Exit."""


class RealDriver:
    """Runs `machine` (anything with start() and step(); a Recorder too) until it asks for Exit.

    `on_syscall(request, result)` sees every executed syscall. `on_listening()` is called once,
    just before the first EpollWait: the listener is bound, listening and registered, so the
    machine's `bound_port` is known. `handle_signals=True` (main thread only) turns SIGINT and
    SIGTERM into `request_shutdown()` for the duration of `run()`.
    """

    def __init__(
        self,
        machine: Any,
        *,
        on_syscall: Callable[[sc.Syscall, sc.Result], None] | None = None,
        on_listening: Callable[[], None] | None = None,
        handle_signals: bool = False,
    ) -> None:
        self.machine = machine
        self.on_syscall = on_syscall
        self.on_listening = on_listening
        self.handle_signals = handle_signals
        self.executor = SyscallExecutor(new_socket=_new_socket, new_epoll=select.epoll, clock_ns=time.monotonic_ns)
        self.syscalls = 0
        self.finished = False  # the machine asked for Exit
        self.forced = False  # a second shutdown request ended the run before Exit
        self.signals: list[int] = []  # the signals received, in order
        self._requests = 0
        self._wake_r, self._wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)

    # -- shutdown requests ------------------------------------------------------------------------

    def request_shutdown(self) -> None:
        """Graceful shutdown; a second call stops at once. Safe from any thread, and from a
        signal handler: it only sets flags and writes one byte to the wake-up pipe."""
        self._requests += 1
        self.executor.shutdown = True
        self._wake()

    def _wake(self) -> None:
        try:
            os.write(self._wake_w, b"\0")
        except (BlockingIOError, OSError):
            pass  # the pipe is full (a wake-up is pending anyway) or already closed

    def _on_signal(self, signum: int, frame: Any) -> None:
        # The C-level handler has already written to the wake-up fd (set_wakeup_fd); this runs
        # later, between two bytecodes of the main thread, and only sets flags.
        self.signals.append(signum)
        self._requests += 1
        self.executor.shutdown = True

    # -- the loop ---------------------------------------------------------------------------------

    def run(self) -> int:
        """Drive the machine to Exit (or a forced stop); return the number of syscalls executed.

        Whatever the machine leaves open -- after a forced stop, or if it raises -- is closed.
        """
        saved: dict[int, Any] = {}
        old_wakeup = -1
        if self.handle_signals:
            for signum in (signal.SIGINT, signal.SIGTERM):
                saved[signum] = signal.signal(signum, self._on_signal)
            old_wakeup = signal.set_wakeup_fd(self._wake_w, warn_on_full_buffer=False)
        try:
            return self._loop()
        finally:
            if self.handle_signals:
                signal.set_wakeup_fd(old_wakeup)
                for saved_signum, handler in saved.items():
                    signal.signal(saved_signum, handler)
            self.executor.close_all()
            for fd in (self._wake_r, self._wake_w):
                try:
                    os.close(fd)
                except OSError:
                    pass

    def _loop(self) -> int:
        try:
            return drive_now(self)
        except _Forced:
            self.forced = True
            return self.syscalls

    # -- the backend that simnet.drivers.loop.drive runs ------------------------------------------

    def execute(self, request: sc.Syscall) -> sc.Result:
        if self._requests > 1:
            raise _Forced
        result = self.executor.execute(request)
        if type(request) is sc.EpollCreate and result.error is None:
            # The wake-up pipe joins the machine's epoll; see the module docstring.
            self.executor.fds[cast(int, result.value)].register(self._wake_r, _EPOLLIN)
        return result

    def wait(self, request: sc.EpollWait) -> Generator[Any, Any, sc.Result]:
        """A real epoll_wait: it blocks here, so the generator returns without ever yielding."""
        if self._requests > 1:
            raise _Forced
        if self.on_listening is not None:
            listening, self.on_listening = self.on_listening, None
            listening()
        return self._epoll_wait(request)
        yield  # never reached: drive_now runs this loop to the end in one go

    def _epoll_wait(self, request: sc.EpollWait) -> sc.Result:
        executor = self.executor
        ep = executor.fds.get(request.epfd)
        if ep is None:
            return sc.Result(error="EBADF", now=executor.clock_ns(), shutdown=executor.shutdown)
        timeout = -1 if request.timeout_ms < 0 else request.timeout_ms / 1000
        # The wake-up pipe may take one of the max_events slots; that costs nothing, because an
        # fd epoll did not report stays on its ready list (ET included) for the next wait.
        try:
            events = ep.poll(timeout, request.max_events)
        except OSError as exc:
            return sc.Result(error=errno_name(exc), now=executor.clock_ns(), shutdown=executor.shutdown)
        wake = self._wake_r
        mine = [(fd, mask) for fd, mask in events if fd != wake]
        if len(mine) != len(events):
            self._drain()
        return executor.wait_result(mine)

    def _drain(self) -> None:
        try:
            while os.read(self._wake_r, 4096):
                pass
        except BlockingIOError:
            pass
