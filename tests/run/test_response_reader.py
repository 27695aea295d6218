"""The clients' response reader: garbage from a broken server is a wrong response, not a crash."""

from __future__ import annotations

import pytest

from simnet.sim.workload import BadResponse, ResponseReader


def test_responses_are_split_and_a_stream_that_is_not_http_is_a_bad_response() -> None:
    reader = ResponseReader("http")
    reader.feed(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhiHTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
    assert list(reader.done) == [(200, b"hi"), (404, b"")]
    # The tail of a response the server lost bytes of, then the next one: not HTTP any more.
    with pytest.raises(BadResponse, match="unparseable response"):
        reader.feed(b"xxxxHTTP/1.1 200 OK\r\n\r\n")
