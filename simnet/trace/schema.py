"""The schema of a record's `"call"` and `"args"`, declared once: `CALLS`, built from the classes.

Every syscall class in `simnet.server.syscalls` is read once, here, into a `Call`: its name, its
fields in order and, for each field, a `Field` compiled from the field's type hint -- the careful
encoder and decoder (which say what is wrong), a description for messages, and the one JSON
type a well-formed value has (`int`, `str`, or `bytes` for a payload object) where there is one.
A syscall added to syscalls.py later is understood without touching this package; a hint the
compiler does not know falls back to the self-describing value codec (still lossless).

Everything that reads or writes `"args"` is driven by this table: `Call.encode` and
`Call.decode` (careful, used for odd records and for messages), `Call.quick_decode` (the
reader's hot path) and the quick line writer in `codec`. The quick functions are closures chosen
once per call by the shape of its fields; no source is generated. Each returns None as soon as
anything is unusual, and the careful function then runs and raises with a message; they accept
a subset of what the careful ones accept, and build the same values (tests/trace check both).
"""

from __future__ import annotations

import types
import typing
from collections.abc import Callable
from typing import Any, Union

import attrs

from simnet.server.syscalls import SYSCALL_TYPES
from simnet.trace.values import _Bad, _show, decode_bytes, decode_value, encode_bytes, encode_value

Encoder = Callable[[Any], Any]
Decoder = Callable[[Any], Any]


# --------------------------------------------------------------------------------------------
# Field codecs from type hints. Each checks the exact type (`type(v) is int`, not isinstance:
# a bool would be written as JSON `true`, and JSON `true` must not pass for 1), on both sides, so
# a request field that holds the wrong type is caught by the writer as the reader would catch it.
# --------------------------------------------------------------------------------------------


def _scalar(kind: type, python: str, json: str, desc: str) -> tuple[Encoder, Decoder, str]:
    def encode(v: Any) -> Any:
        if type(v) is not kind:
            raise TypeError(f"must be {python}, not {type(v).__name__} ({v!r})")
        return v

    def decode(j: Any) -> Any:
        if type(j) is not kind:
            raise _Bad(f"must be {json}, not {_show(j)}")
        return j

    return encode, decode, desc


def _payload() -> tuple[Encoder, Decoder, str]:
    def encode(v: Any) -> Any:
        if type(v) is not bytes:
            raise TypeError(f"must be bytes, not {type(v).__name__} ({v!r})")
        return encode_bytes(v)

    return encode, decode_bytes, "payload"


def _none() -> tuple[Encoder, Decoder, str]:
    def encode(v: Any) -> Any:
        if v is not None:
            raise TypeError(f"must be None, not {v!r}")
        return None

    def decode(j: Any) -> Any:
        if j is not None:
            raise _Bad(f"must be null, not {_show(j)}")
        return None

    return encode, decode, "null"


def _array_of(item: tuple[Encoder, Decoder, str]) -> tuple[Encoder, Decoder, str]:
    item_enc, item_dec, item_desc = item

    def encode(v: Any) -> Any:
        if type(v) is not tuple:
            raise TypeError(f"must be a tuple, not {type(v).__name__} ({v!r})")
        return [item_enc(x) for x in v]

    def decode(j: Any) -> Any:
        if type(j) is not list:
            raise _Bad(f"must be an array, not {_show(j)}")
        return tuple([item_dec(x) for x in j])

    return encode, decode, f"array of {item_desc}"


def _fixed(parts: list[tuple[Encoder, Decoder, str]]) -> tuple[Encoder, Decoder, str]:
    desc = f"array of {len(parts)} ({', '.join(p[2] for p in parts)})"

    def encode(v: Any) -> Any:
        if type(v) is not tuple or len(v) != len(parts):
            raise TypeError(f"must be a {len(parts)}-tuple, not {v!r}")
        return [p[0](x) for p, x in zip(parts, v)]

    def decode(j: Any) -> Any:
        if type(j) is not list or len(j) != len(parts):
            raise _Bad(f"must be an {desc}, not {_show(j)}")
        return tuple([p[1](x) for p, x in zip(parts, j)])

    return encode, decode, desc


