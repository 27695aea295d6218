"""Trace format v1: the JSON shape of the header, of one record, and of the values inside.

docs/trace-format.md is the user-facing description; this module is its executable form. Two
promises hold everything else up:

* **Lossless.** `decode(encode(x)) == x` for every request and every `Result`, down to the Python
  types: a tuple comes back a tuple (JSON has only arrays, so arrays always decode to tuples --
  no trace value is ever a list), bytes come back bytes, and an `int` is never confused with a
  `bool` (JSON `true` is not a number here, although Python would let `True == 1` through).
* **Whatever the writer accepts, the reader accepts.** The encoder checks the same types the
  decoder checks, so a buggy driver fails at once, naming the request, instead of writing a
  record that makes every later line of the trace unreadable.

Decoding failures raise `_Bad` with the problem only; the reader, which knows the path and line,
turns it into a `TraceError` (`path:line: problem`).
"""

from __future__ import annotations

import binascii
import errno
import json
import re
import types
import typing
from collections.abc import Callable
from typing import Any, Union

import attrs
import msgspec

from simnet.server.syscalls import SYSCALL_TYPES, Exit, Result

FORMAT = "simnet-trace"
VERSION = 1
BACKENDS = ("realnet", "simnet")
# Traces of a whole program rather than of the server machine (docs/trace-format.md, "Program
# traces"): "simnet.aio" an asyncio program simulated by simnet.aio.run(trace=...), "record" a
# program recorded live by `simnet record`. Their header describes the program, not an app.
PROGRAM_BACKENDS = ("simnet.aio", "record")


class TraceError(ValueError):
    """A trace file is malformed. `str(err)` is the one line a user sees: `path:line: problem`."""

    def __init__(self, path: str, line: int | None, problem: str) -> None:
        self.path = path
        self.line = line
        self.problem = problem
        where = f"{path}:{line}" if line is not None else path
        super().__init__(f"{where}: {problem}")


class _Bad(Exception):
    """What is wrong with one JSON value; the reader adds path and line."""


# --------------------------------------------------------------------------------------------
# Values: the self-describing codec for results (and the fallback for fields of unknown type).
#
# JSON has no bytes, and no tuples. Arrays are tuples (nothing at the syscall boundary is a
# list). Bytes are a one-key object, so they can never be mistaken for a host string:
#   {"ascii": "GET / HTTP/1.1\r\n"}  when every byte is < 0x80 -- readable for HTTP and echo
#                                    text, and JSON's own escapes (\r, \n, \u0000) keep it lossless;
#   {"b64": "3q2+7w=="}              otherwise -- 4/3 the size, where a latin-1 string would cost
#                                    up to 6 characters (\u00e9) per high byte.
# `bytes.isascii()` is a single C pass, so choosing costs next to nothing on the hot path.
# --------------------------------------------------------------------------------------------


def encode_bytes(data: bytes) -> dict[str, str]:
    if data.isascii():
        return {"ascii": data.decode("ascii")}
    return {"b64": binascii.b2a_base64(data, newline=False).decode("ascii")}


def decode_bytes(obj: Any) -> bytes:
    if type(obj) is dict and len(obj) == 1:
        if "ascii" in obj:
            text = obj["ascii"]
            if type(text) is str and text.isascii():
                return text.encode("ascii")
            raise _Bad(
                f"bad payload encoding: 'ascii' must be a string of characters below U+0080, got {_show(text)}"
            )
        if "b64" in obj:
            text = obj["b64"]
            if type(text) is str:
                try:
                    # strict_mode: a stray character or missing padding is corruption, not noise.
                    data = binascii.a2b_base64(text, strict_mode=True)
                except (binascii.Error, ValueError) as exc:
                    raise _Bad(f"bad payload encoding: 'b64' is not valid base64 ({exc})") from None
                # strict_mode still lets through extra '=' and non-zero padding bits, which mean
                # the text was not written by us; only the canonical spelling of `data` is sound.
                if binascii.b2a_base64(data, newline=False) != text.encode("ascii"):
                    raise _Bad("bad payload encoding: 'b64' is not in canonical form (stray padding or bits)")
                return data
            raise _Bad(f"bad payload encoding: 'b64' must be a string, got {_show(text)}")
    raise _Bad(f'bad payload encoding: expected {{"ascii": ...}} or {{"b64": ...}}, got {_show(obj)}')


