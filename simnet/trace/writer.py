"""Writing a trace: `TraceWriter` (one call per syscall) and `Recorder` (wraps a machine).

Durability, and why this flush policy: a recorder can be killed at any moment (`kill -9` of a
realnet server, a CI timeout). What the process had handed to the kernel survives that -- the
page cache is the kernel's, not the process's; only a machine crash needs fsync, and that is
not what we guard against. So the rule is about *what* reaches the kernel and *when*:

* Only whole lines. Records are buffered here as complete lines and handed to the file in one
  `write` of complete lines, so the file never ends mid-record unless that very write was cut
  short by the kill (Linux checks for a fatal signal between pages of a large write). The
  reader reports such a tail as `truncated last line`; every line before it stays readable.
* Often enough to lose little. The buffer goes out when it holds `buffer_bytes` (64 KiB: one
  write per few hundred records keeps recording cheap), on `flush()`, on `close()`, after the
  Exit record, and -- in `Recorder` -- before every EpollWait that may block, since a server
  idling in epoll_wait is exactly when someone loses patience and kills it.
"""

from __future__ import annotations

import io
import os
from typing import IO, Any, NoReturn, Protocol

from simnet.server.syscalls import EpollWait, Exit, Result
from simnet.trace.codec import TraceHeader, header_line, record_line
from simnet.trace.values import _encode_json


class TraceWriter:
    """Writes the header at once, then one line per `record(request, result)`.

    `target` is a path (created or truncated, closed by `close()`) or a file object in binary or
    text mode (flushed but left open by `close()`). Misuse -- a value the format cannot hold, a
    record after Exit or after close -- raises at once and writes nothing.
    """

    def __init__(
        self,
        target: str | os.PathLike[str] | IO[bytes] | IO[str],
        header: TraceHeader,
        *,
        buffer_bytes: int = 1 << 16,
    ) -> None:
        if isinstance(target, (str, os.PathLike)):
            self._file: Any = open(target, "wb")
            self._owned = True
        else:
            self._file = target
            self._owned = False
        self._text = isinstance(self._file, io.TextIOBase)
        self._buffer: list[bytes] = []
        self._buffered = 0
        self._limit = buffer_bytes
        self._seq = 0
        self._exited = False
        self._closed = False
        # One flag for `record` to test, set with either of the two above.
        self._refusing = False
        # The header goes out immediately: a trace killed before its first flush is still a
        # readable, empty trace that says what was being run.
        self._buffer.append(header_line(header))
        self.flush()

    @property
    def records(self) -> int:
        """How many records (Exit included) have been recorded so far."""
        return self._seq

    def record(self, request: Any, result: Result | None, host: str | None = None) -> None:
        """Append the record of `request` and the `result` it was handed (None only for Exit);
        `host` names the simulated host that made the call, in a trace of several hosts."""
        # Called once per syscall while recording: one flag tested, the attributes read once.
        if self._refusing:
            self._refuse(request)
        seq = self._seq + 1
        line = record_line(seq, request, result)
        if host is not None:
            # "host" is the last key (codec.encode_record): the line as written, with it added.
            if type(host) is not str or result is None:
                raise TypeError(f"record({request!r}): host must be a str, on a record with a result")
            line = line[:-2] + b',"host":' + _encode_json(host) + b"}\n"
        self._seq = seq
        self._buffer.append(line)
        self._buffered += len(line)
        if result is None:  # Exit: the end of the run, so nothing may wait in memory
            self._exited = self._refusing = True
            self.flush()
        elif self._buffered >= self._limit:
            self.flush()

    def record_formatted(self, template: bytes, values: tuple[Any, ...]) -> None:
        """Append the record `template % (seq, *values)`: `template` is a
        `codec.line_template`, `values` its slots after seq, of exactly the types it names --
        the caller vouches for them, as nothing here checks. The way a live recorder writes
        its hottest calls (a clock read, a recv) without building a request and a Result;
        buffered and flushed as `record` is."""
        if self._refusing:
            self._refuse(template)
        seq = self._seq + 1
        line = template % (seq, *values)
        self._seq = seq
        self._buffer.append(line)
        self._buffered += len(line)
        if self._buffered >= self._limit:
            self.flush()

    def _refuse(self, request: Any) -> NoReturn:
        if self._closed:
            raise ValueError(f"record({request!r}) on a closed TraceWriter")
        raise ValueError(f"record({request!r}) after Exit: the machine has finished")

    def record_exit(self) -> None:
        """The machine asked for Exit: the last record of a run that ended as it should."""
        self.record(Exit(), None)

    def flush(self) -> None:
        """Hand every buffered (complete) line to the operating system."""
        if not self._buffer:
            return
        data = b"".join(self._buffer)
        self._buffer.clear()
        self._buffered = 0
        self._file.write(data.decode("utf-8") if self._text else data)
        self._file.flush()

    def close(self) -> None:
        if self._closed:
            return
        try:
            self.flush()
        finally:
            self._closed = self._refusing = True
            if self._owned:
                self._file.close()

    def __enter__(self) -> TraceWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        # Also on an exception: whatever was recorded before the failure is the evidence.
        self.close()


class Machine(Protocol):
    """The server machine as drivers see it (simnet.server.machine.ServerMachine)."""

    def start(self) -> Any: ...

    def step(self, result: Result) -> Any: ...


class Recorder:
    """A machine that records: wrap the machine, and any driver records without knowing it.

        recorder = Recorder(machine, writer)
        req = recorder.start()
        while not isinstance(req, Exit):
            req = recorder.step(execute(req))

    or drive it as any machine (`simnet.drivers.loop.run_direct(recorder, execute)`). Each result
    is written *before* the machine sees it, so if the machine raises, the result that triggered
    the failure is in the trace and replays.
    `flush_before_wait=False` skips the flush before a blocking EpollWait; a simulated driver,
    whose waits are virtual, has no reason to pay a write per wait.
    """

    def __init__(self, machine: Machine, writer: TraceWriter, *, flush_before_wait: bool = True) -> None:
        self.machine = machine
        self.writer = writer
        self._flush_before_wait = flush_before_wait
        self._pending: Any = None

    def start(self) -> Any:
        return self._asked(self.machine.start())

    def step(self, result: Result) -> Any:
        # Once per syscall while recording, so `_asked` is written out inline here.
        pending = self._pending
        if pending is None:
            raise ValueError("Recorder.step() before start(), or after Exit")
        self.writer.record(pending, result)
        request = self.machine.step(result)
        kind = type(request)
        if kind is EpollWait:
            if request.timeout_ms != 0 and self._flush_before_wait:
                self.writer.flush()
        elif kind is Exit:
            self._pending = None
            self.writer.record_exit()
            return request
        self._pending = request
        return request

    def _asked(self, request: Any) -> Any:
        kind = type(request)
        if kind is Exit:
            self._pending = None
            self.writer.record_exit()
        else:
            self._pending = request
            if kind is EpollWait and request.timeout_ms != 0 and self._flush_before_wait:
                self.writer.flush()
        return request