def _union(alts: list[tuple[Encoder, Decoder, str]]) -> tuple[Encoder, Decoder, str]:
    desc = " or ".join(a[2] for a in alts)

    # The alternatives of a union at the boundary differ in JSON kind (int vs array), so the
    # first that accepts is the only one that can.
    def encode(v: Any) -> Any:
        for enc, _, _ in alts:
            try:
                return enc(v)
            except TypeError:
                pass
        raise TypeError(f"must be {desc}, not {type(v).__name__} ({v!r})")

    def decode(j: Any) -> Any:
        for _, dec, _ in alts:
            try:
                return dec(j)
            except _Bad:
                pass
        raise _Bad(f"must be {desc}, not {_show(j)}")

    return encode, decode, desc


def compile_hint(hint: Any) -> tuple[Encoder, Decoder, str]:
    """(encode, decode, description) for one type hint."""
    if hint is int:
        return _scalar(int, "int", "an integer", "integer")
    if hint is str:
        return _scalar(str, "str", "a string", "string")
    if hint is bool:
        return _scalar(bool, "bool", "true or false", "boolean")
    if hint is bytes:
        return _payload()
    if hint is type(None):
        return _none()
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            return _array_of(compile_hint(args[0]))
        return _fixed([compile_hint(a) for a in args])
    if origin is Union or isinstance(hint, types.UnionType):
        return _union([compile_hint(a) for a in args])
    return encode_value, decode_value, getattr(hint, "__name__", None) or str(hint)


# --------------------------------------------------------------------------------------------
# Building values. A frozen attrs __init__ takes keywords and stores each field through
# `object.__setattr__`; at three values per trace line (request, Result, Record) that was a
# third of the reader's time. A builder stores each field through its slot's own descriptor,
# positionally, 2-3x faster; the common arities are spelt out, since a loop over the slots
# costs as much as the stores.
# --------------------------------------------------------------------------------------------


def _bypassable(cls: type) -> bool:
    """Whether attrs' generated __init__ only stores its arguments (no validator, converter,
    default factory or post-init hook) in slots, so that storing them ourselves builds the same
    value."""
    return not hasattr(cls, "__attrs_post_init__") and all(
        f.validator is None
        and f.converter is None
        and isinstance(cls.__dict__.get(f.name), types.MemberDescriptorType)
        for f in attrs.fields(cls)
    )


def _slot_stores(cls: type) -> list[Callable[[Any, Any], None]] | None:
    """Each field's slot store (`store(obj, value)`), in order, or None unless `_bypassable`."""
    if not _bypassable(cls):
        return None
    return [cls.__dict__[f.name].__set__ for f in attrs.fields(cls)]


def builder(cls: type) -> Callable[..., Any]:
    """A positional constructor of a frozen attrs class: `builder(Recv)(5, 4096)`."""
    names = [f.name for f in attrs.fields(cls)]
    sets = _slot_stores(cls)
    if sets is None:
        return lambda *values: cls(**dict(zip(names, values)))
    new = object.__new__
    if not sets:
        return lambda: new(cls)
    if len(sets) == 1:
        (s0,) = sets

        def build1(v0: Any) -> Any:
            o: Any = new(cls)
            s0(o, v0)
            return o

        return build1
    if len(sets) == 2:
        s0, s1 = sets

        def build2(v0: Any, v1: Any) -> Any:
            o: Any = new(cls)
            s0(o, v0)
            s1(o, v1)
            return o

        return build2
    if len(sets) == 3:
        s0, s1, s2 = sets

        def build3(v0: Any, v1: Any, v2: Any) -> Any:
            o: Any = new(cls)
            s0(o, v0)
            s1(o, v1)
            s2(o, v2)
            return o

        return build3
    if len(sets) == 4:
        s0, s1, s2, s3 = sets

        def build4(v0: Any, v1: Any, v2: Any, v3: Any) -> Any:
            o: Any = new(cls)
            s0(o, v0)
            s1(o, v1)
            s2(o, v2)
            s3(o, v3)
            return o

        return build4

    def build(*values: Any) -> Any:
        o: Any = new(cls)
        for store, value in zip(sets, values):
            store(o, value)
        return o

    return build