def encode_value(value: Any) -> Any:
    kind = type(value)
    if value is None or kind is int or kind is str:
        return value
    if kind is bytes:
        return encode_bytes(value)
    if kind is tuple:
        return [encode_value(item) for item in value]
    raise TypeError(
        f"cannot record a {kind.__name__} ({value!r}): trace values are None, int, str, bytes or tuples"
    )


def decode_value(obj: Any) -> Any:
    kind = type(obj)
    if obj is None or kind is int or kind is str:
        return obj
    if kind is list:
        # Most items are ints (fds, masks, counts): test for those inline rather than recurse.
        return tuple([item if type(item) is int else decode_value(item) for item in obj])
    if kind is dict:
        return decode_bytes(obj)
    raise _Bad(f"{_show(obj)} is not a trace value (null, integer, string, array or payload object)")


def _show(obj: Any) -> str:
    """A JSON value as the user wrote it, cut short: error messages quote what was found."""
    text = json.dumps(obj)
    return text if len(text) <= 40 else text[:37] + "..."


# --------------------------------------------------------------------------------------------
# Typed fields of requests. Each field gets an encoder and a decoder compiled once from its type
# hint in syscalls.py, so a request field that holds the wrong type is caught on both sides, and
# a syscall added to syscalls.py later is understood without touching this file. A hint this
# compiler does not know falls back to the self-describing value codec above (still lossless).
# --------------------------------------------------------------------------------------------

Encoder = Callable[[Any], Any]
Decoder = Callable[[Any], Any]


def _type_name(hint: Any) -> str:
    return getattr(hint, "__name__", None) or str(hint)


def _compile(hint: Any) -> tuple[Encoder, Decoder, str]:
    """(encode, decode, description) for one type hint."""
    if hint is int:

        def enc_int(v: Any) -> Any:
            if type(v) is not int:  # not isinstance: a bool would be written as JSON `true`
                raise TypeError(f"must be int, not {type(v).__name__} ({v!r})")
            return v

        def dec_int(j: Any) -> Any:
            if type(j) is not int:
                raise _Bad(f"must be an integer, not {_show(j)}")
            return j

        return enc_int, dec_int, "integer"
    if hint is str:

        def enc_str(v: Any) -> Any:
            if type(v) is not str:
                raise TypeError(f"must be str, not {type(v).__name__} ({v!r})")
            return v

        def dec_str(j: Any) -> Any:
            if type(j) is not str:
                raise _Bad(f"must be a string, not {_show(j)}")
            return j

        return enc_str, dec_str, "string"
    if hint is bool:

        def enc_bool(v: Any) -> Any:
            if type(v) is not bool:
                raise TypeError(f"must be bool, not {type(v).__name__} ({v!r})")
            return v

        def dec_bool(j: Any) -> Any:
            if type(j) is not bool:
                raise _Bad(f"must be true or false, not {_show(j)}")
            return j

        return enc_bool, dec_bool, "boolean"
    if hint is bytes:

        def enc_bytes(v: Any) -> Any:
            if type(v) is not bytes:
                raise TypeError(f"must be bytes, not {type(v).__name__} ({v!r})")
            return encode_bytes(v)

        def dec_bytes(j: Any) -> Any:
            return decode_bytes(j)

        return enc_bytes, dec_bytes, "payload"
    if hint is type(None):

        def enc_none(v: Any) -> Any:
            if v is not None:
                raise TypeError(f"must be None, not {v!r}")
            return None

        def dec_none(j: Any) -> Any:
            if j is not None:
                raise _Bad(f"must be null, not {_show(j)}")
            return None

        return enc_none, dec_none, "null"
    origin = typing.get_origin(hint)
    if origin is tuple:
        args = typing.get_args(hint)
        if len(args) == 2 and args[1] is Ellipsis:
            item_enc, item_dec, item_desc = _compile(args[0])

            def enc_var(v: Any) -> Any:
                if type(v) is not tuple:
                    raise TypeError(f"must be a tuple, not {type(v).__name__} ({v!r})")
                return [item_enc(x) for x in v]

            def dec_var(j: Any) -> Any:
                if type(j) is not list:
                    raise _Bad(f"must be an array, not {_show(j)}")
                return tuple([item_dec(x) for x in j])

            return enc_var, dec_var, f"array of {item_desc}"
        parts = [_compile(a) for a in args]
        desc = f"array of {len(parts)} ({', '.join(p[2] for p in parts)})"

        def enc_fixed(v: Any) -> Any:
            if type(v) is not tuple or len(v) != len(parts):
                raise TypeError(f"must be a {len(parts)}-tuple, not {v!r}")
            return [p[0](x) for p, x in zip(parts, v)]

        def dec_fixed(j: Any) -> Any:
            if type(j) is not list or len(j) != len(parts):
                raise _Bad(f"must be an {desc}, not {_show(j)}")
            return tuple([p[1](x) for p, x in zip(parts, j)])

        return enc_fixed, dec_fixed, desc
    if origin is Union or isinstance(hint, types.UnionType):
        alts = [_compile(a) for a in typing.get_args(hint)]
        desc = " or ".join(a[2] for a in alts)

        # The alternatives of a union at the boundary differ in JSON kind (int vs array), so
        # the first that accepts is the only one that can.
        def enc_union(v: Any) -> Any:
            for enc, _, _ in alts:
                try:
                    return enc(v)
                except TypeError:
                    pass
            raise TypeError(f"must be {desc}, not {type(v).__name__} ({v!r})")

        def dec_union(j: Any) -> Any:
            for _, dec, _ in alts:
                try:
                    return dec(j)
                except _Bad:
                    pass
            raise _Bad(f"must be {desc}, not {_show(j)}")

        return enc_union, dec_union, desc
    return encode_value, decode_value, _type_name(hint)


