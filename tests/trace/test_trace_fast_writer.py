"""The quick writer of trace lines writes exactly the careful writer's bytes, or stands aside.

`record_line` formats the hot records (EpollWait, Recv, Send, Accept, Close, EpollCtl, errno
results) directly, and falls back to `careful_record_line` (a dict through msgspec) for
anything unusual. A trace written by either must be the same file, and what the careful path
refuses must still be refused, with the same message; these tests hold the two to that.
"""

from __future__ import annotations

import errno
import glob
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from trace_strategies import errno_names, values

from simnet.server import syscalls as sc
from simnet.server.syscalls import Result
from simnet.trace import read_trace
from simnet.trace.codec import careful_record_line, quick_record_line, record_line

REPO = Path(__file__).resolve().parents[2]


def assert_same_line_or_same_refusal(seq: Any, request: Any, result: Any) -> bytes | None:
    """`record_line` writes what the careful path writes, or raises what it raises; the quick
    path either agrees byte for byte or returns None. Returns the quick line."""
    try:
        expected = careful_record_line(seq, request, result)
    except (TypeError, ValueError) as exc:
        # The quick path must never write a line the careful path refuses.
        assert quick_record_line(seq, request, result) is None
        with pytest.raises(type(exc)) as caught:
            record_line(seq, request, result)
        assert str(caught.value) == str(exc)
        return None
    quick = quick_record_line(seq, request, result)
    assert quick is None or quick == expected, (quick, expected)
    assert record_line(seq, request, result) == expected
    return quick


# --- what drivers hand the recorder, odd corners included ------------------------------------

ints = st.integers(-1, 70000) | st.integers()  # small like fds and sizes, and of any size
# Payloads: empty, HTTP-like text, every control byte, DEL, quotes and backslashes, high bytes,
# and large ones (a 64 KiB recv), ASCII and not.
payloads = st.one_of(
    st.just(b""),
    st.binary(max_size=64),
    st.text(st.characters(max_codepoint=127), max_size=64).map(str.encode),
    st.lists(st.sampled_from([*range(0x20), 0x22, 0x5C, 0x7F, 0x80, 0xFF, 0x41]), max_size=40).map(
        bytes
    ),
    st.builds(lambda chunk, times: chunk * times, st.binary(min_size=1, max_size=8), st.integers(1, 20000)),
)
events = st.lists(st.tuples(ints, ints), max_size=70).map(tuple)  # EpollWait's ((fd, mask), ...)
accepted = st.tuples(ints, st.tuples(st.text(max_size=20), ints))  # Accept's (fd, (host, port))
hot_requests = st.one_of(
    st.builds(sc.EpollWait, epfd=ints, max_events=ints, timeout_ms=ints),
    st.builds(sc.Recv, fd=ints, size=ints),
    st.builds(sc.Send, fd=ints, data=payloads),
    st.builds(sc.Accept, fd=ints),
    st.builds(sc.Close, fd=ints),
    st.builds(
        sc.EpollCtl,
        epfd=ints,
        op=st.sampled_from(["ADD", "MOD", "DEL"]) | st.text(max_size=8),
        fd=ints,
        mask=ints,
    ),
)
hot_values = st.one_of(st.none(), ints, payloads, events, accepted, values)
hot_results = st.builds(
    Result,
    value=hot_values,
    error=st.none() | errno_names,
    now=ints,
    shutdown=st.booleans(),
)


@given(st.integers(1, 10**6) | st.integers(), hot_requests, hot_results)
@settings(max_examples=500)
def test_hot_records_are_written_byte_for_byte_as_the_careful_path_writes_them(
    seq: int, request: Any, result: Result
) -> None:
    assert_same_line_or_same_refusal(seq, request, result)


# The results drivers really produce for the hot calls, which the quick path must take itself:
# otherwise P5 would measure the careful path, and a quick path that gave up on everything would
# pass the test above.
known_errnos = st.sampled_from(sorted(errno.errorcode.values()))
driver_results = st.one_of(
    st.builds(
        Result, value=st.none() | ints | payloads | events | accepted, now=ints, shutdown=st.booleans()
    ),
    st.builds(Result, error=known_errnos, now=ints, shutdown=st.booleans()),
    st.builds(Result, value=ints, error=known_errnos, now=ints, shutdown=st.booleans()),  # value and errno
)


@given(st.integers(1, 10**6), hot_requests, driver_results)
@settings(max_examples=300)
def test_the_quick_path_takes_ordinary_hot_records(seq: int, request: Any, result: Result) -> None:
    assert assert_same_line_or_same_refusal(seq, request, result) is not None


@pytest.mark.parametrize("byte", range(256))
def test_every_byte_value_is_escaped_as_the_careful_path_escapes_it(byte: int) -> None:
    # Escaping is per character, so each byte alone, and amid text, covers every payload.
    for data in (bytes([byte]), b"a" + bytes([byte]) * 3 + b"z"):
        assert assert_same_line_or_same_refusal(1, sc.Send(fd=5, data=data), Result(value=1, now=2))
        assert assert_same_line_or_same_refusal(2, sc.Recv(fd=5, size=9), Result(value=data, now=3))


# --- what the careful path refuses, the quick path leaves to it --------------------------------

