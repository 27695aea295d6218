"""Exact replay: run a fresh machine on a trace's recorded results and check every request.

The machine is deterministic given its results (it owns no clock, socket or RNG), so handing it
the results a trace recorded must make it ask for exactly the recorded requests, one by one. The
first request that differs is a divergence: the machine's code, config or app has changed since
the recording, or the recording was made by a different machine. `replay_exact` reports it with
the records just before it, which is usually enough to see why.

Memory is constant: the trace streams through, and only the last few records are kept.
"""

from __future__ import annotations

import collections
import os
import traceback
from collections.abc import Callable
from typing import IO, Any

import attrs

from simnet.server.syscalls import Result
from simnet.trace.codec import Record, TraceError, TraceHeader, replay_result
from simnet.trace.reader import decode_record_line, read_trace_lines, refuse_after_exit, source_name
from simnet.trace.writer import Machine

MachineFactory = Callable[[TraceHeader], Machine]


def app_and_config(header: TraceHeader, path: str = "<trace>") -> tuple[Any, Any]:
    """(app factory, ServerConfig) as a trace header records them -- for a replay, or a
    re-simulation that perturbs the config. TraceError (line 1) when the header names an app or
    a config this simnet does not have: bad input, not a bug."""
    # Imported here so that reading and showing traces works without the server package's
    # heavier parts, and so a test can replay against a factory of its own.
    from simnet.server.apps import make_app
    from simnet.server.config import ServerConfig

    try:
        app = make_app(header.app, **header.app_config)
    except ValueError as exc:  # unknown app or option: make_app's message is one line
        raise TraceError(path, 1, f"header: {exc}") from None
    try:
        config = ServerConfig.from_recorded(header.server_config)
    except (TypeError, ValueError) as exc:
        raise TraceError(
            path, 1, f"header: server_config does not fit this simnet's ServerConfig: {exc}"
        ) from None
    return app, config


def machine_from_header(header: TraceHeader, path: str = "<trace>") -> Machine:
    """Build the machine a trace was recorded from: its app and both configs, as in the header."""
    from simnet.server.machine import ServerMachine

    app, config = app_and_config(header, path)
    return ServerMachine(config, app)


@attrs.frozen(kw_only=True)
class Divergence:
    """The first record whose request the machine did not make.

    `actual` is what the machine asked for instead; when the machine raised rather than asking,
    `actual` is None and `raised` holds the exception (`traceback` its full text).
    """

    seq: int
    expected: Any
    actual: Any
    before: tuple[Record, ...]
    raised: str | None = None
    traceback: str | None = None

    @property
    def line(self) -> int:
        return self.seq + 1


@attrs.frozen(kw_only=True)
class ReplayReport:
    path: str
    header: TraceHeader
    matched: int  # syscalls whose request matched (the Exit record is not a syscall)
    exited: bool  # the trace ends with Exit, and the machine asked for Exit there too
    divergence: Divergence | None = None

    @property
    def ok(self) -> bool:
        return self.divergence is None

    def format(self) -> str:
        """The text `simnet replay` prints."""
        if self.divergence is None:
            end = (
                "the machine exited as recorded"
                if self.exited
                else "the trace ends before the machine's Exit (the recording was cut short)"
            )
            return f"{self.path}: {self.matched} syscalls matched; {end}"
        d = self.divergence
        if d.raised is not None:
            head = f"{self.path}:{d.line}: divergence at seq {d.seq}: the machine raised {d.raised}"
            lines = [head, f"  expected: {d.expected!r}"]
        else:
            head = f"{self.path}:{d.line}: divergence at seq {d.seq}: the machine asked for something else"
            lines = [head, f"  expected: {d.expected!r}", f"  actual:   {d.actual!r}"]
            fields = _differing_fields(d.expected, d.actual)
            if fields:
                lines.append(f"  differs in: {', '.join(fields)}")
        lines.append(
            f"  after {self.matched} matching syscalls; the records before it:"
            if d.before
            else "  (it is the first record)"
        )
        origin = self.header.clock_origin
        for rec in d.before:
            lines.append("    " + _format_record(rec, origin))
        return "\n".join(lines)