def _bypassable(cls: type) -> bool:
    """Whether attrs' generated __init__ only stores its arguments (no validator, converter,
    default factory or post-init hook), so that storing them ourselves builds the same value."""
    return not hasattr(cls, "__attrs_post_init__") and all(
        f.validator is None and f.converter is None for f in attrs.fields(cls)
    )


def _builder(cls: type) -> Callable[..., Any]:
    """A positional constructor for a frozen attrs class, 2-3x faster than calling the class.

    A frozen attrs __init__ takes keywords and stores each field through `object.__setattr__`;
    at three values per trace line (request, Result, Record) that was a third of the reader's
    time. Here each field is stored through its slot's own descriptor. Where attrs would do more
    than store the arguments (see `_bypassable`), we call the class as usual.
    """
    names = [f.name for f in attrs.fields(cls)]
    args = ", ".join(f"v{i}" for i in range(len(names)))
    env: dict[str, Any] = {"cls": cls, "new": object.__new__, "sa": object.__setattr__}
    if not _bypassable(cls):
        body = ["    return cls(" + ", ".join(f"{n}=v{i}" for i, n in enumerate(names)) + ")"]
    else:
        body = ["    o = new(cls)"]
        for i, name in enumerate(names):
            slot = cls.__dict__.get(name)
            if isinstance(slot, types.MemberDescriptorType):
                env[f"set{i}"] = slot.__set__
                body.append(f"    set{i}(o, v{i})")
            else:
                body.append(f"    sa(o, {name!r}, v{i})")
        body.append("    return o")
    exec(f"def build({args}):\n" + "\n".join(body), env)  # names are attrs fields: identifiers
    return env["build"]  # type: ignore[no-any-return]


def _fast_codec(syscall: type, hints: dict[str, Any]) -> tuple[Callable[[Any], Any], Callable[[Any], Any]]:
    """Generated (encode, decode) for the common, well-formed case of one syscall class.

    Every trace line passes through here, and a generic per-field loop costs about as much as
    the JSON parsing itself (measured: bench/replay_speed.py). So, as attrs does for __init__,
    we write the straight-line function once per class. Each returns None as soon as anything
    is unusual; the careful `_CallCodec.encode/decode` then runs and raises with a message.
    They therefore accept a subset of what the careful path accepts, and never say why.
    """
    names = [f.name for f in attrs.fields(syscall)]
    env: dict[str, Any] = {
        "build": _builder(syscall),
        "encode_bytes": encode_bytes,
        "decode_bytes": decode_bytes,
        "_Bad": _Bad,
    }
    enc = ["def fast_encode(r):"]
    dec = [
        "def fast_decode(a):",
        f"    if type(a) is not dict or len(a) != {len(names)}:",
        "        return None",
    ]
    if names:
        dec += (
            ["    try:"]
            + [f"        v{i} = a[{n!r}]" for i, n in enumerate(names)]
            + ["    except KeyError:", "        return None"]
        )
    for i, name in enumerate(names):
        hint = hints.get(name, Any)
        enc.append(f"    v{i} = r.{name}")
        if hint is int or hint is str:
            # `type(v) is int`, not isinstance: JSON true must not pass for 1.
            enc.append(f"    if type(v{i}) is not {hint.__name__}: return None")
            dec.append(f"    if type(v{i}) is not {hint.__name__}: return None")
        elif hint is bytes:
            enc.append(f"    if type(v{i}) is not bytes: return None")
            enc.append(f"    v{i} = encode_bytes(v{i})")
            dec += [f"    try: v{i} = decode_bytes(v{i})", "    except _Bad: return None"]
        else:
            env[f"enc{i}"], env[f"dec{i}"], _ = _compile(hint)
            enc += [f"    try: v{i} = enc{i}(v{i})", "    except TypeError: return None"]
            dec += [f"    try: v{i} = dec{i}(v{i})", "    except _Bad: return None"]
    enc.append("    return {" + ", ".join(f"{n!r}: v{i}" for i, n in enumerate(names)) + "}")
    dec.append("    return build(" + ", ".join(f"v{i}" for i in range(len(names))) + ")")
    exec("\n".join(enc) + "\n" + "\n".join(dec), env)  # names are attrs fields: identifiers
    return env["fast_encode"], env["fast_decode"]