wrong_ints = st.one_of(st.booleans(), st.floats(allow_nan=False), st.none(), st.just("3"), st.just((3,)))
wrong_results = st.one_of(
    # A value `encode_value` refuses, or one the quick path must not write itself: bytes
    # inside a tuple, tuples nested three deep, lists, bools, floats.
    st.builds(
        Result,
        value=st.one_of(
            st.booleans(),
            st.floats(allow_nan=False),
            st.lists(ints, max_size=3),
            st.tuples(ints, st.binary(max_size=4)),
            st.tuples(st.tuples(st.tuples(ints))),
            st.tuples(st.tuples(st.booleans())),
            st.just(bytearray(b"x")),
        ),
        now=ints,
    ),
    # An errno that is not a name, or not a str at all.
    st.builds(Result, error=st.sampled_from(["again", "", "EAGAIN\n", "eagain", 11, b"EAGAIN"]), now=ints),
    # A clock that is not int nanoseconds.
    st.builds(Result, value=ints, now=st.booleans() | st.floats(allow_nan=False) | st.none()),
    # A shutdown flag that is not a bool: truthy is refused, falsy is quietly left out.
    st.builds(Result, value=ints, now=ints, shutdown=st.sampled_from([1, 0, "yes", "", None, 2.0])),
    st.just(None),  # only Exit has no Result
    st.just((86, 1)),  # not a Result at all
)
wrong_requests = st.one_of(
    st.builds(sc.Recv, fd=wrong_ints, size=ints),
    st.builds(sc.Recv, fd=ints, size=wrong_ints),
    st.builds(sc.EpollWait, epfd=ints, max_events=ints, timeout_ms=wrong_ints),
    st.builds(sc.Send, fd=ints, data=st.sampled_from([bytearray(b"x"), memoryview(b"x"), "GET /", None, 5])),
    st.builds(sc.Close, fd=wrong_ints),
    st.builds(sc.EpollCtl, epfd=ints, op=st.sampled_from([None, 1, b"ADD"]), fd=ints, mask=ints),
)


@given(st.integers(1, 10**6), hot_requests, wrong_results)
def test_a_result_the_format_cannot_hold_is_refused_as_before(seq: int, request: Any, result: Any) -> None:
    assert_same_line_or_same_refusal(seq, request, result)


@given(st.integers(1, 10**6), wrong_requests, hot_results | wrong_results)
def test_a_request_the_format_cannot_hold_is_refused_as_before(seq: int, request: Any, result: Any) -> None:
    assert_same_line_or_same_refusal(seq, request, result)


@pytest.mark.parametrize(
    ("request_", "result", "complaint"),
    [
        (sc.Recv(fd=True, size=5), Result(value=b"x", now=0), "fd must be int, not bool"),
        (sc.Send(fd=3, data=bytearray(b"x")), Result(value=1, now=0), "data must be bytes"),
        (sc.Recv(fd=3, size=5), Result(value=(1, b"x", 1.5), now=0), "cannot record a float"),
        (sc.Recv(fd=3, size=5), Result(error="again", now=0), "errno name"),
        (sc.Recv(fd=3, size=5), Result(now=True), "now must be int"),
        (sc.Recv(fd=3, size=5), Result(value=1, now=0, shutdown=1), "shutdown must be a bool"),
        (sc.EpollCtl(epfd=4, op="\ud800", fd=5), Result(now=0), "not valid Unicode"),
        (sc.Accept(fd=3), Result(value=(7, ("\udfff", 1)), now=0), "not valid Unicode"),
        (sc.Recv(fd=3, size=5), Result(value="\ud800", now=0), "not valid Unicode"),
    ],
)
def test_each_refusal_keeps_its_message(request_: Any, result: Any, complaint: str) -> None:
    with pytest.raises(TypeError, match=complaint):
        record_line(1, request_, result)
    assert_same_line_or_same_refusal(1, request_, result)


def test_integers_too_long_to_print_fail_as_before() -> None:
    # Python refuses to print an int of more than 4,300 digits, in msgspec as with `%d`.
    huge = 10**5000
    for request, result in [
        (sc.Recv(fd=huge, size=1), Result(value=b"", now=0)),
        (sc.Send(fd=3, data=b"x"), Result(value=huge, now=0)),
        (sc.Close(fd=3), Result(now=huge)),
        (sc.EpollWait(epfd=4, max_events=1, timeout_ms=0), Result(value=((huge, 1),), now=0)),
    ]:
        with pytest.raises(ValueError):
            careful_record_line(1, request, result)
        assert_same_line_or_same_refusal(1, request, result)


def test_seq_that_is_not_an_int_is_left_to_the_careful_path() -> None:
    assert quick_record_line(True, sc.Close(fd=3), Result(now=0)) is None  # type: ignore[arg-type]
    assert_same_line_or_same_refusal(True, sc.Close(fd=3), Result(now=0))


def test_exit_and_unknown_requests_are_left_to_the_careful_path() -> None:
    assert quick_record_line(1, sc.Exit(), None) is None
    assert record_line(1, sc.Exit(), None) == b'{"seq":1,"call":"Exit","args":{}}\n'
    assert quick_record_line(1, "Recv", Result(now=0)) is None
    with pytest.raises(TypeError, match="not a syscall request"):
        record_line(1, "Recv", Result(now=0))


COMMITTED_TRACES = sorted(glob.glob(str(REPO / "traces" / "*.jsonl")))


@pytest.mark.parametrize("path", COMMITTED_TRACES, ids=lambda p: Path(p).name)
def test_every_committed_trace_is_rewritten_to_the_same_bytes(path: str) -> None:
    # The committed traces were written before the quick path existed: writing their records
    # again must give back their lines exactly.
    lines = Path(path).read_bytes().splitlines(keepends=True)
    _, records = read_trace(path)
    quick = 0
    for record in records:
        assert record_line(record.seq, record.request, record.result) == lines[record.seq]
        quick += quick_record_line(record.seq, record.request, record.result) is not None
    assert quick > 0
