"""Trace values: how bytes, tuples and errno names travel in JSON, both ways.

JSON has no bytes, and no tuples. Arrays are tuples (nothing at the syscall boundary is a list).
Bytes are a one-key object, so they can never be mistaken for a host string:

* `{"ascii": "GET / HTTP/1.1\\r\\n"}` when every byte is < 0x80 -- readable for HTTP and echo
  text, and JSON's own escapes (`\\r`, `\\n`, `\\u0000`) keep it lossless;
* `{"b64": "3q2+7w=="}` otherwise -- 4/3 the size, where a latin-1 string would cost up to 6
  characters (`\\u00e9`) per high byte.

`bytes.isascii()` is a single C pass, so choosing costs next to nothing on the hot path. This
module has the self-describing codec (results, and fields of a type the schema does not know),
the errno names, and the same values written straight to JSON bytes for the quick line writer,
exactly as msgspec writes what `encode_value` returns. Decoding failures raise `_Bad` with the
problem only; the reader, which knows the path and line, turns it into a `TraceError`.
"""

from __future__ import annotations

import binascii
import errno
import json
import re
from typing import Any

import msgspec


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


def _show(obj: Any) -> str:
    """A JSON value as the user wrote it, cut short: error messages quote what was found."""
    text = json.dumps(obj)
    return text if len(text) <= 40 else text[:37] + "..."


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
        # Most items are ints (fds, counts) or pairs of ints (epoll events): those inline, the
        # rest by recursion. A loop, not a comprehension: 3.11 builds a function for each.
        items: list[Any] = []
        append = items.append
        for item in obj:
            item_kind = type(item)
            if item_kind is int:
                append(item)
            elif item_kind is list and len(item) == 2 and type(item[0]) is int and type(item[1]) is int:
                append((item[0], item[1]))
            else:
                append(decode_value(item))
        return tuple(items)
    if kind is dict:
        return decode_bytes(obj)
    raise _Bad(f"{_show(obj)} is not a trace value (null, integer, string, array or payload object)")


# An errno travels as its name ("EAGAIN"), which is what Result holds; the names are the same on
# every Linux, the numbers are not the point of a readable trace.
_ERRNO_NAME = re.compile(r"E[A-Z0-9]+\Z")


def check_errno(name: Any) -> str:
    if type(name) is not str or not _ERRNO_NAME.match(name):
        raise TypeError(f"an error must be an errno name such as 'EAGAIN', not {name!r}")
    return name


# Every errno name this platform knows: a set lookup on the hot path instead of the regex.
# Names from elsewhere still pass, through the careful path's regex.
KNOWN_ERRNOS = frozenset(errno.errorcode.values())

# Records are compact (the file is for machines first; `simnet show` is for people) and written
# by msgspec, about 10x faster than the json module on a record (bench/replay_speed.py). Records
# hold no floats, so the json module's refusal of NaN (which the header relies on) is not needed.
_encode_json = msgspec.json.Encoder().encode
_b2a_base64 = binascii.b2a_base64

# `,"err":"EAGAIN"` for every errno name this platform knows and `check_errno` accepts; other
# names (a trace replayed from elsewhere, a typo that should fail) take the careful path.
ERROR_JSON: dict[str, bytes] = {
    name: b',"err":' + _encode_json(name) for name in errno.errorcode.values() if _ERRNO_NAME.match(name)
}


def payload_json(data: bytes) -> bytes:
    """`encode_bytes(data)` as msgspec writes it."""
    if data.isascii():
        # msgspec itself escapes the text (\r, \n, \", \u0000): the careful path's escapes, exactly.
        return b'{"ascii":' + _encode_json(data.decode("ascii")) + b"}"
    # Base64 needs no escaping in JSON.
    return b'{"b64":"' + _b2a_base64(data, newline=False) + b'"}'


def value_json(value: Any) -> bytes | None:
    """`encode_value(value)` as msgspec writes it, for the values syscalls return; else None."""
    kind = type(value)
    if kind is int:
        return b"%d" % value
    if value is None:
        return b"null"
    if kind is bytes:
        return payload_json(value)
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