@attrs.frozen
class _CallCodec:
    """How one syscall class maps to `"args"`: its field names and a codec for each."""

    cls: type
    names: frozenset[str]
    fields: tuple[tuple[str, Encoder, Decoder], ...]
    fast_encode: Callable[[Any], Any]
    fast_decode: Callable[[Any], Any]

    @classmethod
    def for_class(cls, syscall: type) -> _CallCodec:
        hints = typing.get_type_hints(syscall)
        fields = []
        for f in attrs.fields(syscall):
            enc, dec, _ = _compile(hints.get(f.name, Any))
            fields.append((f.name, enc, dec))
        return cls(syscall, frozenset(n for n, _, _ in fields), tuple(fields), *_fast_codec(syscall, hints))

    def encode(self, request: Any) -> dict[str, Any]:
        fast: dict[str, Any] | None = self.fast_encode(request)
        if fast is not None:
            return fast
        out = {}
        for name, enc, _ in self.fields:
            try:
                out[name] = enc(getattr(request, name))
            except TypeError as exc:
                raise TypeError(f"{request!r}: {name} {exc}") from None
        return out

    def decode(self, args: Any) -> Any:
        request = self.fast_decode(args)
        if request is not None:
            return request
        if type(args) is not dict:
            raise _Bad(f"'args' must be an object, not {_show(args)}")
        if args.keys() != self.names:
            missing = sorted(self.names - args.keys())
            if missing:
                raise _Bad(f"{self.cls.__name__}: missing argument {missing[0]!r}")
            raise _Bad(f"{self.cls.__name__}: unknown argument {sorted(args.keys() - self.names)[0]!r}")
        values = {}
        for name, _, dec in self.fields:
            try:
                values[name] = dec(args[name])
            except _Bad as exc:
                raise _Bad(f"{self.cls.__name__}: argument {name!r} {exc}") from None
        return self.cls(**values)


_CODECS: dict[str, _CallCodec] = {name: _CallCodec.for_class(cls) for name, cls in SYSCALL_TYPES.items()}
_CODEC_BY_CLASS: dict[type, tuple[str, _CallCodec]] = {c.cls: (name, c) for name, c in _CODECS.items()}
_FAST_DECODERS: dict[str, Callable[[Any], Any]] = {name: c.fast_decode for name, c in _CODECS.items()}


def encode_request(request: Any) -> tuple[str, dict[str, Any]]:
    """(call name, args object) of a request value."""
    try:
        name, codec = _CODEC_BY_CLASS[type(request)]
    except KeyError:
        raise TypeError(f"{request!r} is not a syscall request (see simnet.server.syscalls)") from None
    return name, codec.encode(request)


def decode_request(call: Any, args: Any) -> Any:
    if type(call) is not str:
        raise _Bad(f"'call' must be a string, not {_show(call)}")
    try:
        codec = _CODECS[call]
    except KeyError:
        raise _Bad(f"unknown call {call!r}") from None
    return codec.decode(args)


# --------------------------------------------------------------------------------------------
# Results. An errno travels as its name ("EAGAIN"), which is what Result holds; the names are
# the same on every Linux, the numbers are not the point of a readable trace.
# --------------------------------------------------------------------------------------------

_ERRNO_NAME = re.compile(r"E[A-Z0-9]+\Z")


def check_errno(name: Any) -> str:
    if type(name) is not str or not _ERRNO_NAME.match(name):
        raise TypeError(f"an error must be an errno name such as 'EAGAIN', not {name!r}")
    return name


# --------------------------------------------------------------------------------------------
# Header and records.
# --------------------------------------------------------------------------------------------


