"""Trace format v1: one record per line, read and written; the header and values re-exported.

docs/trace-format.md is the user-facing description; this package is its executable form, split
by concern: `values` (bytes, tuples and errno names in JSON), `schema` (each syscall's `"args"`,
declared once from the classes in simnet.server.syscalls), `header` (line 1) and this module,
the records. Two promises hold everything else up:

* **Lossless.** `decode(encode(x)) == x` for every request and every `Result`, down to the Python
  types: a tuple comes back a tuple (JSON has only arrays, so arrays always decode to tuples --
  no trace value is ever a list), bytes come back bytes, and an `int` is never confused with a
  `bool` (JSON `true` is not a number here, although Python would let `True == 1` through).
* **Whatever the writer accepts, the reader accepts.** The encoder checks the same types the
  decoder checks, so a buggy driver fails at once, naming the request, instead of writing a
  record that makes every later line of the trace unreadable.

Each direction has a careful path, which checks everything and says what is wrong, and a quick
path for the well-formed records that are nearly all of a trace, which returns None for anything
unusual so that the careful path runs. Both are driven by the one table, `schema.CALLS`, and must
give the same values and bytes (tests/trace/test_trace_fast_writer.py and test_trace_roundtrip.py).
"""

from __future__ import annotations

from collections.abc import Callable
from operator import attrgetter
from typing import Any

import attrs
import msgspec

from simnet.server.syscalls import Exit, Result
from simnet.trace.header import (
    BACKENDS,
    FORMAT,
    PROGRAM_BACKENDS,
    VERSION,
    TraceHeader,
    header_from_json,
    header_line,
)
from simnet.trace.schema import BY_CLASS, CALLS, Call, builder, checked_getter
from simnet.trace.values import (
    ERROR_JSON,
    KNOWN_ERRNOS,
    TraceError,
    _b2a_base64,
    _Bad,
    _encode_json,
    _show,
    check_errno,
    decode_bytes,
    decode_value,
    encode_bytes,
    encode_value,
    value_json,
)

__all__ = [
    "BACKENDS",
    "FORMAT",
    "PROGRAM_BACKENDS",
    "VERSION",
    "Record",
    "TraceError",
    "TraceHeader",
    "careful_record_line",
    "check_errno",
    "decode_bytes",
    "decode_request",
    "decode_value",
    "encode_bytes",
    "encode_record",
    "encode_request",
    "encode_value",
    "fast_record_line",
    "header_from_json",
    "header_line",
    "line_template",
    "payload_slot",
    "quick_record_line",
    "record_from_json",
    "record_line",
    "replay_result",
]


def encode_request(request: Any) -> tuple[str, dict[str, Any]]:
    """(call name, args object) of a request value."""
    call = BY_CLASS.get(type(request))
    if call is None:
        raise TypeError(f"{request!r} is not a syscall request (see simnet.server.syscalls)")
    return call.name, call.encode(request)


def decode_request(call: Any, args: Any) -> Any:
    if type(call) is not str:
        raise _Bad(f"'call' must be a string, not {_show(call)}")
    try:
        schema = CALLS[call]
    except KeyError:
        raise _Bad(f"unknown call {call!r}") from None
    return schema.decode(args)


@attrs.frozen(kw_only=True)
class Record:
    """One line after the header: the `seq`-th request and the result it was handed.

    `result` is None only for the final `Exit` record (the machine finished; nothing executed).
    `seq` counts from 1, so record `seq` sits on line `seq + 1` of the file.
    """

    seq: int
    request: Any
    result: Result | None
    # The simulated host that made the call, in a simnet.aio trace of several hosts; else None.
    host: str | None = None

    @property
    def line(self) -> int:
        return self.seq + 1


_new_record = builder(Record)
_new_result = builder(Result)
_RECORD_KEYS = frozenset({"seq", "t", "call", "args", "ret", "err", "shutdown", "host"})
_EXIT_KEYS = frozenset({"seq", "call", "args"})


