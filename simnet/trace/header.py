"""Trace format v1, line 1: the header, which says what ran and how to rebuild it.

docs/trace-format.md ("Header") is the user-facing description; this module is its executable
form. A machine trace's header names the app and the configs that rebuild the server machine; a
program trace's (simnet.aio, `simnet record`) describes the program instead. The reader checks
the header before any record: a file that is not a simnet trace, or of another version, is
refused on its first line.
"""

from __future__ import annotations

import json
from typing import Any

import attrs

from simnet.trace.values import _Bad, _show

FORMAT = "simnet-trace"
VERSION = 1
BACKENDS = ("realnet", "simnet")
# Traces of a whole program rather than of the server machine (docs/trace-format.md, "Program
# traces"): "simnet.aio" an asyncio program simulated by simnet.aio.run(trace=...), "record" a
# program recorded live by `simnet record`. Their header describes the program, not an app.
PROGRAM_BACKENDS = ("simnet.aio", "record")


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


# The header is written once, by the standard library: it refuses NaN (not JSON) where msgspec
# would quietly write null, and configs are where a float might turn up.
_HEADER_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def header_line(header: TraceHeader) -> bytes:
    return _HEADER_ENCODER.encode(header.to_json()).encode("utf-8") + b"\n"