def _json_object(value: Any, what: str) -> dict[str, Any]:
    """A config given as a dict or an attrs instance, as a JSON object (checked to serialise)."""
    if attrs.has(type(value)):
        value = attrs.asdict(value)
    if not isinstance(value, dict):
        raise TypeError(f"{what} must be a dict or an attrs instance, not {type(value).__name__}")
    try:
        # A round trip through JSON now, so the header in memory is exactly what a reader sees.
        plain: dict[str, Any] = json.loads(json.dumps(value, allow_nan=False))
        return plain
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{what} is not plain JSON: {exc}") from None


@attrs.frozen(kw_only=True)
class TraceHeader:
    """Line 1 of a trace: everything needed to rebuild the machine that made it.

    `clock_origin` is the backend clock (`Result.now`, integer ns) when recording began: 0 in
    simnet, a monotonic reading in realnet. Record times stay absolute so that replay hands the
    machine exactly the `now` it saw; `simnet show` prints them relative to this origin.
    The dicts are plain JSON; build a header with `TraceHeader.create` to have configs given as
    attrs instances converted and checked.
    """

    backend: str
    # A machine trace's app and configs; empty in a program trace, which has `program` instead.
    app: str = ""
    app_config: dict[str, Any] = attrs.field(factory=dict)
    server_config: dict[str, Any] = attrs.field(factory=dict)
    seed: int | None = None
    clock_origin: int = 0
    meta: dict[str, Any] = attrs.field(factory=dict)
    # A program trace's program: {"argv": [...], "python": "3.11.9", ...}; None for the machine.
    program: dict[str, Any] | None = None

    @property
    def is_program(self) -> bool:
        """A trace of a whole program (simnet.aio or `simnet record`), not of the server machine."""
        return self.program is not None

    @classmethod
    def for_program(
        cls,
        *,
        backend: str,
        program: Any,
        seed: int | None = None,
        clock_origin: int = 0,
        meta: Any = None,
    ) -> TraceHeader:
        """The header of a program trace: `program` says what ran (argv, python version)."""
        header = cls(
            backend=backend,
            program=_json_object(program, "program"),
            seed=seed,
            clock_origin=clock_origin,
            meta=_json_object(meta if meta is not None else {}, "meta"),
        )
        header.to_json()
        return header

    @classmethod
    def create(
        cls,
        *,
        backend: str,
        app: str,
        app_config: Any = None,
        server_config: Any,
        seed: int | None = None,
        clock_origin: int = 0,
        meta: Any = None,
    ) -> TraceHeader:
        header = cls(
            backend=backend,
            app=app,
            app_config=_json_object(app_config if app_config is not None else {}, "app_config"),
            server_config=_json_object(server_config, "server_config"),
            seed=seed,
            clock_origin=clock_origin,
            meta=_json_object(meta if meta is not None else {}, "meta"),
        )
        header.to_json()  # checks the scalar fields the same way the reader will
        return header

    def to_json(self) -> dict[str, Any]:
        obj: dict[str, Any]
        if self.program is not None:
            obj = {
                "format": FORMAT,
                "version": VERSION,
                "backend": self.backend,
                "program": self.program,
                "seed": self.seed,
                "clock_origin": self.clock_origin,
                "meta": self.meta,
            }
            try:
                header_from_json(obj)
            except _Bad as exc:
                raise TypeError(f"bad trace header: {exc}") from None
            return obj
        obj = {
            "format": FORMAT,
            "version": VERSION,
            "backend": self.backend,
            "app": self.app,
            "app_config": self.app_config,
            "server_config": self.server_config,
            "seed": self.seed,
            "clock_origin": self.clock_origin,
            "meta": self.meta,
        }
        try:
            header_from_json(obj)
        except _Bad as exc:
            raise TypeError(f"bad trace header: {exc}") from None
        return obj


_HEADER_REQUIRED = (
    "format",
    "version",
    "backend",
    "app",
    "app_config",
    "server_config",
    "seed",
    "clock_origin",
)
_HEADER_KEYS = frozenset(_HEADER_REQUIRED) | {"meta"}
_PROGRAM_HEADER_REQUIRED = ("format", "version", "backend", "program", "seed", "clock_origin")
_PROGRAM_HEADER_KEYS = frozenset(_PROGRAM_HEADER_REQUIRED) | {"meta"}