def encode_record(seq: int, request: Any, result: Result | None, host: str | None = None) -> dict[str, Any]:
    """The JSON object of one record; raises TypeError if it could not be read back. `host`
    (a simulated host's name) comes last, so a writer can append it to a line as written."""
    call, args = encode_request(request)
    if result is None:
        if call != "Exit":
            raise TypeError(f"{request!r} needs a Result; only Exit is recorded without one")
        return {"seq": seq, "call": call, "args": args}
    if call == "Exit":
        raise TypeError("Exit is not executed, so it has no Result")
    if type(result) is not Result:
        raise TypeError(f"{result!r} is not a simnet.server.syscalls.Result")
    now = result.now
    if type(now) is not int:
        raise TypeError(f"{result!r}: now must be int nanoseconds, not {type(now).__name__}")
    obj: dict[str, Any] = {"seq": seq, "t": now, "call": call, "args": args}
    error = result.error
    # "ret" or "err", whichever the result has; both only for the odd result that carries a
    # value *and* an errno, so that even that round-trips.
    if error is None or result.value is not None:
        obj["ret"] = encode_value(result.value)
    if error is not None:
        obj["err"] = check_errno(error)
    if result.shutdown:
        if result.shutdown is not True:
            raise TypeError(f"{result!r}: shutdown must be a bool")
        obj["shutdown"] = True
    if host is not None:
        if type(host) is not str:
            raise TypeError(f"host must be a str, not {type(host).__name__} ({host!r})")
        obj["host"] = host
    return obj


class _Envelope(msgspec.Struct, forbid_unknown_fields=True):
    """A well-formed non-Exit record line, as msgspec parses and type-checks it in C."""

    seq: int
    t: int
    call: str
    args: dict[str, Any]
    ret: Any = msgspec.UNSET
    err: str | msgspec.UnsetType = msgspec.UNSET
    shutdown: bool = False
    host: str | None = None


_decode_envelope = msgspec.json.Decoder(_Envelope).decode
_UNSET = msgspec.UNSET
_QUICK_DECODERS = {name: call.quick_decode for name, call in CALLS.items()}


def fast_record_line(line: bytes | str, seq: int) -> Record | None:
    """The record on a well-formed line, with every check but none of the explaining; None if
    anything at all is unusual (the Exit record included), for `record_from_json` to judge.

    Every line of every trace passes through here, so it leans on msgspec to parse straight into
    a typed struct -- rejecting wrong types, unknown or missing fields, bools for ints, in C --
    and on the schema's quick decoder of each call. It accepts a subset of what `record_from_json`
    accepts, and builds the same values (tests/trace check both).
    """
    try:
        env = _decode_envelope(line)
    except (msgspec.DecodeError, RecursionError):
        return None
    if env.seq != seq:
        return None
    decode = _QUICK_DECODERS.get(env.call)
    request = decode(env.args) if decode is not None else None
    if request is None:
        return None
    result = _quick_result(env)
    if result is None:
        return None
    record: Record = _new_record(seq, request, result, env.host)
    return record


def _quick_result(env: _Envelope | _ReplayEnvelope) -> Result | None:
    """The Result of a parsed record line, or None if anything about it is unusual."""
    value = env.ret
    error: str | msgspec.UnsetType | None = env.err
    if error is _UNSET:
        if value is _UNSET:
            return None
        error = None
    elif error not in KNOWN_ERRNOS:
        return None
    if value is _UNSET:
        value = None
    elif value is not None and type(value) is not int:
        try:
            value = decode_value(value)
        except _Bad:
            return None
    result: Result = _new_result(value, error, env.t, env.shutdown)
    return result


class _ReplayEnvelope(msgspec.Struct, forbid_unknown_fields=True):
    """A record line as `replay_result` parses it: the args left as the bytes they are."""

    seq: int
    t: int
    call: str
    args: msgspec.Raw
    ret: Any = msgspec.UNSET
    err: str | msgspec.UnsetType = msgspec.UNSET
    shutdown: bool = False
    host: str | None = None


_decode_replay_envelope = msgspec.json.Decoder(_ReplayEnvelope).decode


def replay_result(line: bytes | str, seq: int, request: Any) -> Result | None:
    """The Result on `line` if it is a well-formed record `seq` of exactly `request`; None if it
    is anything else or anything unusual, for the careful path (`record_from_json`) to decode
    and compare.

    Exact replay's quick path: it builds only the Result the machine is handed, and no Record.
    A request of ints and strs is not decoded but written, as the quick writer would write it,
    and compared with the line's args as bytes: equal bytes decode to equal values, so a match
    is a match; a mismatch may still be equal values written differently, which the careful
    path decides. Any other request (a payload such as Send's, SetSockOpt's int-or-pair) is
    decoded with the line and compared as a value. `line` must end with its newline (the caller
    checks: a line without one is a truncated recording).
    """
    args_json = _ARGS_JSON.get(type(request))
    if args_json is None:
        return None
    name, write, decode = args_json
    env: _Envelope | _ReplayEnvelope
    try:
        # Other args are decoded along with the line and compared as values: for a payload,
        # cheaper than writing (escaping) the machine's and scanning the line's twice.
        env = _decode_replay_envelope(line) if write is not None else _decode_envelope(line)
    except (msgspec.DecodeError, RecursionError):
        return None
    if env.seq != seq or env.call != name or env.host is not None:
        return None
    if write is not None:
        args = write(request)
        # A Raw here (the replay envelope's), which is a buffer.
        if args is None or memoryview(env.args) != args:  # type: ignore[arg-type]
            return None
    else:
        decoded = decode(env.args)
        if decoded is None or not (decoded == request):  # noqa: SIM201 (attrs' __ne__ is __eq__ and a call)
            return None
    return _quick_result(env)


