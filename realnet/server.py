"""One realnet server run: machine + app + (optional) recorder + RealDriver, as a function.

`serve()` is what `realnet serve` calls; tests and benchmarks can call it too (in the main thread
with `handle_signals=True`, or in any thread with `handle_signals=False`, taking the driver from
`on_driver` and calling its `request_shutdown()` from elsewhere).
"""

from __future__ import annotations

import os
import platform
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import attrs

from realnet.driver import RealDriver
from simnet.server.apps import make_app
from simnet.server.config import ServerConfig
from simnet.server.machine import ServerMachine
from simnet.trace import Recorder, TraceHeader, TraceWriter


@attrs.define
class Outcome:
    """How a run ended. `exit_reason` is the machine's ("shutdown" when all went as it should)."""

    machine: ServerMachine
    driver: RealDriver
    elapsed_ns: int
    served: bool = False  # the listener was set up and the machine began to wait for events
    trace_path: str | None = None
    trace_records: int = 0

    @property
    def clean(self) -> bool:
        """The machine shut down gracefully and asked for Exit."""
        return self.driver.finished and self.machine.exit_reason == "shutdown"

    @property
    def setup_failed(self) -> bool:
        """The server never got to serve: socket, bind, listen or epoll setup failed (or it was
        told to shut down before it was listening)."""
        return not self.served

    def summary(self) -> str:
        """One line from machine.stats for the end of a run."""
        s = self.machine.stats
        seconds = self.elapsed_ns / 1e9
        how = "stopped" if self.clean else "forced stop" if self.driver.forced else "stopped"
        reason = self.machine.exit_reason or ("second signal" if self.driver.forced else "?")
        parts = [
            f"{s.accepted} connections",
            f"{s.requests} requests",
            f"{s.responses} responses",
            f"{_size(s.bytes_in)} in",
            f"{_size(s.bytes_out)} out",
            f"{s.partial_writes} partial writes",
            f"{s.resets} resets",
        ]
        timeouts = s.idle_timeouts + s.header_timeouts + s.keepalive_timeouts + s.linger_timeouts
        if timeouts:
            parts.append(f"{timeouts} timeouts")
        if s.shutdown_forced:
            parts.append(f"{s.shutdown_forced} cut off at shutdown")
        if s.app_errors:
            parts.append(f"{s.app_errors} app errors")
        line = f"realnet: {how} ({reason}) after {seconds:.1f}s: " + ", ".join(parts)
        line += f"; {self.driver.syscalls} syscalls"
        if self.trace_path is not None:
            line += f", {self.trace_records} records in {self.trace_path}"
        return line


def _size(n: int) -> str:
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} B"


def serve(
    config: ServerConfig,
    app: str,
    app_options: dict[str, Any] | None = None,
    *,
    record: str | os.PathLike[str] | None = None,
    on_listening: Callable[[ServerMachine], None] | None = None,
    on_driver: Callable[[RealDriver], None] | None = None,
    handle_signals: bool = True,
    meta: dict[str, Any] | None = None,
) -> Outcome:
    """Serve until a graceful shutdown (SIGINT/SIGTERM, or `driver.request_shutdown()`).

    `app`/`app_options` as for `make_app` (ValueError for unknown ones). With `record`, the run is
    written to that trace file (its directory is created); the header holds every field of the
    app's and the server's config, so `simnet replay` rebuilds exactly this machine. The trace is
    flushed and closed however the run ends. `on_driver(driver)` is called before the run starts
    (a test's handle to request_shutdown from another thread).
    """
    factory = make_app(app, **(app_options or {}))
    machine = ServerMachine(config, factory)
    stepper: Any = machine
    writer: TraceWriter | None = None
    if record is not None:
        Path(record).parent.mkdir(parents=True, exist_ok=True)
        header = TraceHeader.create(
            backend="realnet",
            app=app,
            # Every field, defaults included: the trace replays the same machine even if a
            # default changes later.
            app_config=(
                attrs.asdict(cast("attrs.AttrsInstance", factory))
                if attrs.has(type(factory))
                else dict(app_options or {})
            ),
            server_config=config,
            clock_origin=time.monotonic_ns(),
            meta={"kernel": platform.release(), "python": platform.python_version()} | (meta or {}),
        )
        writer = TraceWriter(record, header)
        stepper = Recorder(machine, writer)

    served = False

    def listening() -> None:
        nonlocal served
        served = True
        if on_listening is not None:
            on_listening(machine)

    driver = RealDriver(stepper, on_listening=listening, handle_signals=handle_signals)
    if on_driver is not None:
        on_driver(driver)
    started = time.monotonic_ns()
    try:
        driver.run()
    finally:
        if writer is not None:
            writer.close()
    return Outcome(
        machine=machine,
        driver=driver,
        elapsed_ns=time.monotonic_ns() - started,
        served=served,
        trace_path=None if record is None else os.fspath(record),
        trace_records=0 if writer is None else writer.records,
    )
