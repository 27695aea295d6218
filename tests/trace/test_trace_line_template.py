"""A line a live recorder formats itself from `line_template` is the careful writer's line.

simnet.aio.record_main writes its hottest records (clock reads, recv, send, epoll_wait) by
filling `codec.line_template` through `TraceWriter.record_formatted`, without a request or a
Result; the trace must be the very file the careful path would have written.
"""

from __future__ import annotations

import io

from hypothesis import given
from hypothesis import strategies as st

from simnet.server import syscalls as sc
from simnet.server.syscalls import Result
from simnet.trace import read_trace
from simnet.trace.codec import TraceHeader, careful_record_line, line_template, payload_slot
from simnet.trace.values import _encode_json, payload_json

SEQ = st.integers(1, 2**40)
NS = st.integers(0, 2**63 - 1)
FD = st.integers(-1, 2**31 - 1)


@given(SEQ, NS, st.sampled_from(["time", "monotonic", "perf_counter"]), NS)
def test_clock_line_from_its_template_is_the_careful_line(seq: int, now: int, kind: str, ns: int) -> None:
    line = line_template(sc.Clock, "int") % (seq, now, _encode_json(kind), ns)
    assert line == careful_record_line(seq, sc.Clock(kind=kind), Result(value=ns, now=now))


@given(SEQ, NS, FD, st.integers(0, 2**31), st.binary(max_size=300))
def test_recv_line_from_its_template_is_the_careful_line(seq: int, now: int, fd: int, size: int, data: bytes) -> None:
    line = line_template(sc.Recv, "json") % (seq, now, fd, size, payload_json(data))
    assert line == careful_record_line(seq, sc.Recv(fd=fd, size=size), Result(value=data, now=now))


@given(SEQ, NS, FD, st.binary(max_size=300) | st.text(max_size=50).map(str.encode), st.integers(0, 2**31))
def test_send_line_from_its_template_is_the_careful_line(seq: int, now: int, fd: int, data: bytes, count: int) -> None:
    line = line_template(sc.Send, "int") % (seq, now, fd, payload_slot(data), count)
    assert line == careful_record_line(seq, sc.Send(fd=fd, data=data), Result(value=count, now=now))


@given(SEQ, NS, FD, st.integers(-1, 4096), st.integers(-1, 10**6),
       st.lists(st.tuples(FD, st.integers(0, 2**32 - 1)), max_size=8))  # fmt: skip
def test_epoll_wait_line_from_its_template_is_the_careful_line(
    seq: int, now: int, epfd: int, max_events: int, timeout_ms: int, events: list[tuple[int, int]]
) -> None:
    # select.epoll.poll returns a list of tuples; the trace holds the tuple of them.
    line = line_template(sc.EpollWait, "json") % (seq, now, epfd, max_events, timeout_ms, _encode_json(events))
    request = sc.EpollWait(epfd=epfd, max_events=max_events, timeout_ms=timeout_ms)
    assert line == careful_record_line(seq, request, Result(value=tuple(events), now=now))


def test_formatted_and_ordinary_records_share_one_sequence_and_read_back() -> None:
    from simnet.trace.writer import TraceWriter

    out = io.BytesIO()
    header = TraceHeader.for_program(backend="record", program={"argv": ["app.py"]}, clock_origin=0)
    writer = TraceWriter(out, header)
    writer.record(sc.Recv(fd=5, size=10), Result(value=b"hi", now=1))
    writer.record_formatted(line_template(sc.Clock, "int"), (2, b'"monotonic"', 7))
    writer.record(sc.Close(fd=5), Result(now=3))
    writer.record_exit()
    writer.close()
    out.seek(0)
    _, records = read_trace(out)
    got = [(r.seq, r.request, r.result) for r in records]
    assert got[1] == (2, sc.Clock(kind="monotonic"), Result(value=7, now=2))
    assert [seq for seq, _, _ in got] == [1, 2, 3, 4]