def record_from_json(obj: Any, seq: int) -> Record:
    """Decode and check the record that must carry sequence number `seq` (a parsed JSON
    value); raise `_Bad` saying what is wrong. `fast_record_line` is its quick twin."""
    if type(obj) is not dict:
        raise _Bad(f"a record must be a JSON object, not {_show(obj)}")
    got = obj.get("seq")
    if got != seq or type(got) is not int:
        if "seq" not in obj:
            raise _Bad("missing field 'seq'")
        raise _Bad(f"sequence number {_show(got)} where {seq} was expected")
    if "call" not in obj:
        raise _Bad("missing field 'call'")
    if "args" not in obj:
        raise _Bad("missing field 'args'")
    request = decode_request(obj["call"], obj["args"])
    if type(request) is Exit:
        if obj.keys() != _EXIT_KEYS:
            extra = sorted(obj.keys() - _EXIT_KEYS)
            raise _Bad(f"the Exit record has no result, but has {extra[0]!r}")
        return Record(seq=seq, request=request, result=None)
    if not obj.keys() <= _RECORD_KEYS:
        raise _Bad(f"unknown field {sorted(obj.keys() - _RECORD_KEYS)[0]!r}")
    if "t" not in obj:
        raise _Bad("missing field 't'")
    now = obj["t"]
    if type(now) is not int:
        raise _Bad(f"'t' must be an integer (ns), not {_show(now)}")
    if "err" in obj:
        error = obj["err"]
        try:
            check_errno(error)
        except TypeError:
            raise _Bad(f"'err' must be an errno name such as \"EAGAIN\", not {_show(error)}") from None
    elif "ret" in obj:
        error = None
    else:
        raise _Bad("missing field 'ret' (or 'err')")
    shutdown = obj.get("shutdown", False)
    if type(shutdown) is not bool:
        raise _Bad(f"'shutdown' must be true or false, not {_show(shutdown)}")
    value = obj.get("ret")
    if value is not None and type(value) is not int:
        value = decode_value(value)
    host = obj.get("host")
    if host is not None and type(host) is not str:
        raise _Bad(f"'host' must be a string (a simulated host's name), not {_show(host)}")
    return Record(
        seq=seq, request=request, result=Result(value=value, error=error, now=now, shutdown=shutdown), host=host
    )


def record_line(seq: int, request: Any, result: Result | None) -> bytes:
    """One complete trace line (newline included) for the `seq`-th record."""
    fast = _QUICK_LINES.get(type(request))
    if fast is not None:
        try:
            line = fast(seq, request, result)
        except ValueError:  # a lone surrogate, an int of 4,300+ digits: the careful path words it
            line = None
        if line is not None:
            return line
    return careful_record_line(seq, request, result)


def careful_record_line(seq: int, request: Any, result: Result | None) -> bytes:
    """`record_line` through `encode_record` and msgspec: every check, with its explanation.
    `quick_record_line` is its quick twin, and must write the very same bytes."""
    obj = encode_record(seq, request, result)
    try:
        return _encode_json(obj) + b"\n"
    except UnicodeEncodeError as exc:  # a lone surrogate in a str: not representable in UTF-8 JSON
        raise TypeError(f"{request!r}: a string is not valid Unicode ({exc.reason})") from None


