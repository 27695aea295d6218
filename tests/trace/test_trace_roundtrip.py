"""Trace format v1 is lossless: whatever a driver records reads back as exactly the same values."""

from __future__ import annotations

import io
import json

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from trace_strategies import json_objects, plain_results, requests, results, same_shape

from simnet.server import syscalls as sc
from simnet.server.syscalls import Exit, Result
from simnet.trace import Record, TraceHeader, TraceWriter, read_trace
from simnet.trace.codec import (
    _Bad,
    decode_bytes,
    encode_bytes,
    fast_record_line,
    header_line,
    record_from_json,
    record_line,
)

HEADER = TraceHeader.create(backend="simnet", app="echo", server_config={"port": 8080})


@given(requests, results)
def test_every_request_and_result_round_trips_through_one_line(request: object, result: Result) -> None:
    line = record_line(7, request, result)
    assert line.endswith(b"\n") and line.count(b"\n") == 1  # one record, one line
    record = record_from_json(json.loads(line), 7)
    assert same_shape(record, Record(seq=7, request=request, result=result))


@given(requests, results)
def test_the_fast_reader_path_agrees_with_the_careful_one(request: object, result: Result) -> None:
    line = record_line(3, request, result)
    fast = fast_record_line(line, 3)
    assert fast is None or same_shape(fast, record_from_json(msgspec.json.decode(line), 3))


@given(requests, plain_results)
@settings(max_examples=200)
def test_the_fast_path_takes_ordinary_records(request: object, result: Result) -> None:
    # Otherwise the speed the bench measures would be the careful path's, and the fast path
    # could be broken without any test noticing.
    if result.error is not None and result.error not in __import__("errno").errorcode.values():
        return
    fast = fast_record_line(record_line(1, request, result), 1)
    assert fast is not None and same_shape(fast, Record(seq=1, request=request, result=result))


@given(
    st.lists(st.tuples(requests, results), max_size=20), st.booleans(), st.sampled_from(["binary", "text"])
)
def test_a_whole_trace_round_trips_through_writer_and_reader(pairs, exited: bool, mode: str) -> None:
    buffer: io.BytesIO | io.StringIO = io.BytesIO() if mode == "binary" else io.StringIO()
    with TraceWriter(buffer, HEADER, buffer_bytes=64) as writer:
        for request, result in pairs:
            writer.record(request, result)
        if exited:
            writer.record_exit()
    buffer.seek(0)
    header, records = read_trace(buffer)
    expected = [Record(seq=i, request=q, result=r) for i, (q, r) in enumerate(pairs, 1)]
    if exited:
        expected.append(Record(seq=len(pairs) + 1, request=Exit(), result=None))
    assert header == HEADER
    assert same_shape(tuple(records), tuple(expected))


@given(
    backend=st.sampled_from(["realnet", "simnet"]),
    app=st.text(min_size=1),
    app_config=json_objects,
    server_config=json_objects,
    seed=st.none() | st.integers(),
    clock_origin=st.integers(),
    meta=json_objects,
)
def test_the_header_round_trips(**fields: object) -> None:
    header = TraceHeader.create(**fields)  # type: ignore[arg-type]
    got, records = read_trace(io.BytesIO(header_line(header)))
    assert got == header and list(records) == []


def test_configs_given_as_attrs_instances_are_stored_as_their_fields() -> None:
    import attrs

    @attrs.frozen
    class Config:
        port: int = 8080
        sizes: tuple[int, ...] = (1, 2)

    header = TraceHeader.create(backend="realnet", app="http", server_config=Config(), clock_origin=5)
    assert header.server_config == {"port": 8080, "sizes": [1, 2]}


@given(st.binary())
def test_payloads_round_trip_and_ascii_stays_readable(data: bytes) -> None:
    encoded = encode_bytes(data)
    assert decode_bytes(json.loads(json.dumps(encoded))) == data
    assert ("ascii" in encoded) == data.isascii()


def test_http_text_is_readable_in_the_raw_trace() -> None:
    line = record_line(1, sc.Recv(fd=5, size=4096), Result(value=b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", now=1))
    assert b'"ret":{"ascii":"GET / HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n"}' in line


def test_tuples_come_back_as_tuples_not_lists() -> None:
    accept = Result(value=(7, ("10.0.0.2", 40000)), now=1)
    wait = Result(value=((7, sc.EPOLLIN), (8, sc.EPOLLOUT | sc.EPOLLHUP)), now=2)
    for request, result in [
        (sc.Accept(fd=3), accept),
        (sc.EpollWait(epfd=4, max_events=8, timeout_ms=-1), wait),
    ]:
        record = record_from_json(json.loads(record_line(1, request, result)), 1)
        assert same_shape(record.result, result)
    linger = sc.SetSockOpt(fd=3, level=sc.SOL_SOCKET, name=sc.SO_LINGER, value=(1, 0))
    assert same_shape(record_from_json(json.loads(record_line(1, linger, Result(now=0))), 1).request, linger)


@pytest.mark.parametrize(
    ("request_", "result", "complaint"),
    [
        (sc.Recv(fd=True, size=5), Result(now=0), "fd must be int, not bool"),
        (sc.Send(fd=3, data=bytearray(b"x")), Result(now=0), "data must be bytes"),
        (sc.Recv(fd=3, size=5), Result(value=[1, 2], now=0), "cannot record a list"),
        (sc.Recv(fd=3, size=5), Result(value=1.5, now=0), "cannot record a float"),
        (sc.Recv(fd=3, size=5), Result(error="again", now=0), "errno name"),
        (sc.Recv(fd=3, size=5), Result(now=1.0), "now must be int"),  # type: ignore[arg-type]
        (sc.Recv(fd=3, size=5), None, "needs a Result"),
        (Exit(), Result(now=0), "no Result"),
        ("Recv", Result(now=0), "not a syscall request"),
        (sc.Bind(fd=3, host="\ud800", port=1), Result(now=0), "not valid Unicode"),
    ],
)
def test_the_writer_refuses_what_the_reader_would_reject(
    request_: object, result: Result | None, complaint: str
) -> None:
    buffer = io.BytesIO()
    writer = TraceWriter(buffer, HEADER)
    with pytest.raises(TypeError, match=complaint):
        writer.record(request_, result)
    writer.close()
    assert buffer.getvalue().count(b"\n") == 1  # the header only: nothing half-written
    assert writer.records == 0


def test_the_writer_refuses_records_after_exit_and_after_close() -> None:
    writer = TraceWriter(io.BytesIO(), HEADER)
    writer.record_exit()
    with pytest.raises(ValueError, match="after Exit"):
        writer.record(sc.Close(fd=3), Result(now=0))
    writer.close()
    with pytest.raises(ValueError, match="closed"):
        writer.record(sc.Close(fd=3), Result(now=0))


def test_decode_bytes_rejects_what_is_not_a_payload() -> None:
    for bad in [
        {"ascii": "caf\u00e9"},
        {"b64": "!!"},
        {"b64": "QQ"},
        {"hex": "00"},
        {"ascii": "a", "b64": "YQ=="},
        "abc",
        {"b64": 5},
    ]:
        with pytest.raises(_Bad, match="bad payload encoding"):
            decode_bytes(bad)