def header_from_json(obj: Any) -> TraceHeader:
    if type(obj) is not dict:
        raise _Bad(f"the header must be a JSON object, not {_show(obj)}")
    # Identify the file before anything else: a user who hands us some other JSON Lines file
    # should hear "not a simnet trace", not "missing field 'app'".
    if obj.get("format") != FORMAT:
        raise _Bad(
            f"not a simnet trace: the header's 'format' is {_show(obj.get('format'))}, expected {FORMAT!r}"
        )
    version = obj.get("version")
    if type(version) is not int or version != VERSION:
        raise _Bad(f"unsupported trace version {_show(version)}: this simnet reads version {VERSION}")
    if obj.get("backend") in PROGRAM_BACKENDS:
        return _program_header_from_json(obj)
    for key in _HEADER_REQUIRED:
        if key not in obj:
            raise _Bad(f"header: missing field {key!r}")
    unknown = sorted(obj.keys() - _HEADER_KEYS)
    if unknown:
        raise _Bad(f"header: unknown field {unknown[0]!r}")
    if obj["backend"] not in BACKENDS:
        raise _Bad(f"header: 'backend' must be one of {', '.join(BACKENDS)}, not {_show(obj['backend'])}")
    if type(obj["app"]) is not str or not obj["app"]:
        raise _Bad(f"header: 'app' must be a non-empty string, not {_show(obj['app'])}")
    for key in ("app_config", "server_config", "meta"):
        if type(obj.get(key, {})) is not dict:
            raise _Bad(f"header: {key!r} must be an object, not {_show(obj[key])}")
    if obj["seed"] is not None and type(obj["seed"]) is not int:
        raise _Bad(f"header: 'seed' must be an integer or null, not {_show(obj['seed'])}")
    if type(obj["clock_origin"]) is not int:
        raise _Bad(f"header: 'clock_origin' must be an integer (ns), not {_show(obj['clock_origin'])}")
    return TraceHeader(
        backend=obj["backend"],
        app=obj["app"],
        app_config=obj["app_config"],
        server_config=obj["server_config"],
        seed=obj["seed"],
        clock_origin=obj["clock_origin"],
        meta=obj.get("meta", {}),
    )


def _program_header_from_json(obj: dict[str, Any]) -> TraceHeader:
    for key in _PROGRAM_HEADER_REQUIRED:
        if key not in obj:
            raise _Bad(f"header: missing field {key!r}")
    unknown = sorted(obj.keys() - _PROGRAM_HEADER_KEYS)
    if unknown:
        raise _Bad(f"header: unknown field {unknown[0]!r} (a {obj['backend']} trace describes a program)")
    program = obj["program"]
    if type(program) is not dict:
        raise _Bad(f"header: 'program' must be an object, not {_show(program)}")
    argv = program.get("argv")
    if type(argv) is not list or not all(type(a) is str for a in argv):
        raise _Bad(f"header: 'program' must have 'argv', an array of strings, not {_show(argv)}")
    if type(obj.get("meta", {})) is not dict:
        raise _Bad(f"header: 'meta' must be an object, not {_show(obj['meta'])}")
    if obj["seed"] is not None and type(obj["seed"]) is not int:
        raise _Bad(f"header: 'seed' must be an integer or null, not {_show(obj['seed'])}")
    if type(obj["clock_origin"]) is not int:
        raise _Bad(f"header: 'clock_origin' must be an integer (ns), not {_show(obj['clock_origin'])}")
    return TraceHeader(
        backend=obj["backend"],
        program=program,
        seed=obj["seed"],
        clock_origin=obj["clock_origin"],
        meta=obj.get("meta", {}),
    )


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


_new_record = _builder(Record)
_new_result = _builder(Result)
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


# Every errno name this platform knows: a set lookup on the hot path instead of the regex.
# Names from elsewhere still pass, through the careful path's regex.
_KNOWN_ERRNOS = frozenset(errno.errorcode.values())
_decode_envelope = msgspec.json.Decoder(_Envelope).decode
_UNSET = msgspec.UNSET