# --------------------------------------------------------------------------------------------
# Writing a record the quick way. A recording realnet server writes ~4 lines per HTTP request,
# and `careful_record_line` spent ~1-1.5 us on each: building the args dict through the
# per-field codecs, `encode_value`'s dispatch, a dict per record, then msgspec walking it all
# again. That was most of what recording cost (P5 in docs/benchmarks.md).
#
# The quick way formats the line directly. It can match the careful path byte for byte because
# msgspec writes compact JSON (no spaces) in the dict's key order, so a line is the
# concatenation of its parts, and each part here is written exactly as msgspec writes it:
# integers with `%d` (decimal digits and a minus sign, as msgspec writes them; both refuse an
# int of over 4,300 digits with the same ValueError), strings and tuples of scalars by msgspec
# itself, payloads as `encode_bytes` then msgspec.
# It accepts only what it can vouch for -- exact ints, strs and bytes, the errno names this
# platform knows, tuples of scalars at most two deep -- and returns None for anything else
# (a bool or a float where an int belongs, bytes inside a tuple, an odd `shutdown`), so that
# the careful path runs and raises, when it must, with its usual message.
# --------------------------------------------------------------------------------------------


def _result_json(result: Result) -> bytes | None:
    """The end of a line after `"args":{...}`: ret and/or err, shutdown, `}` and the newline."""
    error = result.error
    value = result.value
    tail: bytes | None
    if error is None:
        ret = value_json(value)
        if ret is None:
            return None
        tail = b',"ret":' + ret
    else:
        tail = ERROR_JSON.get(error) if type(error) is str else None
        if tail is None:
            return None
        if value is not None:  # the odd result with a value *and* an errno: both are written
            ret = value_json(value)
            if ret is None:
                return None
            tail = b',"ret":' + ret + tail
    shutdown = result.shutdown
    if shutdown is False:
        return tail + b"}\n"
    if shutdown is True:
        return tail + b',"shutdown":true}\n'
    return None  # a truthy non-bool is refused, a falsy one left out: the careful path knows which


def _ascii_or_b64(data: bytes) -> bytes:
    """A payload's key and string, for a `{"%b":%b}` in a template: Send's data is hot."""
    if data.isascii():
        return b'ascii":' + _encode_json(data.decode("ascii"))
    return b'b64":"' + _b2a_base64(data, newline=False) + b'"'


QuickLine = Callable[[int, Any, Any], "bytes | None"]


Converters = list[tuple[int, Callable[[Any], bytes]]]


def _line_head(call: Call) -> tuple[bytes, Converters] | None:
    """A line of `call` up to its args' closing brace, as a `%` template (slots: seq, t, then
    each field), and which fields need converting first (index, how); None if a field's type is
    not one written directly (int, str or bytes)."""
    args = _args_template(call)
    if args is None:
        return None
    template, convert = args
    # A literal % in the call's name would be a format.
    head = b'{"seq":%d,"t":%d,"call":' + _encode_json(call.name).replace(b"%", b"%%")
    return head + b',"args":' + template, convert


def _args_template(call: Call) -> tuple[bytes, Converters] | None:
    """`call`'s args object as a `%` template (a slot per field) and its converters, as
    `_line_head` describes; None for Exit (it has no Result) or a field of another type."""
    if call.cls is Exit or any(f.plain is None for f in call.fields):
        return None
    fields = []
    convert: list[tuple[int, Callable[[Any], bytes]]] = []
    for i, field in enumerate(call.fields):
        if field.plain is int:
            fields.append(_encode_json(field.name) + b":%d")
        elif field.plain is str:
            fields.append(_encode_json(field.name) + b":%b")
            convert.append((i, _encode_json))
        else:
            fields.append(_encode_json(field.name) + b':{"%b}')
            convert.append((i, _ascii_or_b64))
    return b"{" + b",".join(fields) + b"}", convert


# The result slot of a `line_template`, by the shape of the result.
_TEMPLATE_TAILS = {
    "int": b',"ret":%d}\n',  # an int value
    "null": b',"ret":null}\n',  # None: no slot
    "json": b',"ret":%b}\n',  # any value, as `value_json` writes it
    "err": b"%b}\n",  # an errno alone, as ERROR_JSON writes it
}


def line_template(cls: type, ret: str) -> bytes:
    """The `%` template the quick writer fills for a record of syscall class `cls` whose result
    has the shape `ret` ("int", "null", "json" or "err", see `_TEMPLATE_TAILS`) and no shutdown:
    for a recorder that formats its hottest lines itself (simnet.aio.record_main), without a
    request or a Result to build. Slots, in order: seq and t (%d); each field: an int as %d, a
    str as its JSON (`_encode_json`), bytes as `payload_slot(data)`; then the result, unless
    "null": an int, the value's `value_json`, or `ERROR_JSON[name]`. Filled with values of
    exactly those types, it is the line `careful_record_line` writes (tests/trace check it)."""
    head = _line_head(BY_CLASS[cls])
    if head is None:
        raise TypeError(f"{cls.__name__} records are not written by template")
    return head[0] + _TEMPLATE_TAILS[ret]