def checked_getter(
    make: Callable[..., Any], names: tuple[str, ...], kinds: tuple[Any, ...]
) -> Callable[[Any], Any]:
    """`make(*names)` (attrgetter or itemgetter) as a tuple, or None unless each value's type is
    exactly its kind. The common arities are spelt out: a type test per field is about half the
    cost of comparing `tuple(map(type, values))` with `kinds`, and this runs for every line."""
    if not names:
        return lambda _: ()
    if len(names) == 1:
        (k0,) = kinds
        get1 = make(names[0])

        def check1(obj: Any) -> Any:
            v = get1(obj)
            return (v,) if type(v) is k0 else None

        return check1
    get = make(*names)
    if len(names) == 2:
        k0, k1 = kinds

        def check2(obj: Any) -> Any:
            v = get(obj)
            return v if type(v[0]) is k0 and type(v[1]) is k1 else None

        return check2
    if len(names) == 3:
        k0, k1, k2 = kinds

        def check3(obj: Any) -> Any:
            v = get(obj)
            return v if type(v[0]) is k0 and type(v[1]) is k1 and type(v[2]) is k2 else None

        return check3
    if len(names) == 4:
        k0, k1, k2, k3 = kinds

        def check4(obj: Any) -> Any:
            v = get(obj)
            return v if type(v[0]) is k0 and type(v[1]) is k1 and type(v[2]) is k2 and type(v[3]) is k3 else None

        return check4

    def check(obj: Any) -> Any:
        v = get(obj)
        return v if tuple(map(type, v)) == kinds else None

    return check


# --------------------------------------------------------------------------------------------
# The table.
# --------------------------------------------------------------------------------------------


@attrs.frozen
class Field:
    """One field of a syscall class, as the trace holds it in `"args"`."""

    name: str
    encode: Encoder  # careful: raises TypeError saying what is wrong
    decode: Decoder  # careful: raises _Bad saying what is wrong
    # int or str: the value is written as itself; bytes: as a payload object; None: any other
    # hint, which only the careful functions handle.
    plain: type | None


@attrs.frozen
class Call:
    """One syscall class and its `"args"`: the fields in order, and the codecs made from them."""

    name: str
    cls: type
    fields: tuple[Field, ...]
    names: frozenset[str]
    build: Callable[..., Any]
    # args -> request, or None if anything is unusual (then `decode` says what).
    quick_decode: Callable[[Any], Any]

    @classmethod
    def for_class(cls, name: str, syscall: type) -> Call:
        hints = typing.get_type_hints(syscall)
        fields = []
        for f in attrs.fields(syscall):
            hint = hints.get(f.name, Any)
            encode, decode, _ = compile_hint(hint)
            fields.append(Field(f.name, encode, decode, hint if hint in (int, str, bytes) else None))
        build = builder(syscall)
        return cls(
            name,
            syscall,
            tuple(fields),
            frozenset(f.name for f in fields),
            build,
            _quick_decoder(tuple(fields), syscall, build),
        )

    def encode(self, request: Any) -> dict[str, Any]:
        out = {}
        for field in self.fields:
            try:
                out[field.name] = field.encode(getattr(request, field.name))
            except TypeError as exc:
                raise TypeError(f"{request!r}: {field.name} {exc}") from None
        return out

    def decode(self, args: Any) -> Any:
        request = self.quick_decode(args)
        if request is not None:
            return request
        if type(args) is not dict:
            raise _Bad(f"'args' must be an object, not {_show(args)}")
        if args.keys() != self.names:
            missing = sorted(self.names - args.keys())
            if missing:
                raise _Bad(f"{self.name}: missing argument {missing[0]!r}")
            raise _Bad(f"{self.name}: unknown argument {sorted(args.keys() - self.names)[0]!r}")
        values = {}
        for field in self.fields:
            try:
                values[field.name] = field.decode(args[field.name])
            except _Bad as exc:
                raise _Bad(f"{self.name}: argument {field.name!r} {exc}") from None
        return self.cls(**values)


def _quick_decoder(fields: tuple[Field, ...], cls: type, build: Callable[..., Any]) -> Callable[[Any], Any]:
    """args -> request for the well-formed case, chosen once by the shape of the fields.

    Every trace line passes through here, and a Python call costs about as much as fetching and
    checking a field, so for the common shapes -- up to four int, str or payload fields, of a
    class whose fields we may store ourselves -- one closure per number of fields fetches each
    value by its name, checks its JSON type and stores it in a new object: one call per line
    (plus the decoding of a payload). Fetching with itemgetter, checking in a second closure and
    building in a third cost ~110 ns more per Recv or EpollWait and ~200 ns per Send, and made
    reading a trace 5% slower than the exec-generated decoders before 67cccd6."""
    n = len(fields)
    names = tuple(f.name for f in fields)
    stores = _slot_stores(cls)
    if stores is None or n > 4 or any(f.plain is None for f in fields):
        decoders = [(f.name, f.decode) for f in fields]

        def any_fields(a: Any) -> Any:  # SetSockOpt's int-or-pair, GetAddrInfo: rare, so a loop
            if type(a) is not dict or len(a) != n:
                return None
            try:
                return build(*[decode(a[name]) for name, decode in decoders])
            except (KeyError, _Bad):
                return None

        return any_fields
    # The JSON type of each field before decoding: a payload is an object, which its store
    # decodes on the way in (Send's data; decode_bytes raises _Bad for anything else).
    kinds = tuple(dict if f.plain is bytes else f.plain for f in fields)
    stores = [_decoding(store) if kind is dict else store for store, kind in zip(stores, kinds)]
    return _QUICK[n](cls, names, kinds, stores)