def fast_record_line(line: bytes | str, seq: int) -> Record | None:
    """The record on a well-formed line, with every check but none of the explaining; None if
    anything at all is unusual (the Exit record included), for `record_from_json` to judge.

    Every line of every trace passes through here, so it leans on msgspec to parse straight into
    a typed struct -- rejecting wrong types, unknown or missing fields, bools for ints, in C --
    and on the generated per-call decoders. It accepts a subset of what `record_from_json`
    accepts, and builds the same values (tests/trace check both).
    """
    try:
        env = _decode_envelope(line)
    except (msgspec.DecodeError, RecursionError):
        return None
    if env.seq != seq:
        return None
    decode = _FAST_DECODERS.get(env.call)
    request = decode(env.args) if decode is not None else None
    if request is None:
        return None
    value = env.ret
    error: str | msgspec.UnsetType | None = env.err
    if error is _UNSET:
        if value is _UNSET:
            return None
        error = None
    elif error not in _KNOWN_ERRNOS:
        return None
    if value is _UNSET:
        value = None
    elif value is not None and type(value) is not int:
        try:
            value = decode_value(value)
        except _Bad:
            return None
    record: Record = _new_record(seq, request, _new_result(value, error, env.t, env.shutdown), env.host)
    return record


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


# The header is written once, by the standard library: it refuses NaN (not JSON) where msgspec
# would quietly write null, and configs are where a float might turn up.
_HEADER_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def header_line(header: TraceHeader) -> bytes:
    return _HEADER_ENCODER.encode(header.to_json()).encode("utf-8") + b"\n"


# Records: compact (the file is for machines first; `simnet show` is for people) and written by
# msgspec, about 10x faster than the json module on a record (bench/replay_speed.py). Records
# hold no floats, so the NaN caveat above does not arise.
_encode_json = msgspec.json.Encoder().encode


def record_line(seq: int, request: Any, result: Result | None) -> bytes:
    """One complete trace line (newline included) for the `seq`-th record."""
    fast = _FAST_LINES.get(type(request))
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
# tests/trace/test_trace_fast_writer.py holds the two paths to the same bytes.
# --------------------------------------------------------------------------------------------

_b2a_base64 = binascii.b2a_base64

# `,"err":"EAGAIN"` for every errno name this platform knows and `check_errno` accepts; other
# names (a trace replayed from elsewhere, a typo that should fail) take the careful path.
_ERROR_JSON: dict[str, bytes] = {
    name: b',"err":' + _encode_json(name) for name in errno.errorcode.values() if _ERRNO_NAME.match(name)
}


def _payload_json(data: bytes) -> bytes:
    """`encode_bytes(data)` as msgspec writes it."""
    if data.isascii():
        # msgspec itself escapes the text (\r, \n, \", \u0000): the careful path's escapes, exactly.
        return b'{"ascii":' + _encode_json(data.decode("ascii")) + b"}"
    # Base64 needs no escaping in JSON.
    return b'{"b64":"' + _b2a_base64(data, newline=False) + b'"}'


def _value_json(value: Any) -> bytes | None:
    """`encode_value(value)` as msgspec writes it, for the values syscalls return; else None."""
    kind = type(value)
    if kind is int:
        return b"%d" % value
    if value is None:
        return b"null"
    if kind is bytes:
        return _payload_json(value)
    if kind is tuple:
        # EpollWait's ((fd, mask), ...) and Accept's (fd, (host, port)): msgspec writes tuples of
        # these scalars as `encode_value` would have them written. Not bytes (msgspec would write
        # bare base64, not a payload object), nor bools or floats (`encode_value` refuses them).
        for item in value:
            kind = type(item)
            if kind is tuple:
                for scalar in item:
                    kind = type(scalar)
                    if kind is not int and kind is not str and scalar is not None:
                        return None
            elif kind is not int and kind is not str and item is not None:
                return None
        return _encode_json(value)
    if kind is str:
        return _encode_json(value)
    return None


def _result_json(result: Result) -> bytes | None:
    """The end of a line after `"args":{...}`: ret and/or err, shutdown, `}` and the newline."""
    error = result.error
    value = result.value
    tail: bytes | None
    if error is None:
        ret = _value_json(value)
        if ret is None:
            return None
        tail = b',"ret":' + ret
    else:
        tail = _ERROR_JSON.get(error) if type(error) is str else None
        if tail is None:
            return None
        if value is not None:  # the odd result with a value *and* an errno: both are written
            ret = _value_json(value)
            if ret is None:
                return None
            tail = b',"ret":' + ret + tail
    shutdown = result.shutdown
    if shutdown is False:
        return tail + b"}\n"
    if shutdown is True:
        return tail + b',"shutdown":true}\n'
    return None  # a truthy non-bool is refused, a falsy one left out: the careful path knows which


FastLine = Callable[[int, Any, Any], bytes | None]


