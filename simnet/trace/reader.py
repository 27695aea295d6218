"""Streaming, strict reading of a trace.

Memory stays constant whatever the trace's length: lines are taken one at a time from the file
object and each decoded record is handed on before the next line is read. Nothing is skipped or
repaired: the first problem ends the iteration with a `TraceError` naming `path:line`, after
every good record before it has been yielded (so a replay or a `show` gets as far as the trace
is sound, and then says exactly where it is not).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from typing import IO, Any

import msgspec

from simnet.trace.codec import Record, TraceError, TraceHeader, fast_record_line, header_from_json, record_from_json
from simnet.trace.values import _Bad

# msgspec rather than the standard json module: parsing is most of the cost of reading a trace,
# and msgspec parses a record line about 4x faster (bench/replay_speed.py prints the figures).
# It also keeps integers of any size exact and rejects NaN, which is not JSON.
loads = msgspec.json.Decoder().decode


def source_name(source: Any) -> str:
    """How messages name a trace: its path, or the name of the file object handed in."""
    if isinstance(source, (str, os.PathLike)):
        return os.fspath(source)
    return str(getattr(source, "name", "<trace>"))


def _parse(raw: bytes | str, path: str, lineno: int) -> Any:
    """The JSON value on one line, or a TraceError saying why there is none."""
    # The writer ends every record with a newline in the same write, so a line without one is
    # the tail of a recording that was killed mid-write -- whatever its JSON looks like.
    if not (raw.endswith(b"\n") if isinstance(raw, bytes) else raw.endswith("\n")):
        raise TraceError(
            path, lineno, "truncated last line (no newline at the end): the recording was cut off mid-write"
        )
    try:
        return loads(raw)
    except msgspec.DecodeError as exc:
        if not raw.strip():
            raise TraceError(path, lineno, "empty line") from None
        raise TraceError(path, lineno, f"bad JSON: {_json_problem(exc)}") from None
    except RecursionError:
        raise TraceError(path, lineno, "bad JSON: nested too deeply") from None


def _json_problem(exc: Exception) -> str:
    # msgspec says "JSON is malformed: invalid character (byte 17)"; we already said "bad JSON",
    # and people count columns from 1.
    text = str(exc).removeprefix("JSON is malformed: ")
    match = re.fullmatch(r"(.*) \(byte (\d+)\)", text)
    return f"{match[1]} at column {int(match[2]) + 1}" if match else text


Source = str | os.PathLike[str] | IO[bytes] | IO[str]


def read_trace(source: Source) -> tuple[TraceHeader, Iterator[Record]]:
    """Read the header now (raising `TraceError` if it is bad) and return it with a lazy
    iterator of records, which raises `TraceError` at the first bad line.

    `source` is a path (opened here, closed when the iterator finishes or is closed) or a file
    object in binary or text mode (left open: it belongs to the caller).
    """
    header, newline, file, owned = _open(source)
    return header, _records(file, owned, source_name(source), newline)


def read_trace_lines(source: Source) -> tuple[TraceHeader, bytes | str, Iterator[Any]]:
    """As `read_trace`, but the records come as the lines they are, unchecked, with the newline
    each complete one ends with (bytes or str, as the source gives them): for a reader that
    decodes only what it needs (exact replay, `simnet.trace.codec.replay_result`).
    `decode_record_line` turns a line into its Record with every check `read_trace` makes, and
    `refuse_after_exit` makes the last."""
    header, newline, file, owned = _open(source)
    return header, newline, _lines(file, owned)


def _open(source: Source) -> tuple[TraceHeader, bytes | str, Any, bool]:
    path = source_name(source)
    if isinstance(source, (str, os.PathLike)):
        file: Any = open(source, "rb")
        owned = True
    else:
        file, owned = source, False
    try:
        first = file.readline()
        if not first:
            raise TraceError(path, 1, "empty file: no header line")
        try:
            header = header_from_json(_parse(first, path, 1))
        except _Bad as exc:
            raise TraceError(path, 1, str(exc)) from None
    except BaseException:
        if owned:
            file.close()
        raise
    return header, (b"\n" if isinstance(first, bytes) else "\n"), file, owned


def _records(file: Any, owned: bool, path: str, newline: bytes | str) -> Iterator[Record]:
    seq = 0
    fast = fast_record_line  # the hot loop: locals, and the careful path only for unusual lines
    try:
        # Iterating the file object reads one buffered line at a time: constant memory.
        for raw in file:
            seq += 1
            if raw[-1:] == newline:
                record = fast(raw, seq)
                if record is not None:
                    yield record
                    continue
            record = decode_record_line(raw, seq, path)
            yield record
            if record.result is None:  # Exit: the machine finished, so must the trace
                refuse_after_exit(file, path, seq)
                return
    finally:
        if owned:
            file.close()


def _lines(file: Any, owned: bool) -> Iterator[Any]:
    try:
        yield from file
    finally:
        if owned:
            file.close()


def decode_record_line(raw: bytes | str, seq: int, path: str) -> Record:
    """The `seq`-th record from its line, checked and explained: `TraceError` at `path`'s line
    `seq + 1` if it is not one."""
    try:
        return record_from_json(_parse(raw, path, seq + 1), seq)
    except _Bad as exc:
        raise TraceError(path, seq + 1, str(exc)) from None


def refuse_after_exit(lines: Iterator[Any], path: str, seq: int) -> None:
    """The trace must end at its Exit record, number `seq`: `TraceError` at any line after it."""
    for _ in lines:
        raise TraceError(path, seq + 2, "a record after Exit: the machine had already finished")