def _decoding(store: Callable[[Any, Any], None]) -> Callable[[Any, Any], None]:
    def store_bytes(o: Any, v: Any) -> None:
        store(o, decode_bytes(v))

    return store_bytes


# One per number of fields: the KeyError of a missing name and the _Bad of a bad payload both
# mean "unusual", so the careful decoder runs and says which. A dict of the right length that
# has every name has no other key.
Stores = list[Callable[[Any, Any], None]]


def _quick0(cls: type, names: tuple[str, ...], kinds: tuple[Any, ...], stores: Stores) -> Callable[[Any], Any]:
    new = object.__new__

    def quick0(a: Any) -> Any:  # Socket, EpollCreate
        if type(a) is not dict or a:
            return None
        return new(cls)

    return quick0


def _quick1(cls: type, names: tuple[str, ...], kinds: tuple[Any, ...], stores: Stores) -> Callable[[Any], Any]:
    new = object.__new__
    ((n0,), (k0,), (s0,)) = names, kinds, stores

    def quick1(a: Any) -> Any:  # Accept, Close
        if type(a) is not dict or len(a) != 1:
            return None
        try:
            v0 = a[n0]
            if type(v0) is not k0:
                return None
            o: Any = new(cls)
            s0(o, v0)
        except (KeyError, _Bad):
            return None
        return o

    return quick1


def _quick2(cls: type, names: tuple[str, ...], kinds: tuple[Any, ...], stores: Stores) -> Callable[[Any], Any]:
    new = object.__new__
    (n0, n1), (k0, k1), (s0, s1) = names, kinds, stores

    def quick2(a: Any) -> Any:  # Recv, Send
        if type(a) is not dict or len(a) != 2:
            return None
        try:
            v0 = a[n0]
            v1 = a[n1]
            if type(v0) is not k0 or type(v1) is not k1:
                return None
            o: Any = new(cls)
            s0(o, v0)
            s1(o, v1)
        except (KeyError, _Bad):
            return None
        return o

    return quick2


def _quick3(cls: type, names: tuple[str, ...], kinds: tuple[Any, ...], stores: Stores) -> Callable[[Any], Any]:
    new = object.__new__
    (n0, n1, n2), (k0, k1, k2), (s0, s1, s2) = names, kinds, stores

    def quick3(a: Any) -> Any:  # EpollWait, Bind
        if type(a) is not dict or len(a) != 3:
            return None
        try:
            v0 = a[n0]
            v1 = a[n1]
            v2 = a[n2]
            if type(v0) is not k0 or type(v1) is not k1 or type(v2) is not k2:
                return None
            o: Any = new(cls)
            s0(o, v0)
            s1(o, v1)
            s2(o, v2)
        except (KeyError, _Bad):
            return None
        return o

    return quick3


def _quick4(cls: type, names: tuple[str, ...], kinds: tuple[Any, ...], stores: Stores) -> Callable[[Any], Any]:
    new = object.__new__
    (n0, n1, n2, n3), (k0, k1, k2, k3), (s0, s1, s2, s3) = names, kinds, stores

    def quick4(a: Any) -> Any:  # EpollCtl
        if type(a) is not dict or len(a) != 4:
            return None
        try:
            v0 = a[n0]
            v1 = a[n1]
            v2 = a[n2]
            v3 = a[n3]
            if type(v0) is not k0 or type(v1) is not k1 or type(v2) is not k2 or type(v3) is not k3:
                return None
            o: Any = new(cls)
            s0(o, v0)
            s1(o, v1)
            s2(o, v2)
            s3(o, v3)
        except (KeyError, _Bad):
            return None
        return o

    return quick4


_QUICK = (_quick0, _quick1, _quick2, _quick3, _quick4)


CALLS: dict[str, Call] = {name: Call.for_class(name, cls) for name, cls in SYSCALL_TYPES.items()}
BY_CLASS: dict[type, Call] = {call.cls: call for call in CALLS.values()}