# The body of every generated quick writer. `{checks}` loads and type-checks the request's
# fields into v0, v1, ...; `{args}` is them as format arguments. Ahead of `_result_json`, which
# handles every result the quick way can, come inline the shapes of nearly every hot record --
# an int (Send), None (Close, EpollCtl), an ASCII payload (Recv), a tuple (EpollWait, Accept),
# an errno alone (EAGAIN) -- each with its own template, since a function call and a bytes
# concatenation cost as much here as writing the whole line.
_FAST_LINE_SOURCE = """
def fast_line(seq, r, result):
    if type(seq) is not int or type(result) is not Result:
        return None
    now = result.now
    if type(now) is not int:
        return None
{checks}
    if result.shutdown is False:
        value = result.value
        error = result.error
        if error is None:
            kind = type(value)
            if kind is int:
                return with_int % (seq, now{args}, value)
            if value is None:
                return with_null % (seq, now{args})
            if kind is bytes and value.isascii():
                return with_ascii % (seq, now{args}, encode_json(value.decode("ascii")))
            if kind is tuple:
                ret = value_json(value)
                return None if ret is None else with_ret % (seq, now{args}, ret)
        elif value is None and type(error) is str:
            err = error_json.get(error)
            return None if err is None else with_err % (seq, now{args}, err)
    tail = result_json(result)
    return None if tail is None else with_tail % (seq, now{args}, tail)
"""


def _fast_line(call: str, syscall: type, hints: dict[str, Any]) -> FastLine | None:
    """Generated quick writer of one syscall class's records, or None if a field's type is not
    one it writes directly (int, str or bytes); as with `_fast_codec`, the straight-line
    function is written once per class, since a loop over the fields costs as much as the rest."""
    names = [f.name for f in attrs.fields(syscall)]
    if any(hints.get(name) not in (int, str, bytes) for name in names):
        return None
    checks = []
    fields = []
    values = []  # the format arguments of the fields, in order
    for i, name in enumerate(names):
        hint = hints[name]
        checks.append(f"    v{i} = r.{name}")
        checks.append(f"    if type(v{i}) is not {hint.__name__}:")
        checks.append("        return None")
        if hint is int:
            fields.append(_encode_json(name) + b":%d")
        elif hint is str:
            checks.append(f"    v{i} = encode_json(v{i})")
            fields.append(_encode_json(name) + b":%b")
        else:  # `_payload_json` inline, its one-key object in the template: Send's data is hot
            checks += [
                f"    if v{i}.isascii():",
                f"        k{i} = b'ascii'",
                f"        v{i} = encode_json(v{i}.decode('ascii'))",
                "    else:",
                f"        k{i} = b'b64'",
                f"        v{i} = b'\"' + b2a_base64(v{i}, newline=False) + b'\"'",
            ]
            fields.append(_encode_json(name) + b':{"%b":%b}')
            values.append(f", k{i}, v{i}")
            continue
        values.append(f", v{i}")
    # Keys, call name and punctuation as msgspec writes them; a literal % would be a format.
    call_json = _encode_json(call).replace(b"%", b"%%")
    head = b'{"seq":%d,"t":%d,"call":' + call_json + b',"args":{' + b",".join(fields) + b"}"
    env: dict[str, Any] = {
        "Result": Result,
        "encode_json": _encode_json,
        "b2a_base64": _b2a_base64,
        "value_json": _value_json,
        "result_json": _result_json,
        "error_json": _ERROR_JSON,
        "with_int": head + b',"ret":%d}\n',
        "with_null": head + b',"ret":null}\n',
        "with_ascii": head + b',"ret":{"ascii":%b}}\n',
        "with_ret": head + b',"ret":%b}\n',
        "with_err": head + b"%b}\n",
        "with_tail": head + b"%b",
    }
    source = _FAST_LINE_SOURCE.replace("{checks}", "\n".join(checks)).replace("{args}", "".join(values))
    exec(source, env)  # names are attrs fields: identifiers
    return env["fast_line"]  # type: ignore[no-any-return]


def _fast_lines() -> dict[type, FastLine]:
    lines = {}
    for call, codec in _CODECS.items():
        fast = _fast_line(call, codec.cls, typing.get_type_hints(codec.cls))
        if fast is not None and codec.cls is not Exit:  # Exit has no Result: the careful path's
            lines[codec.cls] = fast
    return lines


_FAST_LINES = _fast_lines()


def quick_record_line(seq: int, request: Any, result: Result | None) -> bytes | None:
    """The line `careful_record_line` would write, or None if anything is unusual (see above).
    `record_line` inlines this, to spare a call per record."""
    fast = _FAST_LINES.get(type(request))
    if fast is None:
        return None
    try:
        return fast(seq, request, result)
    except ValueError:
        return None
