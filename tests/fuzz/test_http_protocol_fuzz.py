"""Fuzz the HTTP app directly: hostile bytes in any chunking -> a well-formed response stream.

The app is a sans-IO object, so these properties drive it as the machine does -- `receive` each
piece, then `pull` until it holds nothing back, `eof()` at the end -- without any kernel. For
every input: nothing raises (the app answers bad input itself, with 4xx), the output parses as a
sequence of HTTP/1.1 responses, valid requests in front of a bad one are answered first and in
order, and the bad one gets an error response with `Connection: close` and `close_after_flush`
set before the client's EOF. A request torn off by EOF is not answered, and the connection closes.
"""

from __future__ import annotations

import tracemalloc

from hypothesis import given
from hypothesis import strategies as st

from simnet.server.apps.base import Phase
from simnet.server.apps.http import HttpProtocol

from .http_inputs import APP, Hostile, chunkings, fuzz_settings, garbage, hostile_inputs, parse_responses

FUZZ = fuzz_settings(400)


def drive(app: HttpProtocol, pieces: list[bytes]) -> tuple[bytes, bool]:
    """Feed `pieces` as the machine would; returns (output, close_after_flush before EOF)."""
    out = bytearray()
    for piece in pieces:
        if app.close_after_flush:
            break  # the machine stops handing input to an app that asked to close (it lingers)
        out += app.receive(piece)
        while more := app.pull(APP.chunk_size):
            out += more
    closing_before_eof = app.close_after_flush
    out += app.eof()
    while more := app.pull(APP.chunk_size):
        out += more
    return bytes(out), closing_before_eof


def final(responses: list) -> list:  # type: ignore[type-arg]
    return [r for r in responses if r.status >= 200]  # 100 Continue is not an answer


# The answers that end a connection: malformed (400), too large (413, 431), unsupported version
# (505). 404 and 405 are answers to valid requests and keep the connection.
CLOSING_ERRORS = (400, 413, 431, 505)


def is_error(status: int) -> bool:
    return status in CLOSING_ERRORS


@FUZZ
@given(hostile=hostile_inputs(), data=st.data())
def test_hostile_input_in_any_chunking_gets_answers_in_order_then_an_error_and_a_close(
    hostile: Hostile, data: st.DataObject
) -> None:
    pieces = data.draw(chunkings(hostile.data), label="pieces")
    app = APP()
    out, closing_before_eof = drive(app, pieces)
    responses = final(parse_responses(out))
    good, rest = responses[: hostile.good_before], responses[hostile.good_before :]
    assert len(good) == hostile.good_before, (responses, hostile)
    for r in good:
        assert r.status in (200, 404) and not r.close, (r, hostile)
    if hostile.bad:
        assert len(rest) == 1, (rest, hostile)
        assert is_error(rest[0].status) and rest[0].close, (rest[0], hostile)
        assert closing_before_eof, "the app must ask to close after an error, without waiting for EOF"
    else:
        assert rest == [], (rest, hostile)  # the torn request is not answered
    assert app.close_after_flush
    assert app.phase is Phase.IDLE  # nothing more is read: no timer but the machine's flush


@FUZZ
@given(data=st.data(), raw=garbage())
def test_arbitrary_bytes_never_raise_and_any_error_is_the_last_answer(data: st.DataObject, raw: bytes) -> None:
    pieces = data.draw(chunkings(raw), label="pieces")
    app = APP()
    out, closing_before_eof = drive(app, pieces)
    responses = final(parse_responses(out))
    for i, r in enumerate(responses):
        if is_error(r.status) or r.close:
            assert i == len(responses) - 1, ("an answer after a closing one", responses)
            assert r.close and closing_before_eof
    assert app.close_after_flush


@fuzz_settings(60)
@given(
    start=st.sampled_from(
        [
            b"GET / HTTP/1.1\r\nHost: f\r\n",
            b"GET /",
            b"POST /echo HTTP/1.1\r\nHost: f\r\nTransfer-Encoding: chunked\r\n\r\n",
            b"POST /echo HTTP/1.1\r\nHost: f\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n",
            b"POST /echo HTTP/1.1\r\nHost: f\r\nContent-Length: 100\r\n\r\n",
        ]
    ),
    unit=st.one_of(garbage(), st.binary(min_size=1, max_size=16)).filter(bool),
    pieces=st.integers(1, 4),
)
def test_endless_input_never_makes_the_app_hold_more_than_its_limits(
    start: bytes, unit: bytes, pieces: int
) -> None:
    """A client that never stops sending the same few bytes: whatever the app has not answered,
    it must not hold more than its limits' worth of memory (the trailer bug grew without end)."""
    app = APP()
    stream = start + unit * (200_000 // len(unit) + 1)
    step = len(stream) // (pieces * 20) + 1
    tracemalloc.start()
    try:
        app.receive(start)
        for i in range(len(start), len(stream), step):
            if app.close_after_flush:
                break
            app.receive(stream[i : i + step])
            while app.pull(APP.chunk_size):
                pass
        held, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    bound = 4 * (APP.max_header_bytes + APP.max_body_bytes + APP.chunk_size) + step
    assert held < bound, (held, bound, app.phase, app.close_after_flush)