payload_slot = _ascii_or_b64
"""A bytes field's slot in a `line_template`."""


def _quick_line(call: Call) -> QuickLine | None:
    """The quick writer of one call's records, or None if a field's type is not one it writes
    directly (int, str or bytes). The line is a `%` template per shape of result, with the
    call's keys and punctuation in it as msgspec writes them; the fields are checked with one
    comparison of their types, and only strs and payloads need converting."""
    parts = _line_head(call)
    if parts is None:
        return None
    head, convert = parts
    with_int = head + _TEMPLATE_TAILS["int"]
    with_null = head + _TEMPLATE_TAILS["null"]
    with_ascii = head + b',"ret":{"ascii":%b}}\n'
    with_ret = head + _TEMPLATE_TAILS["json"]
    with_err = head + _TEMPLATE_TAILS["err"]
    with_tail = head + b"%b"
    check = checked_getter(attrgetter, tuple(f.name for f in call.fields), tuple(f.plain for f in call.fields))

    def quick_line(seq: Any, request: Any, result: Any) -> bytes | None:
        if type(seq) is not int or type(result) is not Result:
            return None
        now = result.now
        if type(now) is not int:
            return None
        args = check(request)
        if args is None:
            return None
        if convert:
            args = list(args)
            for i, write in convert:
                args[i] = write(args[i])
        # Ahead of `_result_json`, which handles every result the quick way can, come inline
        # the shapes of nearly every hot record -- an int (Send), None (Close, EpollCtl), an
        # ASCII payload (Recv), a tuple (EpollWait, Accept), an errno alone (EAGAIN) -- each
        # with its own template, since a function call and a bytes concatenation cost as much
        # here as writing the whole line.
        if result.shutdown is False:
            value: Any = result.value
            error = result.error
            if error is None:
                kind = type(value)
                if kind is int:
                    return with_int % (seq, now, *args, value)
                if value is None:
                    return with_null % (seq, now, *args)
                if kind is bytes and value.isascii():
                    return with_ascii % (seq, now, *args, _encode_json(value.decode("ascii")))
                if kind is tuple:
                    ret = value_json(value)
                    return None if ret is None else with_ret % (seq, now, *args, ret)
            elif value is None and type(error) is str:
                err = ERROR_JSON.get(error)
                return None if err is None else with_err % (seq, now, *args, err)
        tail = _result_json(result)
        return None if tail is None else with_tail % (seq, now, *args, tail)

    return quick_line


_QUICK_LINES: dict[type, QuickLine] = {
    call.cls: line for call in CALLS.values() if (line := _quick_line(call)) is not None
}


def _args_writer(call: Call) -> Callable[[Any], bytes | None] | None:
    """The args object of a `call` request as the quick writer writes it, or None if a field's
    value is not exactly its type; None for a call whose records it does not write."""
    parts = _args_template(call)
    if parts is None:
        return None
    template, convert = parts
    check = checked_getter(attrgetter, tuple(f.name for f in call.fields), tuple(f.plain for f in call.fields))

    def write_args(request: Any) -> bytes | None:
        args = check(request)
        if args is None:
            return None
        if convert:
            args = list(args)
            for i, write in convert:
                args[i] = write(args[i])
        return template % tuple(args)

    return write_args


# How replay_result checks each call's args: written and compared as bytes when every field is
# an int or a str; otherwise (a payload, SetSockOpt's int-or-pair) decoded with the line and
# compared as values. Exit has no Result, so always takes the careful path.
_ARGS_JSON: dict[type, tuple[str, Callable[[Any], bytes | None] | None, Callable[[Any], Any]]] = {
    call.cls: (
        call.name,
        _args_writer(call) if all(f.plain is int or f.plain is str for f in call.fields) else None,
        call.quick_decode,
    )
    for call in CALLS.values()
    if call.cls is not Exit
}


def quick_record_line(seq: int, request: Any, result: Result | None) -> bytes | None:
    """The line `careful_record_line` would write, or None if anything is unusual (see above).
    `record_line` inlines this, to spare a call per record."""
    quick = _QUICK_LINES.get(type(request))
    if quick is None:
        return None
    try:
        return quick(seq, request, result)
    except ValueError:
        return None
