"""Hypothesis strategies for every request and result the trace format must carry losslessly."""

from __future__ import annotations

import errno
import typing
from typing import Any

import attrs
from hypothesis import strategies as st

from simnet.server.syscalls import SYSCALL_TYPES, Exit, Result


def _for_hint(hint: Any) -> st.SearchStrategy[Any]:
    if hint is int:
        return st.integers()  # unbounded: the format promises exact integers of any size
    if hint is str:
        return st.text()
    if hint is bytes:
        return st.one_of(st.binary(), st.text(st.characters(max_codepoint=127)).map(str.encode))
    if hint is bool:
        return st.booleans()
    args = typing.get_args(hint)
    if typing.get_origin(hint) is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            return st.lists(_for_hint(args[0]), max_size=4).map(tuple)
        return st.tuples(*[_for_hint(a) for a in args])
    if args:  # a union
        return st.one_of(*[_for_hint(a) for a in args])
    raise NotImplementedError(hint)


def request_of(cls: type) -> st.SearchStrategy[Any]:
    hints = typing.get_type_hints(cls)
    return st.builds(cls, **{f.name: _for_hint(hints[f.name]) for f in attrs.fields(cls)})


requests = st.one_of(*[request_of(cls) for cls in SYSCALL_TYPES.values() if cls is not Exit])

# What a result can hold: None, ints, bytes, and tuples of those and of strs (hosts), nested the
# way Accept's (fd, (host, port)) and EpollWait's ((fd, mask), ...) are.
values = st.recursive(
    st.none() | st.integers() | st.binary() | st.text(),
    lambda inner: st.lists(inner, max_size=4).map(tuple),
    max_leaves=12,
)
errno_names = st.sampled_from(sorted(errno.errorcode.values())) | st.from_regex(
    r"E[A-Z0-9]{1,12}", fullmatch=True
)
results = st.builds(
    Result,
    value=values,
    error=st.none() | errno_names,
    now=st.integers(),
    shutdown=st.booleans(),
)
# The results drivers really produce: a value or an error, never both.
plain_results = st.one_of(
    st.builds(Result, value=values, now=st.integers(min_value=0), shutdown=st.booleans()),
    st.builds(Result, error=errno_names, now=st.integers(min_value=0), shutdown=st.booleans()),
)

json_scalars = (
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text()
)
json_objects = st.dictionaries(
    st.text(),
    st.recursive(
        json_scalars,
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
        max_leaves=8,
    ),
    max_size=4,
)


def same_shape(a: Any, b: Any) -> bool:
    """`a == b` down to the types: Python says 1 == True == 1.0 and (1,) != [1] only sometimes
    matters, and the format promises the exact values back."""
    if type(a) is not type(b):
        return False
    if isinstance(a, tuple):
        return len(a) == len(b) and all(same_shape(x, y) for x, y in zip(a, b))
    if attrs.has(type(a)):
        return all(same_shape(getattr(a, f.name), getattr(b, f.name)) for f in attrs.fields(type(a)))
    return bool(a == b)
