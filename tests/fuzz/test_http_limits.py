"""The HTTP app's limits, at their edges, and what the fuzz found beyond them.

Each test feeds the app the way the machine does (head in one read, the rest in reads of
`READ` bytes) and checks the answer, the close, and -- for the inputs that used to make it hold
memory without bound -- how much it holds afterwards.
"""

from __future__ import annotations

import tracemalloc

import pytest

from simnet.server.apps.http import Http, HttpProtocol, head_size

from .http_inputs import parse_responses

READ = 4096
APP = Http(max_header_bytes=1024, max_body_bytes=4096)


def feed(app: HttpProtocol, head: bytes, rest: bytes = b"", *, reads: int | None = None) -> bytes:
    out = bytearray(app.receive(head))
    chunks = [rest[i : i + READ] for i in range(0, len(rest), READ)]
    for chunk in chunks[:reads]:
        if app.close_after_flush:
            break
        out += app.receive(chunk)
        while more := app.pull(65536):
            out += more
    return bytes(out)


def statuses(out: bytes) -> list[int]:
    return [r.status for r in parse_responses(out) if r.status >= 200]


CHUNKED = b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"


@pytest.mark.parametrize(
    "rest",
    [
        pytest.param(b"0\r\nTrailer: " + b"x" * 200_000, id="endless-trailer-value"),
        pytest.param(b"0\r\n" + b"T: x\r\n" * 40_000, id="endless-trailer-fields"),
        pytest.param(b"5;ext=" + b"e" * 200_000, id="endless-chunk-extension"),
        pytest.param(b"0" * 200_000, id="endless-leading-zeros"),
    ],
)
def test_endless_chunked_framing_is_answered_400_and_holds_no_memory(rest: bytes) -> None:
    # Found by the fuzz: before the framing bound, each of these kept the connection reading for
    # as long as the client sent, and a trailer value was buffered whole (6.5 MB held per 6.5 MB
    # sent), because llhttp reports trailer fields only once they are complete.
    app = APP()
    tracemalloc.start()
    try:
        out = feed(app, CHUNKED, rest)
        held, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert statuses(out) == [400]
    assert app.close_after_flush
    assert held < 64 * 1024, held


def test_many_tiny_header_fields_in_one_read_are_rejected_at_the_limit_not_at_the_end() -> None:
    # 64 KiB of "a:b" fields in one recv used to become 13,000 tuples, held until the connection
    # closed; now the parser stops at the field that crosses max_header_bytes.
    app = APP()
    out = feed(app, b"GET / HTTP/1.1\r\nHost: t\r\n" + b"a:b\r\n" * 13_000 + b"\r\n")
    assert statuses(out) == [431]
    assert len(app._parser._headers) == 0  # type: ignore[attr-defined]  # the fields were let go


def test_more_than_one_host_is_400() -> None:
    # RFC 9112 §3.2: "A server MUST respond with a 400 ... to any request message that contains
    # more than one Host header field line".
    app = APP()
    assert statuses(feed(app, b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n")) == [400]
    assert app.close_after_flush


def test_one_byte_chunks_up_to_the_body_limit_are_legal() -> None:
    app = APP()
    body = b"1\r\nz\r\n" * APP.max_body_bytes + b"0\r\n\r\n"
    responses = parse_responses(feed(app, CHUNKED, body))
    assert [r.status for r in responses] == [200]
    assert responses[0].body == b"z" * APP.max_body_bytes
    assert not app.close_after_flush


def _head_of_size(n: int) -> bytes:
    base = head_size(b"GET", b"/", ((b"host", b"t"), (b"x", b"")))
    head = b"GET / HTTP/1.1\r\nHost: t\r\nX: " + b"v" * (n - base) + b"\r\n\r\n"
    assert len(head) == n
    return head


def test_a_head_of_exactly_max_header_bytes_is_served_one_more_is_431() -> None:
    assert statuses(feed(APP(), _head_of_size(APP.max_header_bytes))) == [200]
    assert statuses(feed(APP(), _head_of_size(APP.max_header_bytes + 1))) == [431]


def test_a_body_of_exactly_max_body_bytes_is_served_one_more_is_413_before_it_arrives() -> None:
    n = APP.max_body_bytes
    ok = b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n\r\n" % n
    assert statuses(feed(APP(), ok, b"b" * n)) == [200]
    app = APP()
    over = b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n\r\n" % (n + 1)
    assert statuses(feed(app, over)) == [413]  # no byte of the body sent yet
    assert app.close_after_flush


def test_a_chunked_body_over_the_limit_is_413_as_soon_as_it_crosses() -> None:
    app = APP()
    chunk = b"400\r\n" + b"c" * 0x400 + b"\r\n"
    out = feed(app, CHUNKED, chunk * 100, reads=3)  # 12 KiB sent of 100 KiB: 4 KiB is the limit
    assert statuses(out) == [413]
    assert app.close_after_flush