def _differing_fields(expected: Any, actual: Any) -> list[str]:
    if type(expected) is not type(actual) or not attrs.has(type(expected)):
        return []
    return [
        f.name for f in attrs.fields(type(expected)) if getattr(expected, f.name) != getattr(actual, f.name)
    ]


def _format_record(rec: Record, origin: int) -> str:
    if rec.result is None:
        return f"seq {rec.seq:<6} {rec.request!r}"
    at = (rec.result.now - origin) / 1e6
    return f"seq {rec.seq:<6} +{at:.3f}ms  {rec.request!r} -> {rec.result!r}"


def replay_exact(
    source: str | os.PathLike[str] | IO[bytes] | IO[str],
    machine_factory: MachineFactory | None = None,
    *,
    context: int = 5,
) -> ReplayReport:
    """Replay the trace at `source` through a fresh machine; see the module docstring.

    `machine_factory(header)` builds the machine (default: `machine_from_header`). Raises
    `TraceError` for a malformed trace, at the first bad line.
    """
    header, newline, lines = read_trace_lines(source)
    path = source_name(source)
    if machine_factory is None:
        machine = machine_from_header(header, path)
    else:
        try:
            machine = machine_factory(header)
        except (TypeError, ValueError, KeyError) as exc:
            # The factory could not take this header's configs: a trace from elsewhere.
            raise TraceError(
                path, 1, f"cannot build the machine from this header: {type(exc).__name__}: {exc}"
            ) from None
    # The last few lines, decoded only if a divergence is reported.
    recent: collections.deque[bytes | str] = collections.deque(maxlen=context)
    matched = 0
    exited = False

    def diverged(rec: Record, actual: Any, exc: BaseException | None = None) -> ReplayReport:
        raised = tb = None
        if exc is not None:
            raised = f"{type(exc).__name__}: {exc}"
            tb = "".join(traceback.format_exception(exc))
        first = rec.seq - len(recent)
        before = tuple(decode_record_line(raw, first + i, path) for i, raw in enumerate(recent))
        div = Divergence(
            seq=rec.seq, expected=rec.request, actual=actual, before=before, raised=raised, traceback=tb
        )
        return ReplayReport(path=path, header=header, matched=matched, exited=False, divergence=div)

    # The machine is stepped lazily -- only when a line is there to check its answer against --
    # so that a trace cut short ends the replay without asking the machine anything more. Each
    # line is first tried the quick way (`replay_result`: the request compared as the bytes the
    # writer would write, only the Result built), then the careful way, which decodes it all,
    # raises TraceError for a bad line, and compares values.
    try:
        result: Result | None = None
        start, step = machine.start, machine.step
        quick = replay_result
        remember = recent.append
        for seq, raw in enumerate(lines, start=1):
            try:
                actual = start() if seq == 1 else step(result)  # type: ignore[arg-type]
            except Exception as exc:  # the machine's failure is the finding, reported like a divergence
                return diverged(decode_record_line(raw, seq, path), None, exc)
            result = quick(raw, seq, actual) if raw[-1:] == newline else None
            if result is None:
                rec = decode_record_line(raw, seq, path)
                # `==` rather than `!=`: attrs' __ne__ is __eq__ plus a call.
                if not (actual == rec.request):  # noqa: SIM201
                    return diverged(rec, actual)
                if rec.result is None:
                    exited = True
                    refuse_after_exit(lines, path, seq)
                    break
                result = rec.result
            matched = seq  # records are numbered from 1 and checked to be consecutive
            remember(raw)
    finally:
        close = getattr(lines, "close", None)
        if close is not None:
            close()
    return ReplayReport(path=path, header=header, matched=matched, exited=exited)
